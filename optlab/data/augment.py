"""Data augmentation on the device, jit-able, per-example random (lecture 03).

Lecture 03: "Performing a range of transformations to the data [...] Transformations should
not change meaning of the data": image flipping, random crop, color jitter, and generic affine
transformations (translation, rotation, scale, shear), combined for more variety.

Every function takes a key and a batch: images ``(B, H, W)`` or ``(B, H, W, C)``, or 1-D
signals ``(B, L)`` (flip and crop, i.e. shift, only). Each example draws its own random
parameters; the same key gives the same result. Strengths of zero give back the input
exactly. Each function is compiled once per input shape (also when called eagerly); ``padding``,
``fill`` and the ``ops`` of `augment` are static (close over them under an outer
``jax.jit``); strengths may be traced.

Fill values: pixels that enter from outside the image are ``fill`` (0 by default). On data
standardized by `optlab.data.load_dataset` 0 is the training mean; pass
``fill=float(dataset.normalize(0.0))`` for black.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax.scipy.ndimage import map_coordinates

from optlab import _validation

Array = jax.Array


def random_flip(key: Array, x: Array, horizontal: bool = True) -> Array:
    """Flips each example with probability 1/2: left-right (``horizontal``) or up-down.

    For 1-D signals ``(B, L)`` the flip reverses L; ``horizontal=False`` is an error there.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from optlab.data.augment import random_flip
      >>> x = jnp.arange(4.0).reshape(1, 1, 4)
      >>> print(random_flip(jax.random.key(1), x)[0, 0])
      [3. 2. 1. 0.]
    """
    one_d = _layout("random_flip", x, allow_1d=True)
    if one_d and not horizontal:
        raise ValueError("random_flip: a 1-D signal (B, L) has no vertical axis; use horizontal.")
    return _flip(key, x, axis=1 if one_d or not horizontal else 2)


@functools.partial(jax.jit, static_argnames="axis")
def _flip(key: Array, x: Array, axis: int) -> Array:
    flip = jax.random.bernoulli(key, 0.5, (x.shape[0],))
    return jnp.where(_per_example(flip, x), jnp.flip(x, axis), x)


def random_crop(key: Array, x: Array, padding: int = 2, fill: float = 0.0) -> Array:
    """Pads by ``padding`` on every side with ``fill``, then crops back to the original size.

    That is a random translation of each example by an integer in [−padding, padding] along
    every spatial axis (the usual CIFAR/MNIST recipe). For 1-D signals, a random shift.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from optlab.data.augment import random_crop
      >>> x = jnp.ones((2, 8, 8))
      >>> random_crop(jax.random.key(0), x, padding=2).shape
      (2, 8, 8)
    """
    one_d = _layout("random_crop", x, allow_1d=True)
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        _validation.fail(
            "random_crop", "padding", padding, "a Python int >= 0 (static)", "Use e.g. 2."
        )
    if padding == 0:
        return x
    return _crop(key, x, fill, padding=padding, spatial=1 if one_d else 2)


@functools.partial(jax.jit, static_argnames=("padding", "spatial"))
def _crop(key: Array, x: Array, fill: Any, padding: int, spatial: int) -> Array:
    widths = [(0, 0)] + [(padding, padding)] * spatial + [(0, 0)] * (x.ndim - 1 - spatial)
    padded = jnp.pad(x, widths, constant_values=fill)
    starts = jax.random.randint(key, (x.shape[0], spatial), 0, 2 * padding + 1)

    def crop(image: Array, start: Array) -> Array:
        zeros = [jnp.zeros((), start.dtype)] * (image.ndim - spatial)
        return jax.lax.dynamic_slice(image, [*start, *zeros], x.shape[1:])

    return jax.vmap(crop)(padded, starts)


def color_jitter(key: Array, x: Array, brightness: float = 0.2, contrast: float = 0.2) -> Array:
    """Random brightness shift and contrast scaling, per example (images only).

    ``x ← x + β``, β ~ U(−brightness, brightness), then ``x ← m + γ (x − m)`` with m the
    example's mean and γ ~ U(1 − contrast, 1 + contrast). The brightness is additive
    (torchvision multiplies [0, 1] images by a factor instead) because standardized data
    are centred at 0, where a factor would act as a contrast change. All channels move
    together.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from optlab.data.augment import color_jitter
      >>> x = jnp.linspace(-1.0, 1.0, 2 * 4 * 4).reshape(2, 4, 4)
      >>> bool(jnp.all(color_jitter(jax.random.key(0), x, 0.0, 0.0) == x))
      True
    """
    _layout("color_jitter", x, allow_1d=False)
    _validation.check_non_negative("color_jitter", "brightness", brightness, "Use e.g. 0.2.")
    _validation.check_unit_interval("color_jitter", "contrast", contrast, "Use e.g. 0.2.")
    return _jitter(key, x, brightness, contrast)


@jax.jit
def _jitter(key: Array, x: Array, brightness: Any, contrast: Any) -> Array:
    k_b, k_c = jax.random.split(key)
    b = jax.random.uniform(k_b, (x.shape[0],), x.dtype, -1.0, 1.0) * brightness
    c = jax.random.uniform(k_c, (x.shape[0],), x.dtype, -1.0, 1.0) * contrast
    x = x + _per_example(b, x)
    mean = jnp.mean(x, axis=tuple(range(1, x.ndim)), keepdims=True)
    return x + _per_example(c, x) * (x - mean)  # = m + (1 + c)(x − m), exact at c = 0


def affine(
    x: Array,
    *,
    rotation: Any = 0.0,
    translation: Any = (0.0, 0.0),
    scale: Any = 1.0,
    shear: Any = 0.0,
    fill: float = 0.0,
) -> Array:
    """Applies one affine map per example, with bilinear sampling (images only).

    A pixel at position p = (column, row) moves to ``c + R(θ) S(φ) s (p − c) + t``, c the
    image centre: θ = ``rotation`` in degrees, counter-clockwise as displayed; φ = ``shear``
    in degrees along x; s = ``scale``; t = ``translation`` = (right, down) in pixels. Each
    output pixel is read from the inverse map with ``jax.scipy.ndimage.map_coordinates``
    (order 1, pixels outside read as ``fill``, a Python number). Scalars apply to every
    example; arrays of shape ``(B,)`` (``(B, 2)`` for ``translation``) give one per example.

    Example:
      >>> import jax.numpy as jnp
      >>> from optlab.data.augment import affine
      >>> x = jnp.zeros((1, 3, 3)).at[0, 1, 1].set(1.0)
      >>> print(affine(x, translation=(1.0, 0.0))[0])
      [[0. 0. 0.]
       [0. 0. 1.]
       [0. 0. 0.]]
    """
    _layout("affine", x, allow_1d=False)
    return _affine(x, rotation, translation, scale, shear, float(fill))


@functools.partial(jax.jit, static_argnums=5)
def _affine(x: Array, rotation, translation, scale, shear, fill: float) -> Array:
    squeeze = x.ndim == 3
    images = x[..., None] if squeeze else x
    batch = images.shape[0]
    dtype = jnp.result_type(x.dtype, jnp.float32)

    def per_example(value: Any, tail: tuple[int, ...] = ()) -> Array:
        return jnp.broadcast_to(jnp.asarray(value, dtype), (batch, *tail))

    theta = jnp.deg2rad(per_example(rotation))
    phi = jnp.deg2rad(per_example(shear))
    s = per_example(scale)
    shift = per_example(translation, (2,))
    warp = jax.vmap(_warp, in_axes=(0, 0, 0, 0, 0, None))
    out = warp(images.astype(dtype), theta, phi, s, shift, fill)
    out = out.astype(x.dtype)
    return out[..., 0] if squeeze else out


def random_affine(
    key: Array,
    x: Array,
    rotation: float = 10.0,
    translation: float = 2.0,
    scale: float = 0.1,
    shear: float = 5.0,
    fill: float = 0.0,
) -> Array:
    """`affine` with random parameters per example (images only).

    θ ~ U(−rotation, rotation) and φ ~ U(−shear, shear) in degrees; each translation
    component ~ U(−translation, translation) pixels; s ~ U(1 − scale, 1 + scale), scale < 1.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from optlab.data.augment import random_affine
      >>> x = jnp.ones((2, 8, 8, 1))
      >>> y = random_affine(jax.random.key(0), x, rotation=0.0, translation=0.0, scale=0.0, shear=0.0)
      >>> bool(jnp.all(y == x))
      True
    """  # noqa: E501
    _layout("random_affine", x, allow_1d=False)
    owner = "random_affine"
    for name, value in (("rotation", rotation), ("translation", translation), ("shear", shear)):
        _validation.check_non_negative(owner, name, value, "Use e.g. 10 (degrees) or 2 (pixels).")
    _validation.check_unit_interval(owner, "scale", scale, "Use e.g. 0.1 for s in [0.9, 1.1].")
    return _random_affine(key, x, rotation, translation, scale, shear, float(fill))


@functools.partial(jax.jit, static_argnums=6)
def _random_affine(key: Array, x: Array, rotation, translation, scale, shear, fill) -> Array:
    k_r, k_t, k_s, k_h = jax.random.split(key, 4)
    batch = x.shape[0]

    def uniform(k: Array, bound: Any, shape: tuple[int, ...] = ()) -> Array:
        return jax.random.uniform(k, (batch, *shape), minval=-1.0, maxval=1.0) * bound

    theta, shift = uniform(k_r, rotation), uniform(k_t, translation, (2,))
    return _affine(x, theta, shift, 1.0 + uniform(k_s, scale), uniform(k_h, shear), fill)


AUGMENTATIONS: Mapping[str, Callable[..., Array]] = {
    "flip": random_flip,
    "crop": random_crop,
    "color_jitter": color_jitter,
    "affine": random_affine,
}


def augment(
    key: Array,
    x: Array,
    ops: Sequence[str | tuple[str, Mapping[str, Any]]] | Mapping[str, Mapping[str, Any]],
) -> Array:
    """Composes augmentations by name (`AUGMENTATIONS`), in order, each with its own key.

    ``ops`` is a list of names (default strengths) or ``(name, kwargs)`` pairs, or a dict
    ``{name: kwargs}``. Under ``jax.jit``, close over ``ops`` (it is static).

    Example:
      >>> import functools, jax, jax.numpy as jnp
      >>> from optlab.data.augment import augment
      >>> ops = ["flip", ("crop", {"padding": 1}), ("affine", {"rotation": 15.0})]
      >>> step = jax.jit(functools.partial(augment, ops=ops))
      >>> step(jax.random.key(0), jnp.ones((4, 8, 8, 1))).shape
      (4, 8, 8, 1)
    """
    items = list(ops.items()) if isinstance(ops, Mapping) else list(ops)
    if not items:
        return x
    keys = jax.random.split(key, len(items))
    for k, item in zip(keys, items, strict=True):
        name, kwargs = (item, {}) if isinstance(item, str) else item
        if name not in AUGMENTATIONS:
            _validation.fail(
                "augment", "ops", name, f"one of {tuple(AUGMENTATIONS)}", "Check the spelling."
            )
        x = AUGMENTATIONS[name](k, x, **dict(kwargs or {}))
    return x


def _warp(image: Array, theta, phi, s, shift, fill) -> Array:
    """Reads ``image`` (H, W, C) at the inverse affine map of every output pixel."""
    height, width = image.shape[:2]
    cos, sin, tan = jnp.cos(theta), jnp.sin(theta), jnp.tan(phi)
    # Forward A = s · R(θ) · Shear(φ) on (column, row); rows grow downwards, so a
    # counter-clockwise turn on screen is [[cos, sin], [−sin, cos]].
    a, b = s * cos, s * (cos * tan + sin)
    c, d = -s * sin, s * (cos - sin * tan)
    det = a * d - b * c
    centre_col, centre_row = (width - 1) / 2.0, (height - 1) / 2.0
    rows, cols = jnp.meshgrid(
        jnp.arange(height, dtype=image.dtype), jnp.arange(width, dtype=image.dtype), indexing="ij"
    )
    u = cols - centre_col - shift[0]
    v = rows - centre_row - shift[1]
    src_col = (d * u - b * v) / det + centre_col
    src_row = (-c * u + a * v) / det + centre_row

    def sample(channel: Array) -> Array:
        return map_coordinates(channel, [src_row, src_col], order=1, mode="constant", cval=fill)

    return jax.vmap(sample, in_axes=2, out_axes=2)(image)


def _layout(owner: str, x: Array, *, allow_1d: bool) -> bool:
    """True for 1-D signals (B, L); False for images (B, H, W[, C]); else a ValueError."""
    if x.ndim == 2:
        if not allow_1d:
            raise ValueError(
                f"{owner}: got a batch of 1-D signals of shape {x.shape}; {owner} needs "
                "images (B, H, W) or (B, H, W, C). 1-D inputs support only flip and crop."
            )
        return True
    if x.ndim in (3, 4):
        return False
    raise ValueError(
        f"{owner}: `x` must be a batch (B, L), (B, H, W) or (B, H, W, C), got shape {x.shape}."
    )


def _per_example(values: Array, x: Array) -> Array:
    return values.reshape((x.shape[0],) + (1,) * (x.ndim - 1))


__all__ = [
    "AUGMENTATIONS",
    "affine",
    "augment",
    "color_jitter",
    "random_affine",
    "random_crop",
    "random_flip",
]
