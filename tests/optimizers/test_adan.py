"""adan: Xie et al.'s Algorithm 1 (the paper's β = 1 − optax's b)."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optlab
from optlab.testing import assert_matches_reference
from tests.optimizers.rollouts import assert_same_trajectory, jax_rollout, problem

# 1 − (1 − β) differs from β by an ulp; nothing else is lost beyond float64 rounding.
RTOL, ATOL = 1e-11, 1e-13


def algorithm_1(eta, beta1, beta2, beta3, eps, lam_of):
    """Algorithm 1 in the paper's own β's (β·new + (1 − β)·old), from m_0 = g_0, v_0 = 0,
    v_1 = g_1 − g_0, n_0 = g_0²; λ_k read at k updates made."""

    def init(theta0):
        return {"k": 0}

    def step(theta, g, s):
        k = s["k"]
        if k == 0:
            m, v, n = g, np.zeros_like(g), g * g
        else:
            diff = g - s["g"]
            m = (1 - beta1) * s["m"] + beta1 * g
            v = diff if k == 1 else (1 - beta2) * s["v"] + beta2 * diff
            n = (1 - beta3) * s["n"] + beta3 * (g + (1 - beta2) * diff) ** 2
        eta_k = eta / (np.sqrt(n) + eps)
        theta = (theta - eta_k * (m + (1 - beta2) * v)) / (1 + lam_of(k) * eta)
        return theta, {"k": k + 1, "m": m, "v": v, "n": n, "g": g}

    return init, step


def optax_source(eta, b1, b2, b3, eps, eps_root, lam):
    """optax.scale_by_adan + add_decayed_weights + scale_by_learning_rate, in NumPy."""

    def init(theta0):
        z = np.zeros_like(theta0)
        return {"k": 0, "m": z, "v": z, "n": z, "g": z}

    def step(theta, g, s):
        diff = np.zeros_like(g) if s["k"] == 0 else g - s["g"]
        m = (1 - b1) * g + b1 * s["m"]
        v = (1 - b2) * diff + b2 * s["v"]
        n = (1 - b3) * (g + (1 - b2) * diff) ** 2 + b3 * s["n"]
        k = s["k"] + 1
        m_hat, v_hat, n_hat = m / (1 - b1**k), v / (1 - b2**k), n / (1 - b3**k)
        u = (m_hat + (1 - b2) * v_hat) / (np.sqrt(n_hat + eps_root) + eps)
        theta = theta - eta * (u + lam * theta)
        return theta, {"k": k, "m": m, "v": v, "n": n, "g": g}

    return init, step


CASES = [
    # eta, paper's (β1, β2, β3), eps, lam, grad_scale
    (1e-3, (0.02, 0.08, 0.01), 1e-8, 0.0, 1.0),  # the defaults
    (0.1, (0.02, 0.08, 0.01), 1e-8, 0.02, 1.0),  # the authors' usual λ
    (0.01, (0.5, 0.3, 0.2), 1e-3, 0.5, 1.0),  # short memories, a visible ε and decay
    (0.01, (0.1, 0.1, 0.1), 1e-8, 0.0, 1e-6),  # tiny gradients
]


@pytest.mark.parametrize(("eta", "betas", "eps", "lam", "scale"), CASES)
def test_algorithm_1(eta, betas, eps, lam, scale):
    beta1, beta2, beta3 = betas
    init, step = algorithm_1(eta, beta1, beta2, beta3, eps, lambda k: lam)
    tx = optlab.adan(eta, 1 - beta1, 1 - beta2, 1 - beta3, eps, weight_decay=lam)
    assert_matches_reference(
        tx, step, ref_init=init, num_steps=15, grad_scale=scale, rtol=RTOL, atol=ATOL
    )


@pytest.mark.parametrize(("eta", "betas", "eps", "lam", "scale"), CASES)
@pytest.mark.parametrize("eps_root", [None, 0.0, 1e-4])
def test_optax_source(eta, betas, eps, lam, scale, eps_root):
    b1, b2, b3 = (1 - b for b in betas)
    init, step = optax_source(eta, b1, b2, b3, eps, 1e-8 if eps_root is None else eps_root, lam)
    tx = optlab.adan(eta, b1, b2, b3, eps, eps_root, weight_decay=lam, like="optax")
    assert_matches_reference(
        tx, step, ref_init=init, num_steps=15, grad_scale=scale, rtol=RTOL, atol=ATOL
    )


def test_schedules_for_rate_and_decay():
    # A schedule η_k would enter the reference as η_k; here the decay λ_k varies.
    init, step = algorithm_1(0.05, 0.02, 0.08, 0.01, 1e-8, lambda k: 0.1 * (k + 1))
    tx = optlab.adan(0.05, weight_decay=lambda n: 0.1 * (n + 1))
    assert_matches_reference(tx, step, ref_init=init, num_steps=15, rtol=RTOL, atol=ATOL)


def test_defaults_are_optax():
    mine = inspect.signature(optlab.adan).parameters
    for name, p in inspect.signature(optax.adan).parameters.items():
        if name != "eps_root":  # None: 1e-8 for like="optax" (optax's), 0 for the paper
            assert mine[name].default == p.default, name
    mine = inspect.signature(optlab.scale_by_adan).parameters
    for name, p in inspect.signature(optax.scale_by_adan).parameters.items():
        assert mine[name].default == p.default, name


@pytest.mark.parametrize(
    "kwargs",
    [
        {"learning_rate": 0.01},
        {"learning_rate": 0.05, "b1": 0.9, "b2": 0.8, "b3": 0.95, "eps": 1e-6, "eps_root": 0.0},
        {"learning_rate": 0.02, "weight_decay": 0.1},
        {"learning_rate": 0.02, "weight_decay": 0.1, "mask": {"w": True, "b": False}},
    ],
)
def test_parity_optax(kwargs):
    params, grads = problem(15)
    assert_same_trajectory(
        jax_rollout(optlab.adan(**kwargs, like="optax"), params, grads),
        jax_rollout(optax.adan(**kwargs), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )


def test_paper_differs_from_optax():
    # Same first step, then the (1 − b2) vs b2 Nesterov weight and the start part them.
    params, grads = problem(15)
    paper = jax_rollout(optlab.adan(0.01, eps_root=0.0), params, grads)
    lib = jax_rollout(optlab.adan(0.01, eps_root=0.0, like="optax"), params, grads)
    assert_same_trajectory(paper[:1], lib[:1], rtol=RTOL, atol=ATOL)
    diff = max(np.max(np.abs(paper[-1][k] - lib[-1][k]) / np.abs(lib[-1][k])) for k in lib[-1])
    assert diff > 1e-4, diff


def test_proximal_decay_is_the_papers():
    # θ_1 = (θ_0 − η·g_0/(|g_0| + ε))/(1 + λη) (the paper), θ_0 − η(g_0/(|g_0| + ε) + λθ_0)
    # (optax).
    params, g = jnp.array([2.0]), jnp.array([3.0])
    for like, want in ((None, (2.0 - 0.1) / 1.1), ("optax", 2.0 - 0.1 * (1 + 2.0))):
        tx = optlab.adan(0.1, weight_decay=1.0, eps_root=0.0, like=like)
        updates, _ = tx.update(g, tx.init(params), params)
        np.testing.assert_allclose(np.asarray(params + updates), [want], rtol=1e-6)


def test_traced_hyperparameters_pass():
    tx = optax.inject_hyperparams(optlab.adan)(learning_rate=0.1, b1=0.98, weight_decay=0.01)
    params = jnp.ones(2)
    updates, _ = jax.jit(tx.update)(jnp.ones(2), tx.init(params), params)
    assert updates.shape == (2,)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"like": "keras"}, r"adan: `like` must be one of \(None, 'optax'\)"),
        ({"like": "torch"}, "torch.optim has no adan"),
        ({"b1": 1.0}, r"`b1` must be in \[0, 1\)"),
        ({"b2": -0.1}, r"`b2` must be in \[0, 1\)"),
        ({"b3": 2.0}, r"`b3` must be in \[0, 1\)"),
        ({"eps": -1e-8}, "`eps` must be a finite number >= 0"),
        ({"eps_root": -1.0}, "`eps_root` must be a finite number >= 0"),
        ({"weight_decay": -0.1}, "`weight_decay` must be a finite number >= 0"),
        ({"learning_rate": -0.1}, "adan: `learning_rate` must be"),
    ],
)
def test_bad_input(kwargs, match):
    kwargs = {"learning_rate": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        optlab.adan(**kwargs)
