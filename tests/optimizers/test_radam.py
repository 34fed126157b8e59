"""radam: Liu et al.'s Algorithm 2 (ρ_t > 4), optax's (ρ_t ≥ 5) and torch's (ρ_t > 5, its ε)."""

import inspect
from decimal import Decimal, getcontext

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optlab.optimizers._adam import ScaleByAdamState
from optlab.optimizers._adam_variants import _sma_length, radam
from optlab.testing import assert_matches_reference
from tests.optimizers.rollouts import assert_same_trajectory, jax_rollout, problem, torch_rollout

RTOL, ATOL = 1e-11, 1e-13


def rho(b2, t):
    """ρ_t = ρ_∞ − 2t·β2^t/(1 − β2^t), ρ_∞ = 2/(1 − β2) − 1 (the paper's definitions)."""
    rho_inf = 2 / (1 - b2) - 1
    return rho_inf - 2 * t * b2**t / (1 - b2**t), rho_inf


def rectified_adam(
    alpha_of, b1, b2, eps, eps_root=0.0, *, form=None, threshold=None, nesterov=False
):
    """Algorithm 2 (form None: ρ_t > 4), optax's scale_by_radam (ρ_t ≥ 5) and
    torch.optim.RAdam (ρ_t > 5, l_t = √(1 − β2^t)/(√v_t + ε)), in NumPy."""
    if threshold is None:
        threshold = 4.0 if form is None else 5.0

    def init(theta0):
        z = np.zeros_like(theta0)
        return {"t": 0, "m": z, "v": z}

    def step(theta, g, s):
        t = s["t"] + 1
        v = b2 * s["v"] + (1 - b2) * g * g
        m = b1 * s["m"] + (1 - b1) * g
        if nesterov:
            m_hat = b1 * m / (1 - b1 ** (t + 1)) + (1 - b1) * g / (1 - b1**t)
        else:
            m_hat = m / (1 - b1**t)
        rho_t, rho_inf = rho(b2, t)
        tractable = rho_t >= threshold if form == "optax" else rho_t > threshold
        alpha = alpha_of(t - 1)
        if tractable:
            if form == "torch":
                l_t = np.sqrt(1 - b2**t) / (np.sqrt(v + eps_root * (1 - b2**t)) + eps)
            else:
                l_t = 1 / (np.sqrt(v / (1 - b2**t) + eps_root) + eps)
            r_t = np.sqrt(
                (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
            )
            theta = theta - alpha * r_t * m_hat * l_t
        else:
            theta = theta - alpha * m_hat
        return theta, {"t": t, "m": m, "v": v}

    return init, step


def constant(x):
    return lambda t: x


CASES = [
    # alpha, b1, b2, eps, eps_root, grad_scale, nesterov
    (1e-3, 0.9, 0.999, 1e-8, 0.0, 1.0, False),  # defaults: adapts from t = 5 (paper), 6
    (0.1, 0.5, 0.9, 1e-3, 0.0, 1.0, False),  # β2 = 0.9: ρ_5 ≈ 4.58, ρ_6 ≈ 5.39; visible ε
    (0.01, 0.9, 0.99, 1e-8, 1e-6, 1.0, False),  # eps_root
    (0.01, 0.0, 0.5, 1e-8, 0.0, 1.0, False),  # ρ_∞ = 3: never adapts (β1 = 0: plain SGD)
    (0.01, 0.9, 0.999, 1e-8, 0.0, 1e-7, False),  # gradients near ε (torch's ε is larger)
    (0.01, 0.9, 0.99, 1e-8, 0.0, 1.0, True),  # optax's Nesterov option
]


@pytest.mark.parametrize("like", [None, "optax", "torch"])
@pytest.mark.parametrize(("alpha", "b1", "b2", "eps", "eps_root", "scale", "nesterov"), CASES)
def test_formula(like, alpha, b1, b2, eps, eps_root, scale, nesterov):
    init, step = rectified_adam(
        constant(alpha), b1, b2, eps, eps_root, form=like, nesterov=nesterov
    )
    tx = radam(alpha, b1, b2, eps, eps_root, nesterov=nesterov, like=like)
    assert_matches_reference(
        tx, step, ref_init=init, num_steps=15, grad_scale=scale, rtol=RTOL, atol=ATOL
    )


@pytest.mark.parametrize("like", [None, "optax", "torch"])
@pytest.mark.parametrize("threshold", [6.0, float("inf")])
def test_threshold_and_schedule(like, threshold):
    init, step = rectified_adam(
        lambda n: 0.1 / (1 + n), 0.9, 0.99, 1e-8, form=like, threshold=threshold
    )
    tx = radam(lambda n: 0.1 / (1 + n), 0.9, 0.99, threshold=threshold, like=like)
    assert_matches_reference(tx, step, ref_init=init, num_steps=15, rtol=RTOL, atol=ATOL)


def test_rectification_switch():
    # β2 = 0.999: ρ_4 < 4 < ρ_5 < 5 < ρ_6. Until ρ_t passes the threshold the step is the
    # bias-corrected momentum −α·m̂_t; the paper's form adapts from t = 5, the libraries'
    # from t = 6.
    b1, b2, alpha = 0.9, 0.999, 0.1
    rhos = [rho(b2, t)[0] for t in range(1, 9)]
    assert rhos[3] < 4 < rhos[4] < 5 < rhos[5]
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(4) for _ in range(8)]
    m, momentum_steps = np.zeros(4), []
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        momentum_steps.append(-alpha * m / (1 - b1**t))
    with jax.enable_x64(True):
        for like, first_adapted in ((None, 5), ("optax", 6), ("torch", 6)):
            tx = radam(alpha, b1, b2, like=like)
            state = tx.init(jnp.zeros(4))
            for t, (g, plain) in enumerate(zip(grads, momentum_steps, strict=True), start=1):
                updates, state = tx.update(jnp.asarray(g), state)
                if t < first_adapted:
                    np.testing.assert_allclose(updates, plain, rtol=1e-14, err_msg=f"{like} t={t}")
                else:  # r_t·l_t ≠ 1: the adaptive step (r_5 ≈ 0.0024, r_6 ≈ 0.039)
                    gap = np.max(np.abs(np.asarray(updates) - plain) / np.abs(plain))
                    assert gap > 0.5, (like, t, gap)


