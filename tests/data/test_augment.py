"""Augmentation (lecture 03): shapes, jit, keys, identity at zero strength, exact geometry."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optlab.data import augment as aug

KEY = jax.random.key(0)
B, H, W = 16, 7, 7  # one image shape throughout: each shape compiles once


@pytest.fixture(scope="module")
def images():
    return jax.random.normal(jax.random.key(42), (B, H, W, 2))


def per_op(x):
    """Every op that accepts x's layout, with strengths that change something."""
    ops = {
        "flip": functools.partial(aug.random_flip, horizontal=True),
        "crop": functools.partial(aug.random_crop, padding=2),
    }
    if x.ndim > 2:
        ops["color_jitter"] = functools.partial(aug.color_jitter, brightness=0.5, contrast=0.5)
        ops["affine"] = functools.partial(aug.random_affine, rotation=20.0, translation=1.5)
    return ops


@pytest.mark.parametrize("shape", [(B, H, W), (B, H, W, 2), (B, 40)])
def test_shapes_and_determinism_by_key(shape):
    x = jax.random.normal(jax.random.key(1), shape)
    for name, op in per_op(x).items():
        out = op(KEY, x)
        assert out.shape == x.shape and out.dtype == x.dtype, name
        np.testing.assert_array_equal(out, op(KEY, x), err_msg=name)  # same key, same
        assert not np.array_equal(out, op(jax.random.key(7), x)), name  # other key
        changed = (np.asarray(out) != np.asarray(x)).reshape(B, -1).any(axis=1)
        assert changed.any() and (name != "flip" or not changed.all()), name  # per example


@pytest.mark.parametrize("shape", [(B, H, W, 2), (B, 40)])
def test_all_ops_compose_under_jit(shape):
    x = jax.random.normal(jax.random.key(1), shape)
    ops = per_op(x)

    @jax.jit
    def step(key, x):
        for k, op in zip(jax.random.split(key, len(ops)), ops.values(), strict=True):
            x = op(k, x)
        return x

    out = step(KEY, x)
    assert out.shape == x.shape and bool(jnp.isfinite(out).all())
    np.testing.assert_array_equal(out, step(KEY, x))


def test_identity_at_zero_strength(images):
    x = images
    np.testing.assert_array_equal(aug.random_crop(KEY, x, padding=0), x)
    np.testing.assert_array_equal(aug.color_jitter(KEY, x, brightness=0.0, contrast=0.0), x)
    zero = {"rotation": 0.0, "translation": 0.0, "scale": 0.0, "shear": 0.0}
    np.testing.assert_array_equal(aug.random_affine(KEY, x, **zero), x)
    np.testing.assert_array_equal(aug.affine(x[..., 0]), x[..., 0])
    np.testing.assert_array_equal(aug.augment(KEY, x, []), x)


@pytest.mark.parametrize(("horizontal", "axis"), [(True, 2), (False, 1)])
def test_a_flip_flips(images, horizontal, axis):
    out = aug.random_flip(KEY, images, horizontal=horizontal)
    out, images = np.asarray(out), np.asarray(images)
    flipped = np.array(
        [np.array_equal(o, np.flip(x, axis - 1)) for o, x in zip(out, images, strict=True)]
    )
    kept = np.array([np.array_equal(o, x) for o, x in zip(out, images, strict=True)])
    assert (flipped | kept).all() and flipped.any() and kept.any()
    signal = jnp.arange(12.0).reshape(2, 6)
    outs = {tuple(aug.random_flip(jax.random.key(i), signal)[0].tolist()) for i in range(8)}
    assert outs == {tuple(range(6)), tuple(range(5, -1, -1))}


def test_crop_is_an_integer_shift_within_padding():
    x = jnp.zeros((B, H, W)).at[:, 3, 3].set(1.0)
    out = np.asarray(aug.random_crop(KEY, x, padding=2))
    shifts = {tuple(int(v) - 3 for v in np.argwhere(o)[0]) for o in out}
    assert all(max(abs(r), abs(c)) <= 2 for r, c in shifts) and len(shifts) > 3
    np.testing.assert_array_equal(out.sum(axis=(1, 2)), 1.0)
    shifted = aug.random_crop(KEY, jnp.ones((4, 10)), padding=3, fill=-1.0)
    assert set(np.unique(shifted)) <= {-1.0, 1.0}


@pytest.mark.parametrize(("tx", "ty"), [(2, 0), (0, 1), (2, -1), (-3, 2)])
def test_affine_translation_moves_pixels_by_t(images, tx, ty):
    x = images[..., 0]
    out = aug.affine(x, translation=(float(tx), float(ty)))
    dst = out[:, max(ty, 0) : H + min(ty, 0), max(tx, 0) : W + min(tx, 0)]
    src = x[:, max(-ty, 0) : H + min(-ty, 0), max(-tx, 0) : W + min(-tx, 0)]
    np.testing.assert_array_equal(dst, src)  # bilinear at integer offsets is exact
    outside = out.at[:, max(ty, 0) : H + min(ty, 0), max(tx, 0) : W + min(tx, 0)].set(0.0)
    np.testing.assert_array_equal(outside, 0.0)  # pixels entering from outside are the fill


