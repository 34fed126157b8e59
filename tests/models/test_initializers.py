"""Lecture 03's initializers: sample statistics against the formulas, and their claims."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optlab.models import INITIALIZERS, create_model, initializers

KEY = jax.random.key(0)
# 120,000 draws: the sample std of N(0, σ²) has relative error ≈ 1/√(2N) ≈ 0.2 %, the mean's
# error is ≈ σ/√N ≈ 0.3 % of σ; the tolerances below are about 5 of those standard errors.
SHAPES = [(400, 300), (5, 5, 16, 300)]  # a dense kernel, and a conv kernel with fan-in 400


def sample(name, shape):
    return np.asarray(initializers.get(name)(KEY, shape, jnp.float32), np.float64)


def test_names():
    assert INITIALIZERS == ("constant", "normal", "xavier", "xavier_simple", "he")


@pytest.mark.parametrize(
    ("shape", "fans"),
    [((64, 32), (64, 32)), ((5, 1, 25), (5, 125)), ((3, 3, 16, 8), (144, 72)), ((7,), (7, 7))],
)
def test_fans_conv_fan_in_is_kernel_size_times_input_channels(shape, fans):
    assert initializers.fans(shape) == fans


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(
    ("name", "std"),
    [
        ("normal", lambda n_in: 0.01),  # N(0, 0.01²)
        ("xavier_simple", lambda n_in: np.sqrt(1 / n_in)),  # N(0,1)·√(1/n_j)
        ("he", lambda n_in: np.sqrt(1 / (n_in / 2))),  # N(0,1)·√(1/(n_j/2))
    ],
)
def test_plain_normals_match_the_formula(name, std, shape):
    w = sample(name, shape)
    sigma = std(initializers.fans(shape)[0])
    assert w.dtype == np.float64 and w.shape == shape
    assert abs(w.mean()) < 0.015 * sigma
    assert w.std() == pytest.approx(sigma, rel=0.01)
    # Plain, not truncated: P(|z| > 2) = 4.55 % for a normal, 0 for jax's truncated ones.
    assert np.mean(np.abs(w) > 2 * sigma) == pytest.approx(0.0455, abs=0.004)
    assert np.abs(w).max() > 3.5 * sigma


@pytest.mark.parametrize("shape", SHAPES)
def test_xavier_is_uniform_with_fan_in_plus_fan_out_bound(shape):
    n_in, n_out = initializers.fans(shape)
    a = np.sqrt(6 / (n_in + n_out))
    w = sample("xavier", shape)
    assert w.min() >= -a and w.max() <= a
    assert w.min() < -0.999 * a and w.max() > 0.999 * a  # fills the interval
    assert abs(w.mean()) < 0.015 * a
    assert w.std() == pytest.approx(a / np.sqrt(3), rel=0.01)  # variance 2/(n_in + n_out)
    hist, _ = np.histogram(w, bins=10, range=(-a, a))
    np.testing.assert_allclose(hist / w.size, 0.1, atol=0.005)  # flat


def test_constant_and_dtype():
    np.testing.assert_array_equal(
        initializers.get("constant")(KEY, (3, 2)), np.full((3, 2), 0.1, np.float32)
    )
    assert initializers.constant(0.5)(KEY, (2,), jnp.bfloat16).dtype == jnp.bfloat16
    for name in INITIALIZERS:
        assert initializers.get(name)(KEY, (8, 4), jnp.bfloat16).dtype == jnp.bfloat16


def test_constant_init_gives_identical_hidden_units():
    """Lecture 03: with constant weights every unit of a layer gets the same gradient, so an
    update keeps them identical (a degenerate solution); random weights break the symmetry."""
    x = jax.random.normal(jax.random.key(1), (32, 6))
    y = jax.random.randint(jax.random.key(2), (32,), 0, 3)
    tx = optax.sgd(0.5)

    def hidden_kernels(init):
        model = create_model("mlp", num_classes=3, input_shape=(6,), widths=(5, 4), init=init)
        params = model.init({"params": jax.random.key(3)}, x, train=False)["params"]

        def loss(p):
            logits = model.apply({"params": p}, x, train=False)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        state, grad = tx.init(params), jax.jit(jax.grad(loss))
        grads = []
        for _ in range(3):
            g = grad(params)
            grads.append(g)
            updates, state = tx.update(g, state)
            params = optax.apply_updates(params, updates)
        return grads, params

    grads, params = hidden_kernels("constant")
    for layer in ("Dense_0", "Dense_1"):
        for g in [grads[0][layer]["kernel"], grads[-1][layer]["kernel"], params[layer]["kernel"]]:
            g = np.asarray(g)
            np.testing.assert_allclose(g, np.repeat(g[:, :1], g.shape[1], axis=1), rtol=1e-5)
        assert np.abs(np.asarray(grads[0][layer]["kernel"])).max() > 0  # it does learn, alike
    grads, _ = hidden_kernels("he")
    g = np.asarray(grads[0]["Dense_0"]["kernel"])
    assert np.abs(g - g[:, :1]).max() > 1e-4


def test_he_keeps_relu_activations_while_small_normal_makes_them_vanish():
    """Lecture 03: N(0, 0.01²) shrinks activations layer after layer in a deep network; the
    ReLU form N(0,1)·√(2/n_j) keeps their variance roughly constant."""
    depth, width = 10, 256
    x = jax.random.normal(jax.random.key(1), (256, width))

    def pre_activation_variances(init):
        model = create_model(
            "mlp", num_classes=2, input_shape=(width,), widths=(width,) * depth, init=init
        )
        variables = model.init({"params": jax.random.key(2)}, x, train=False)
        _, state = model.apply(variables, x, train=False, capture_intermediates=True)
        inter = state["intermediates"]
        return np.array([float(jnp.var(inter[f"Dense_{i}"]["__call__"][0])) for i in range(depth)])

    he = pre_activation_variances("he")
    assert 0.5 < he[-1] / he[0] < 2.0
    assert np.all((he > 1.0) & (he < 4.0))  # Var = 2·Var(x) = 2 in theory
    small = pre_activation_variances("normal")
    # each layer multiplies the variance by 0.01²·n/2 = 0.0128: 9 layers → 1e-17
    assert small[-1] / small[0] < 1e-12
    np.testing.assert_allclose(small[1:] / small[:-1], 0.0128, rtol=0.3)


def test_get_rejects_unknown_names():
    with pytest.raises(ValueError, match=r"`init` must be one of .*xavier_simple"):
        initializers.get("glorot")
    assert initializers.get(jax.nn.initializers.zeros) is jax.nn.initializers.zeros
