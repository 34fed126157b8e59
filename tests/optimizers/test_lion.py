"""lion: Chen et al.'s Algorithm 2 (evolved sign momentum)."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optlab
from optlab.testing import assert_matches_reference
from tests.optimizers.rollouts import assert_same_trajectory, jax_rollout, problem

# sign(c) is exact, so only the EMA's and the decay's roundings remain.
RTOL, ATOL = 1e-11, 1e-13


def algorithm_2(eta_of, b1, b2, lam_of):
    """Chen et al., Algorithm 2, line by line; η_t, λ_t read at t − 1 updates made."""

    def init(theta0):
        return {"m": np.zeros_like(theta0), "n": 0}

    def step(theta, g, s):
        eta, lam = eta_of(s["n"]), lam_of(s["n"])
        c = b1 * s["m"] + (1 - b1) * g
        theta = theta - eta * (np.sign(c) + lam * theta)
        m = b2 * s["m"] + (1 - b2) * g
        return theta, {"m": m, "n": s["n"] + 1}

    return init, step


def constant(x):
    return lambda n: x


@pytest.mark.parametrize("like", [None, "optax"])
@pytest.mark.parametrize(
    ("eta", "b1", "b2", "lam", "grad_scale"),
    [
        (1e-3, 0.9, 0.99, 1e-3, 1.0),  # the defaults (λ: optax's)
        (0.1, 0.5, 0.9, 0.1, 1.0),  # short memories, a visible decay
        (0.01, 0.0, 0.0, 0.0, 1e-6),  # β = 0: signSGD, tiny gradients
        (0.05, 0.95, 0.98, 1.0, 1e4),  # strong decay, huge gradients
    ],
)
def test_algorithm_2(like, eta, b1, b2, lam, grad_scale):
    # optax.lion documents the same four lines (its docstring), hence one reference.
    init, step = algorithm_2(constant(eta), b1, b2, constant(lam))
    assert_matches_reference(
        optlab.lion(eta, b1, b2, weight_decay=lam, like=like),
        step,
        ref_init=init,
        num_steps=15,
        grad_scale=grad_scale,
        rtol=RTOL,
        atol=ATOL,
    )


def test_schedules_for_rate_and_decay():
    init, step = algorithm_2(lambda n: 0.1 / (1 + n), 0.9, 0.99, lambda n: 0.01 * (n + 1))
    tx = optlab.lion(lambda n: 0.1 / (1 + n), weight_decay=lambda n: 0.01 * (n + 1))
    assert_matches_reference(tx, step, ref_init=init, num_steps=15, rtol=RTOL, atol=ATOL)


def test_defaults_are_optax():
    ours = inspect.signature(optlab.lion).parameters
    theirs = inspect.signature(optax.lion).parameters
    for name, p in theirs.items():
        assert ours[name].default == p.default, name
    assert ours["b1"].default == 0.9 and ours["b2"].default == 0.99  # the paper's


@pytest.mark.parametrize("like", [None, "optax"])
@pytest.mark.parametrize(
    "kwargs",
    [
        {"learning_rate": 0.01, "b1": 0.9, "b2": 0.99, "weight_decay": 0.1},
        {"learning_rate": 0.03, "b1": 0.5, "b2": 0.8, "weight_decay": 0.0},
        {"learning_rate": 0.01, "weight_decay": 0.5, "mask": {"w": True, "b": False}},
        {"learning_rate": 0.01, "weight_decay": 0.5, "mask": lambda p: {"w": False, "b": True}},
    ],
)
def test_parity_optax(like, kwargs):
    params, grads = problem(15)
    assert_same_trajectory(
        jax_rollout(optlab.lion(**kwargs, like=like), params, grads),
        jax_rollout(optax.lion(**kwargs), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )


def test_paper_and_optax_forms_agree():
    # optax.lion is Algorithm 2 itself: the switch changes nothing (measured: 0 after 15 steps).
    params, grads = problem(15)
    paper = jax_rollout(optlab.lion(0.01, weight_decay=0.1), params, grads)
    lib = jax_rollout(optlab.lion(0.01, weight_decay=0.1, like="optax"), params, grads)
    assert_same_trajectory(paper, lib, rtol=0.0, atol=0.0)


def test_complex_sign_is_the_phase():
    # sign(c) = c/|c| for complex c (0 at 0): a unit step along the phase, as optax.lion.
    g = jnp.array([3 + 4j, -2j, 0j], jnp.complex64)
    tx = optlab.lion(0.1, weight_decay=0.0)
    updates, _ = tx.update(g, tx.init(jnp.zeros(3, jnp.complex64)))
    np.testing.assert_allclose(np.asarray(updates), -0.1 * np.array([0.6 + 0.8j, -1j, 0]), 1e-6)
    ref, zeros = optax.lion(0.1, weight_decay=0.0), jnp.zeros(3, jnp.complex64)
    want, _ = ref.update(g, ref.init(zeros), zeros)  # optax wants params even for λ = 0
    np.testing.assert_allclose(np.asarray(updates), np.asarray(want), rtol=1e-6)


def test_optax_modes():
    # scale_by_lion keeps optax's sign variants.
    g = jnp.array([0.2, -3.0])
    for mode in ("hard", "smooth", "refined"):
        ours = optlab.scale_by_lion(mode=mode, smooth_beta=2.0)
        theirs = optax.scale_by_lion(mode=mode, smooth_beta=2.0)
        got, _ = ours.update(g, ours.init(g))
        want, _ = theirs.update(g, theirs.init(g))
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6)


def test_traced_hyperparameters_pass():
    tx = optax.inject_hyperparams(optlab.lion)(learning_rate=0.1, b1=0.9, weight_decay=0.01)
    params = jnp.ones(2)
    updates, _ = jax.jit(tx.update)(jnp.ones(2), tx.init(params), params)
    assert updates.shape == (2,)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"like": "keras"}, r"lion: `like` must be one of \(None, 'optax'\)"),
        ({"like": "torch"}, "torch.optim has no lion"),
        ({"b1": 1.5}, r"`b1` must be in \[0, 1\)"),
        ({"b2": -0.1}, r"`b2` must be in \[0, 1\)"),
        ({"weight_decay": -1.0}, "`weight_decay` must be a finite number >= 0"),
        ({"learning_rate": -0.1}, "lion: `learning_rate` must be"),
    ],
)
def test_bad_input(kwargs, match):
    kwargs = {"learning_rate": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        optlab.lion(**kwargs)


def test_bad_mode():
    with pytest.raises(ValueError, match="`mode` must be one of"):
        optlab.scale_by_lion(mode="soft")


def test_update_needs_params_for_decay():
    tx = optlab.lion(0.1, weight_decay=0.1)
    with pytest.raises(ValueError, match="needs `params`"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)))
