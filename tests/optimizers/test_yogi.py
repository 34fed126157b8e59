"""yogi: Zaheer et al.'s Algorithm 2 (additive v, no bias correction) and optax's form."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optlab.optimizers._adam import ScaleByAdamState
from optlab.optimizers._yogi import scale_by_yogi, yogi
from optlab.testing import assert_matches_reference
from tests.optimizers.rollouts import assert_same_trajectory, jax_rollout, problem

RTOL, ATOL = 1e-11, 1e-13


def algorithm_2(eta_of, b1, b2, eps, v0=0.0):
    """The paper's box: m_0 = 0, v_0 = v0 (0 in the box), no debiasing, η read at t − 1."""

    def init(theta0):
        return {"m": np.zeros_like(theta0), "v": np.full_like(theta0, v0), "t": 0}

    def step(theta, g, state):
        m = b1 * state["m"] + (1 - b1) * g
        v = state["v"] - (1 - b2) * np.sign(state["v"] - g * g) * g * g
        theta = theta - eta_of(state["t"]) * m / (np.sqrt(v) + eps)
        return theta, {"m": m, "v": v, "t": state["t"] + 1}

    return init, step


def optax_source(eta_of, b1, b2, eps, eps_root=0.0, v0=1e-6):
    """optax.scale_by_yogi + scale_by_learning_rate, from its source: m_0 = v_0 = v0,
    Adam's bias corrections, √(v̂ + eps_root) + ε."""

    def init(theta0):
        return {"m": np.full_like(theta0, v0), "v": np.full_like(theta0, v0), "t": 0}

    def step(theta, g, state):
        t = state["t"] + 1
        m = (1 - b1) * g + b1 * state["m"]
        v = state["v"] - (1 - b2) * np.sign(state["v"] - g**2) * g**2
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        theta = theta - eta_of(t - 1) * m_hat / (np.sqrt(v_hat + eps_root) + eps)
        return theta, {"m": m, "v": v, "t": t}

    return init, step


def constant(x):
    return lambda t: x


CASES = [
    # eta, b1, b2, eps, v0 (None: the form's default), grad_scale
    (1e-2, 0.9, 0.999, 1e-3, None, 1.0),  # the defaults
    (1e-2, 0.9, 0.9, 1e-3, 1e-6, 1.0),  # short memory, optax's v_0 in the paper's form
    (1e-2, 0.9, 0.99, 1e-3, 2.0, 1.0),  # the paper's advice: v_0 ≈ a mean g² (v > g² early)
    (5e-2, 0.0, 0.999, 1e-8, None, 1.0),  # β1 = 0, tiny ε
    (1e-2, 0.9, 0.999, 1e-3, None, 1e-4),  # gradients far below ε
]


@pytest.mark.parametrize(("eta", "b1", "b2", "eps", "v0", "scale"), CASES)
def test_algorithm_2(eta, b1, b2, eps, v0, scale):
    init, step = algorithm_2(constant(eta), b1, b2, eps, 0.0 if v0 is None else v0)
    tx = yogi(eta, b1, b2, eps, initial_accumulator_value=v0)
    assert_matches_reference(
        tx, step, ref_init=init, num_steps=15, grad_scale=scale, rtol=RTOL, atol=ATOL
    )


@pytest.mark.parametrize(("eta", "b1", "b2", "eps", "v0", "scale"), CASES)
def test_optax_form(eta, b1, b2, eps, v0, scale):
    init, step = optax_source(constant(eta), b1, b2, eps, v0=1e-6 if v0 is None else v0)
    tx = yogi(eta, b1, b2, eps, initial_accumulator_value=v0, like="optax")
    assert_matches_reference(
        tx, step, ref_init=init, num_steps=15, grad_scale=scale, rtol=RTOL, atol=ATOL
    )


@pytest.mark.parametrize("like", [None, "optax"])
def test_schedule_and_eps_root(like):
    eta_of = lambda t: 0.05 / (1 + t)  # noqa: E731
    if like is None:
        init, step = algorithm_2(eta_of, 0.9, 0.999, 1e-3)
        direction = scale_by_yogi(eps_root=0.0)
    else:
        init, step = optax_source(eta_of, 0.9, 0.999, 1e-3, eps_root=1e-4)
        direction = scale_by_yogi(eps_root=1e-4, like="optax")
    tx = optax.chain(direction, optax.scale_by_learning_rate(lambda n: 0.05 / (1 + n)))
    assert_matches_reference(tx, step, ref_init=init, num_steps=15, rtol=RTOL, atol=ATOL)


