"""amsgrad: Reddi et al.'s Algorithm 2, and optax's and torch's bias-corrected forms."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optlab.optimizers._adam_variants import ScaleByAmsgradState, amsgrad
from optlab.testing import assert_matches_reference
from tests.optimizers.rollouts import assert_same_trajectory, jax_rollout, problem, torch_rollout

RTOL, ATOL = 1e-11, 1e-13


def paper_box(alpha_of, b1, b2, eps, eps_root=0.0, correct_mu=False, correct_nu=False):
    """Algorithm 2: v̂_t = max(v̂_{t−1}, v_t), x ← x − α_t·m_t/(√v̂_t + ε); the switches
    bias-correct m, resp. v before the maximum (optax's form: both on)."""

    def init(x0):
        z = np.zeros_like(x0)
        return {"t": 0, "m": z, "v": z, "v_hat": z}

    def step(x, g, s):
        t = s["t"] + 1
        m = b1 * s["m"] + (1 - b1) * g
        v = b2 * s["v"] + (1 - b2) * g * g
        v_hat = np.maximum(s["v_hat"], v / (1 - b2**t) if correct_nu else v)
        m_hat = m / (1 - b1**t) if correct_mu else m
        x = x - alpha_of(t - 1) * m_hat / (np.sqrt(v_hat + eps_root) + eps)
        return x, {"t": t, "m": m, "v": v, "v_hat": v_hat}

    return init, step


def torch_source(alpha_of, b1, b2, eps, eps_root=0.0, correct_mu=True, correct_nu=True):
    """torch.optim.Adam(amsgrad=True): the max of the raw v, divided by 1 − β2^t after it:
    x ← x − (α/(1 − β1^t))·m_t/(√max v/√(1 − β2^t) + ε)."""

    def init(x0):
        z = np.zeros_like(x0)
        return {"t": 0, "m": z, "v": z, "v_max": z}

    def step(x, g, s):
        t = s["t"] + 1
        m = b1 * s["m"] + (1 - b1) * g
        v = b2 * s["v"] + (1 - b2) * g * g
        v_max = np.maximum(s["v_max"], v)
        c2 = (1 - b2**t) if correct_nu else 1.0
        denom = np.sqrt(v_max / c2 + eps_root) + eps
        step_size = alpha_of(t - 1) / ((1 - b1**t) if correct_mu else 1.0)
        x = x - step_size * m / denom
        return x, {"t": t, "m": m, "v": v, "v_max": v_max}

    return init, step


def reference(like, *args, **kwargs):
    if like == "torch":
        return torch_source(*args, **kwargs)
    if like == "optax":
        kwargs = {"correct_mu": True, "correct_nu": True, **kwargs}
    return paper_box(*args, **kwargs)


def constant(x):
    return lambda t: x


def decaying(params, t):
    """Gradients that shrink by 0.7 a step, so that every form's maximum holds old values."""
    rng = np.random.default_rng(100 + t)
    return jax.tree.map(lambda p: 0.7**t * rng.standard_normal(np.shape(p)), params)


CASES = [
    # alpha, b1, b2, eps, eps_root, grad_scale, decaying gradients
    (1e-3, 0.9, 0.999, 1e-8, 0.0, 1.0, False),  # the defaults
    (0.1, 0.5, 0.9, 1e-3, 0.0, 1.0, False),  # short memories, a visible ε
    (0.05, 0.9, 0.99, 1e-8, 0.0, 1.0, True),  # shrinking gradients: the maximum holds
    (0.01, 0.0, 0.0, 1e-8, 1e-6, 1.0, True),  # β1 = β2 = 0: max of g², eps_root
    (0.01, 0.9, 0.999, 1e-8, 0.0, 1e-7, False),  # gradients near ε
]


@pytest.mark.parametrize("like", [None, "optax", "torch"])
@pytest.mark.parametrize(("alpha", "b1", "b2", "eps", "eps_root", "scale", "decay"), CASES)
def test_formula(like, alpha, b1, b2, eps, eps_root, scale, decay):
    init, step = reference(like, constant(alpha), b1, b2, eps, eps_root)
    tx = amsgrad(alpha, b1, b2, eps, eps_root, like=like)
    assert_matches_reference(
        tx,
        step,
        ref_init=init,
        num_steps=15,
        grad_scale=scale,
        grad_fn=decaying if decay else None,
        rtol=RTOL,
        atol=ATOL,
    )


@pytest.mark.parametrize("like", [None, "optax", "torch"])
@pytest.mark.parametrize(("mu", "nu"), [(True, False), (False, True), (True, True), (False, False)])
def test_switches(like, mu, nu):
    # The same switches in every form; they change only where v is corrected (torch: after
    # the maximum).
    init, step = reference(like, constant(0.05), 0.9, 0.99, 1e-8, correct_mu=mu, correct_nu=nu)
    tx = amsgrad(0.05, 0.9, 0.99, bias_correction_mu=mu, bias_correction_nu=nu, like=like)
    assert_matches_reference(
        tx, step, ref_init=init, num_steps=15, grad_fn=decaying, rtol=RTOL, atol=ATOL
    )


@pytest.mark.parametrize("like", [None, "optax", "torch"])
def test_schedule(like):
    # α_t = α/√t, the step size of the paper's theorem (t from 1; the schedule reads t − 1).
    init, step = reference(like, lambda n: 0.1 / np.sqrt(n + 1), 0.9, 0.99, 1e-8)
    tx = amsgrad(lambda n: 0.1 / jnp.sqrt(n + 1.0), 0.9, 0.99, like=like)
    assert_matches_reference(tx, step, ref_init=init, num_steps=15, rtol=RTOL, atol=ATOL)


def shrinking_problem(num_steps=15):
    params, grads = problem(num_steps)
    return params, [{k: 0.7**t * g[k] for k in g} for t, g in enumerate(grads)]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"learning_rate": 0.01},
        {"learning_rate": 0.05, "b1": 0.5, "b2": 0.9, "eps": 1e-3, "eps_root": 1e-4},
        {"learning_rate": 0.01, "bias_correction_mu": False, "bias_correction_nu": False},
        {"learning_rate": 0.01, "bias_correction_nu": False},
    ],
)
@pytest.mark.parametrize("make_problem", [problem, shrinking_problem])
def test_parity_optax(kwargs, make_problem):
    params, grads = make_problem(15)
    assert_same_trajectory(
        jax_rollout(amsgrad(**kwargs, like="optax"), params, grads),
        jax_rollout(optax.amsgrad(**kwargs), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )


@pytest.mark.parametrize(
    ("lr", "betas", "eps"), [(0.01, (0.9, 0.999), 1e-8), (0.05, (0.5, 0.9), 1e-3)]
)
@pytest.mark.parametrize("make_problem", [problem, shrinking_problem])
def test_parity_torch(torch, lr, betas, eps, make_problem):
    # torch.optim.Adam(lr, betas, eps, weight_decay=0, amsgrad=True).
    params, grads = make_problem(15)
    assert_same_trajectory(
        jax_rollout(amsgrad(lr, *betas, eps, like="torch"), params, grads),
        torch_rollout(
            lambda ps: torch.optim.Adam(ps, lr=lr, betas=betas, eps=eps, amsgrad=True),
            params,
            grads,
        ),
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
        jax_rollout(amsgrad(0.05, 0.9, 0.99, like="optax"), params, grads),
        jax_rollout(optax.amsgrad(0.05, 0.9, 0.99), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )
    assert_same_trajectory(
        jax_rollout(amsgrad(0.05, 0.9, 0.99, like="torch"), params, grads),
        torch_rollout(
            lambda ps: torch.optim.Adam(ps, lr=0.05, betas=(0.9, 0.99), amsgrad=True),
            params,
            grads,
        ),
        rtol=RTOL,
        atol=ATOL,
    )


def relative_gap(a, b):
    return max(
        float(np.max(np.abs(x[k] - y[k]) / (np.abs(y[k]) + 1e-12)))
        for x, y in zip(a, b, strict=True)
        for k in y
    )


def test_forms_differ():
    # Paper: no correction at all; optax: max of v/(1 − β2^t); torch: max of v, then ÷.
    params, grads = shrinking_problem(15)
    paths = {
        like: jax_rollout(amsgrad(0.05, 0.9, 0.99, like=like), params, grads)
        for like in (None, "optax", "torch")
    }
    assert relative_gap(paths[None], paths["optax"]) > 1e-2
    assert relative_gap(paths[None], paths["torch"]) > 1e-2
    assert relative_gap(paths["optax"], paths["torch"]) > 1e-3
    # … and where the switches make them one formula, one trajectory.
    plain = {"bias_correction_mu": False, "bias_correction_nu": False}
    for like in ("optax", "torch"):
        assert_same_trajectory(
            jax_rollout(amsgrad(0.05, 0.9, 0.99, **plain, like=like), params, grads),
            paths[None],
            rtol=RTOL,
            atol=ATOL,
        )


def test_defaults_are_optax_and_torch():
    ours = inspect.signature(amsgrad).parameters
    theirs = inspect.signature(optax.amsgrad).parameters
    assert list(ours)[: len(theirs)] == list(theirs)  # optax's names, in optax's order
    assert list(ours)[len(theirs) :] == ["like"]
    assert ours["like"].kind is inspect.Parameter.KEYWORD_ONLY
    for name in ("b1", "b2", "eps", "eps_root", "mu_dtype"):
        assert ours[name].default == theirs[name].default, name
    assert ours["learning_rate"].default is inspect.Parameter.empty
    # The switches default to the form's: off for the paper, optax's True otherwise.
    assert ours["bias_correction_mu"].default is None
    assert ours["bias_correction_nu"].default is None
    assert theirs["bias_correction_mu"].default is theirs["bias_correction_nu"].default is True
    torch = pytest.importorskip("torch")
    adam = inspect.signature(torch.optim.Adam).parameters
    assert adam["betas"].default == (ours["b1"].default, ours["b2"].default)
    assert adam["eps"].default == ours["eps"].default


def test_state_and_mu_dtype():
    tx = amsgrad(0.1, mu_dtype=jnp.bfloat16)
    params = {"w": jnp.ones(3, jnp.float32)}
    state = tx.init(params)
    assert isinstance(state[0], ScaleByAmsgradState)
    assert state[0]._fields == optax.ScaleByAmsgradState._fields
    updates, new_state = jax.jit(tx.update)({"w": jnp.full(3, 0.5)}, state, params)
    assert new_state[0].mu["w"].dtype == jnp.bfloat16
    assert new_state[0].nu_max["w"].dtype == jnp.float32
    assert updates["w"].dtype == jnp.float32


@pytest.mark.parametrize("like", [None, "optax", "torch"])
def test_traced_hyperparameters(like):
    kwargs = {"learning_rate": 0.1, "b1": 0.9, "b2": 0.99, "eps": 1e-6, "eps_root": 1e-8}
    tx = optax.inject_hyperparams(amsgrad)(**kwargs, like=like)
    plain = amsgrad(**kwargs, like=like)
    params, g = jnp.ones(3), jnp.array([0.5, -2.0, 1.0])
    state, ref_state = tx.init(params), plain.init(params)
    update = jax.jit(tx.update)
    for _ in range(3):
        got, state = update(g, state)
        want, ref_state = plain.update(g, ref_state)
        # float32 rounding of the traced β's (1 − β2 is off by ~1e-6 relative)
        np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"like": "keras"}, r"amsgrad: `like` must be one of \(None, 'optax', 'torch'\)"),
        ({"b1": 1.0}, r"`b1` must be in \[0, 1\)"),
        ({"b2": -0.1}, r"`b2` must be in \[0, 1\)"),
        ({"eps": -1e-8}, "`eps` must be a finite number >= 0"),
        ({"eps_root": -1.0}, "`eps_root` must be a finite number >= 0"),
        ({"learning_rate": -0.1}, "amsgrad: `learning_rate` must be"),
        ({"bias_correction_mu": "yes"}, "`bias_correction_mu` must be True, False or None"),
    ],
)
def test_bad_input(kwargs, match):
    kwargs = {"learning_rate": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        amsgrad(**kwargs)