def exact_rho(b2, t):
    """ρ_t in 50-digit decimal arithmetic."""
    getcontext().prec = 50
    b = Decimal(float(b2)) ** t
    return float(2 / (1 - Decimal(float(b2))) - 1 - 2 * t * b / (1 - b))


@pytest.mark.parametrize("x64", [False, True])
def test_rho_is_accurate(x64):
    # ρ_t without cancellation: float32 within 1e-4 of the exact value near the threshold
    # (the direct formula is off by ~0.04 at β2 = 0.999), float64 within 1e-12.
    steps = [*range(1, 21), 100, 1000, 10**5, 10**7]
    with jax.enable_x64(x64):
        t = jnp.asarray(steps, jnp.int32)
        for b2 in (0.5, 0.9, 0.999, 0.9999):
            got, rho_inf, correction = _sma_length(b2, t)
            want = np.array([exact_rho(b2, k) for k in steps])
            if x64:
                np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12)
            else:
                assert got.dtype == jnp.float32
                np.testing.assert_allclose(np.asarray(got[:20], np.float64), want[:20], atol=1e-4)
                np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=1e-5)
            np.testing.assert_allclose(float(rho_inf), 2 / (1 - b2) - 1, rtol=1e-6)
            np.testing.assert_allclose(correction, 1 - b2 ** np.asarray(steps, float), rtol=1e-5)
        got, _, _ = _sma_length(0.0, t)  # β2 = 0: ρ_t = ρ_∞ = 1
        np.testing.assert_array_equal(np.asarray(got), 1.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"learning_rate": 0.01},
        {"learning_rate": 0.05, "b1": 0.5, "b2": 0.9, "eps": 1e-3, "eps_root": 1e-4},
        {"learning_rate": 0.01, "b2": 0.99, "nesterov": True},
        {"learning_rate": 0.01, "b2": 0.99, "threshold": 8.0},
    ],
)
def test_parity_optax(kwargs):
    params, grads = problem(15)
    assert_same_trajectory(
        jax_rollout(radam(**kwargs, like="optax"), params, grads),
        jax_rollout(optax.radam(**kwargs), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )


@pytest.mark.parametrize(
    ("lr", "betas", "eps", "scale"),
    [
        (0.01, (0.9, 0.999), 1e-8, 1.0),
        (0.05, (0.5, 0.9), 1e-3, 1.0),
        (0.01, (0.9, 0.99), 1e-6, 1e-6),
    ],
)
def test_parity_torch(torch, lr, betas, eps, scale):
    # torch.optim.RAdam(lr, betas, eps, weight_decay=0, decoupled_weight_decay=False).
    params, grads = problem(15, scale=scale)
    assert_same_trajectory(
        jax_rollout(radam(lr, *betas, eps, like="torch"), params, grads),
        torch_rollout(lambda ps: torch.optim.RAdam(ps, lr=lr, betas=betas, eps=eps), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )


def complex_problem(num_steps=15):
    params, grads = problem(num_steps, seed=1)
    params2, grads2 = problem(num_steps, seed=2)
    params = {k: params[k] + 1j * params2[k] for k in params}
    grads = [{k: g[k] + 1j * h[k] for k in g} for g, h in zip(grads, grads2, strict=True)]
    return params, grads


def test_complex_parity(torch):
    # optax: v of |g|² (modulus); torch: (Re g)² and (Im g)² apart (view_as_real).
    params, grads = complex_problem()
    assert_same_trajectory(
        jax_rollout(radam(0.05, 0.9, 0.99, like="optax"), params, grads),
        jax_rollout(optax.radam(0.05, 0.9, 0.99), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )
    assert_same_trajectory(
        jax_rollout(radam(0.05, 0.9, 0.99, like="torch"), params, grads),
        torch_rollout(lambda ps: torch.optim.RAdam(ps, lr=0.05, betas=(0.9, 0.99)), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )


def relative_gap(a, b, start):
    """The largest relative difference of the paths' displacements from ``start``."""
    return max(
        float(np.max(np.abs(x[k] - y[k]) / (np.abs(y[k] - start[k]) + 1e-12)))
        for x, y in zip(a, b, strict=True)
        for k in y
    )


def test_forms_differ():
    # Paper vs libraries: the switch at ρ_t > 4 against 5 (step 5 at β2 = 0.999).
    params, grads = problem(15)
    paths = {
        like: jax_rollout(radam(0.01, like=like), params, grads)
        for like in (None, "optax", "torch")
    }
    for like in ("optax", "torch"):
        assert_same_trajectory(paths[None][:4], paths[like][:4], rtol=RTOL, atol=ATOL)
        assert relative_gap(paths[None][4:], paths[like][4:], params) > 1e-2
    # optax vs torch: ε on √v̂_t or on √v_t (larger by 1/√(1 − β2^t)), visible for small g.
    params, grads = problem(15, scale=1e-6)
    optax_path = jax_rollout(radam(0.01, eps=1e-6, like="optax"), params, grads)
    torch_path = jax_rollout(radam(0.01, eps=1e-6, like="torch"), params, grads)
    assert relative_gap(optax_path, torch_path, params) > 1e-2
    # … and one formula where the difference vanishes (ε = 0, the same threshold).
    assert_same_trajectory(
        jax_rollout(radam(0.01, eps=0.0, threshold=5.5, like="optax"), params, grads),
        jax_rollout(radam(0.01, eps=0.0, threshold=5.5, like="torch"), params, grads),
        rtol=1e-10,
        atol=ATOL,
    )


def test_defaults_are_optax_and_torch():
    ours = inspect.signature(radam).parameters
    theirs = inspect.signature(optax.radam).parameters
    assert list(ours) == [*theirs, "like"]  # optax's names, in optax's order
    assert ours["like"].kind is ours["nesterov"].kind is inspect.Parameter.KEYWORD_ONLY
    for name in ("b1", "b2", "eps", "eps_root", "nesterov"):
        assert ours[name].default == theirs[name].default, name
    # The threshold defaults to the form's: the paper's 4, optax's 5.0 (torch's fixed 5).
    assert ours["threshold"].default is None
    assert theirs["threshold"].default == 5.0
    torch = pytest.importorskip("torch")
    torch_radam = inspect.signature(torch.optim.RAdam).parameters
    assert torch_radam["betas"].default == (ours["b1"].default, ours["b2"].default)
    assert torch_radam["eps"].default == ours["eps"].default
    assert torch_radam["weight_decay"].default == 0


def test_state_is_optax_adam_state():
    state = radam(0.1).init(jnp.ones(2))
    assert isinstance(state[0], ScaleByAdamState)
    assert state[0]._fields == optax.ScaleByAdamState._fields


@pytest.mark.parametrize("like", [None, "optax", "torch"])
def test_traced_hyperparameters(like):
    kwargs = {"learning_rate": 0.1, "b1": 0.9, "b2": 0.9, "eps": 1e-6, "eps_root": 0.0}
    tx = optax.inject_hyperparams(radam)(**kwargs, threshold=4.5, like=like)
    plain = radam(**kwargs, threshold=4.5, like=like)
    params = jnp.ones(3)
    state, ref_state = tx.init(params), plain.init(params)
    update = jax.jit(tx.update)
    for k in range(8):  # across the switch (ρ_5 ≈ 4.58)
        g = jnp.array([0.5, -2.0, 1.0]) * (1 + 0.1 * k)
        got, state = update(g, state)
        want, ref_state = plain.update(g, ref_state)
        np.testing.assert_allclose(got, want, rtol=1e-5)  # float32 rounding of traced β's


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"like": "keras"}, r"radam: `like` must be one of \(None, 'optax', 'torch'\)"),
        ({"b1": 1.0}, r"`b1` must be in \[0, 1\)"),
        ({"b2": 1.0}, r"`b2` must be in \[0, 1\)"),
        ({"eps": -1e-8}, "`eps` must be a finite number >= 0"),
        ({"eps_root": -1.0}, "`eps_root` must be a finite number >= 0"),
        ({"threshold": 3.0}, "`threshold` must be a number >= 4"),
        ({"threshold": float("nan")}, "`threshold` must be a number >= 4"),
        ({"learning_rate": -0.1}, "radam: `learning_rate` must be"),
    ],
)
def test_bad_input(kwargs, match):
    kwargs = {"learning_rate": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        radam(**kwargs)