def test_defaults_match_optax():
    ours = inspect.signature(yogi).parameters
    theirs = inspect.signature(optax.yogi).parameters
    assert list(ours)[: len(theirs)] == list(theirs)
    for name in ("b1", "b2", "eps"):
        assert ours[name].default == theirs[name].default, name
    assert (ours["b1"].default, ours["b2"].default, ours["eps"].default) == (0.9, 0.999, 1e-3)
    assert ours["learning_rate"].default is inspect.Parameter.empty
    scale_ours = inspect.signature(scale_by_yogi).parameters
    scale_theirs = inspect.signature(optax.scale_by_yogi).parameters
    assert list(scale_ours)[: len(scale_theirs)] == list(scale_theirs)
    for name in ("b1", "b2", "eps", "eps_root"):
        assert scale_ours[name].default == scale_theirs[name].default, name
    # a sentinel: 0 for the paper's box, optax's 1e-6 for like="optax"
    assert scale_ours["initial_accumulator_value"].default is None
    state = scale_by_yogi(like="optax").init(jnp.zeros(2))
    assert isinstance(state, ScaleByAdamState)
    np.testing.assert_array_equal(state.nu, np.full(2, 1e-6, np.float32))
    np.testing.assert_array_equal(state.mu, np.full(2, 1e-6, np.float32))
    paper = scale_by_yogi().init(jnp.zeros(2))
    np.testing.assert_array_equal(paper.nu, np.zeros(2))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"learning_rate": 0.01},
        {"learning_rate": 0.05, "b1": 0.5, "b2": 0.9, "eps": 1e-6},
        {"learning_rate": lambda n: 0.05 / (1 + n)},
    ],
)
def test_parity_optax(kwargs):
    params, grads = problem(15)
    assert_same_trajectory(
        jax_rollout(yogi(**kwargs, like="optax"), params, grads),
        jax_rollout(optax.yogi(**kwargs), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )


def test_parity_optax_scale_by_yogi_and_complex():
    kwargs = {
        "b1": 0.8,
        "b2": 0.99,
        "eps": 1e-4,
        "eps_root": 1e-5,
        "initial_accumulator_value": 0.3,
    }
    params, grads = problem(15, seed=2)
    lr = optax.scale_by_learning_rate(0.02)
    assert_same_trajectory(
        jax_rollout(optax.chain(scale_by_yogi(**kwargs, like="optax"), lr), params, grads),
        jax_rollout(optax.chain(optax.scale_by_yogi(**kwargs), lr), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )
    with jax.enable_x64(True):  # |g|² for complex g, as optax
        rng = np.random.default_rng(1)
        p = jnp.asarray(rng.standard_normal(4) + 1j * rng.standard_normal(4))
        ours, theirs = yogi(0.1, like="optax"), optax.yogi(0.1)
        s_ours, s_theirs = ours.init(p), theirs.init(p)
        for _ in range(8):
            g = jnp.asarray(rng.standard_normal(4) + 1j * rng.standard_normal(4))
            u_ours, s_ours = ours.update(g, s_ours, p)
            u_theirs, s_theirs = theirs.update(g, s_theirs, p)
            np.testing.assert_allclose(u_ours, u_theirs, rtol=RTOL, atol=ATOL)
            p = p + u_ours


def test_paper_form_differs_from_optax():
    # The first step: the paper's m_1/(√v_1 + ε) = 0.1·g/(√0.001·|g| + ε) ≈ 3.16·sign(g),
    # optax's bias-corrected m̂_1/(√v̂_1 + ε) ≈ sign(g) (|g| ≫ ε, v_0 = 1e-6 ≪ g²).
    g = jnp.array([3.0, -2.0])
    paper, lib = yogi(1.0), yogi(1.0, like="optax")
    u_paper, _ = paper.update(g, paper.init(jnp.zeros(2)))
    u_lib, _ = lib.update(g, lib.init(jnp.zeros(2)))
    np.testing.assert_allclose(u_paper, -0.1 * g / (np.sqrt(1e-3) * jnp.abs(g) + 1e-3), rtol=1e-5)
    np.testing.assert_allclose(u_lib, -jnp.sign(g), rtol=2e-3)
    params, grads = problem(15)
    a = jax_rollout(yogi(0.01), params, grads)
    b = jax_rollout(optax.yogi(0.01), params, grads)
    assert not np.allclose(a[-1]["w"], b[-1]["w"], rtol=1e-3)


def test_v_stays_non_negative_and_moves_additively():
    # v > g²: v decreases by exactly (1 − β2)·g²; v < g²: it increases by that much.
    tx = scale_by_yogi(b2=0.9, initial_accumulator_value=1.0)
    state = tx.init(jnp.zeros(2))
    _, state = tx.update(jnp.array([0.5, 2.0]), state)
    np.testing.assert_allclose(state.nu, [1.0 - 0.1 * 0.25, 1.0 + 0.1 * 4.0], rtol=1e-6)
    for _ in range(50):
        _, state = tx.update(jnp.array([1e-3, 3.0]), state)
    assert bool(jnp.all(state.nu >= 0))


def test_traced_hyperparameters_pass():
    kwargs = {"learning_rate": 0.1, "b1": 0.9, "b2": 0.99, "eps": 1e-3}
    for like in (None, "optax"):
        tx = optax.inject_hyperparams(yogi, static_args=("like",))(**kwargs, like=like)
        plain = yogi(**kwargs, like=like)
        params = jnp.array([1.0, -2.0])
        state, plain_state = tx.init(params), plain.init(params)
        for g in (jnp.array([0.5, 1.0]), jnp.array([-1.0, 2.0])):
            updates, state = jax.jit(tx.update)(g, state)
            want, plain_state = plain.update(g, plain_state)
            np.testing.assert_allclose(updates, want, rtol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"like": "keras"}, r"yogi: `like` must be one of \(None, 'optax'\)"),
        ({"like": "torch"}, "torch.optim has no yogi"),
        ({"b1": 1.0}, r"`b1` must be in \[0, 1\)"),
        ({"b2": -0.1}, r"`b2` must be in \[0, 1\)"),
        ({"eps": -1e-3}, "`eps` must be a finite number >= 0"),
        ({"initial_accumulator_value": -1e-6}, "`initial_accumulator_value` must be"),
        ({"learning_rate": -0.1}, "yogi: `learning_rate` must be"),
    ],
)
def test_bad_input(kwargs, match):
    kwargs = {"learning_rate": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        yogi(**kwargs)