def test_affine_rotation_by_90_degrees_is_rot90():
    x = jax.random.normal(KEY, (B, H, W))
    out = aug.affine(x, rotation=90.0)  # counter-clockwise as displayed (rows grow down)
    np.testing.assert_allclose(out, jnp.rot90(x, k=1, axes=(1, 2)), atol=1e-5)


def test_affine_takes_per_example_parameters():
    x = jnp.zeros((B, H, W)).at[:, 3, 3].set(1.0)
    shifts = jnp.zeros((B, 2)).at[0].set(jnp.array([1.0, 0.0])).at[1].set(jnp.array([0.0, -2.0]))
    out = aug.affine(x, translation=shifts)
    assert out[0, 3, 4] == 1.0 and out[1, 1, 3] == 1.0 and out[2, 3, 3] == 1.0


def test_random_translation_stays_within_bounds():
    x = jnp.zeros((B, H, W)).at[:, 3, 3].set(1.0)
    out = np.asarray(aug.random_affine(KEY, x, rotation=0.0, translation=2.0, scale=0, shear=0))
    rows, cols = np.arange(H)[:, None], np.arange(W)[None, :]
    mass = out.sum(axis=(1, 2))
    np.testing.assert_allclose(mass, 1.0, rtol=1e-5)  # bilinear keeps a point's mass
    dy = (out * rows).sum(axis=(1, 2)) / mass - 3
    dx = (out * cols).sum(axis=(1, 2)) / mass - 3
    assert float(jnp.abs(dx).max()) <= 2.0 + 1e-5 and float(jnp.abs(dy).max()) <= 2.0 + 1e-5
    assert len(set(np.round(np.asarray(dx), 4))) == B  # a different shift per example


def test_color_jitter_ranges(images):
    out = aug.color_jitter(KEY, images, brightness=0.3, contrast=0.0)
    shift = (out - images).reshape(B, -1)
    np.testing.assert_allclose(shift, shift[:, :1] * np.ones_like(shift), atol=1e-6)
    assert float(jnp.abs(shift).max()) <= 0.3 + 1e-6
    out = aug.color_jitter(KEY, images, brightness=0.0, contrast=0.4)
    axes = (1, 2, 3)
    np.testing.assert_allclose(out.mean(axis=axes), images.mean(axis=axes), atol=1e-5)
    ratio = out.std(axis=axes) / images.std(axis=axes)
    assert float(ratio.min()) >= 0.6 - 1e-5 and float(ratio.max()) <= 1.4 + 1e-5


def test_augment_composes_by_name(images):
    assert set(aug.AUGMENTATIONS) == {"flip", "crop", "color_jitter", "affine"}
    ops = ("flip", ("crop", {"padding": 2}), ("affine", {"rotation": 10.0}))
    by_list = jax.jit(functools.partial(aug.augment, ops=ops))(KEY, images)
    by_dict = aug.augment(KEY, images, {"flip": {}, "crop": {"padding": 2}, "affine": {}})
    assert by_list.shape == by_dict.shape == images.shape
    manual_keys = jax.random.split(KEY, 1)
    np.testing.assert_array_equal(
        aug.augment(KEY, images, ["flip"]), aug.random_flip(manual_keys[0], images)
    )


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda s: aug.color_jitter(KEY, s), r"1-D signals .* only flip and crop"),
        (lambda s: aug.random_affine(KEY, s), r"1-D signals .* only flip and crop"),
        (lambda s: aug.affine(s), r"1-D signals .* only flip and crop"),
        (lambda s: aug.random_flip(KEY, s, horizontal=False), "no vertical axis"),
        (lambda s: aug.random_flip(KEY, s[0]), r"must be a batch \(B, L\)"),
        (lambda s: aug.random_crop(KEY, s, padding=1.5), "`padding` must be a Python int"),
        (lambda s: aug.augment(KEY, s, ["rotate"]), "`ops` must be one of"),
        (lambda s: aug.color_jitter(KEY, s[..., None], -0.1, 0.1), "`brightness` must be"),
        (lambda s: aug.color_jitter(KEY, s[..., None], 0.1, 1.0), r"`contrast` must be in \[0"),
        (lambda s: aug.random_affine(KEY, s[..., None], scale=1.0), r"`scale` must be in \[0"),
        (lambda s: aug.random_affine(KEY, s[..., None], rotation=-5.0), "`rotation` must be"),
    ],
)
def test_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call(jnp.zeros((2, 40)))
