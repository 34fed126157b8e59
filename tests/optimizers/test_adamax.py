"""adamax: Kingma & Ba's Algorithm 2 (§7.1), and optax's and torch's ε inside the maximum."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optlab.optimizers._adam import ScaleByAdamState
from optlab.optimizers._adam_variants import adamax
from optlab.testing import assert_matches_reference
from tests.optimizers.rollouts import assert_same_trajectory, jax_rollout, problem, torch_rollout

RTOL, ATOL = 1e-11, 1e-13


def algorithm_2(alpha_of, b1, b2, eps):
    """u_t = max(β2·u_{t−1}, |g_t|), θ ← θ − (α/(1 − β1^t))·m_t/(u_t + ε) (the box, ε added)."""

    def init(theta0):
        z = np.zeros_like(theta0)
        return {"t": 0, "m": z, "u": z}

    def step(theta, g, s):
        t = s["t"] + 1
        m = b1 * s["m"] + (1 - b1) * g
        u = np.maximum(b2 * s["u"], np.abs(g))
        theta = theta - alpha_of(t - 1) / (1 - b1**t) * m / (u + eps)
        return theta, {"t": t, "m": m, "u": u}

    return init, step


def library_source(alpha_of, b1, b2, eps):
    """optax.scale_by_adamax and torch.optim.Adamax (real numbers):
    u_t = max(β2·u_{t−1}, |g_t| + ε), θ ← θ − (α/(1 − β1^t))·m_t/u_t."""

    def init(theta0):
        z = np.zeros_like(theta0)
        return {"t": 0, "m": z, "u": z}

    def step(theta, g, s):
        t = s["t"] + 1
        m = b1 * s["m"] + (1 - b1) * g
        u = np.maximum(b2 * s["u"], np.abs(g) + eps)
        theta = theta - alpha_of(t - 1) / (1 - b1**t) * m / u
        return theta, {"t": t, "m": m, "u": u}

    return init, step


def constant(x):
    return lambda t: x


def decaying(params, t):
    """Gradients that shrink by 0.7 a step, so that u_t is β2·u_{t−1} (the decayed max)."""
    rng = np.random.default_rng(100 + t)
    return jax.tree.map(lambda p: 0.7**t * rng.standard_normal(np.shape(p)), params)


CASES = [
    # alpha, b1, b2, eps, grad_scale, decaying gradients
    (2e-3, 0.9, 0.999, 1e-8, 1.0, False),  # the paper's suggested α, the defaults
    (0.1, 0.5, 0.9, 1e-3, 1.0, False),  # short memories, a visible ε
    (0.05, 0.9, 0.99, 1e-8, 1.0, True),  # shrinking gradients: u decays
    (0.01, 0.0, 0.0, 1e-8, 1.0, False),  # β1 = β2 = 0: θ ← θ − α·g/(|g| + ε)
    (0.01, 0.9, 0.999, 1e-8, 1e-7, False),  # gradients near ε: the forms part
    (0.01, 0.9, 0.999, 0.0, 1.0, False),  # ε = 0: the box itself, in every form
]


@pytest.mark.parametrize("like", [None, "optax", "torch"])
@pytest.mark.parametrize(("alpha", "b1", "b2", "eps", "scale", "decay"), CASES)
def test_formula(like, alpha, b1, b2, eps, scale, decay):
    make = algorithm_2 if like is None else library_source
    init, step = make(constant(alpha), b1, b2, eps)
    assert_matches_reference(
        adamax(alpha, b1, b2, eps, like=like),
        step,
        ref_init=init,
        num_steps=15,
        grad_scale=scale,
        grad_fn=decaying if decay else None,
        rtol=RTOL,
        atol=ATOL,
    )


@pytest.mark.parametrize("like", [None, "optax"])
def test_schedule(like):
    make = algorithm_2 if like is None else library_source
    init, step = make(lambda n: 0.1 / (1 + n), 0.9, 0.99, 1e-8)
    tx = adamax(lambda n: 0.1 / (1 + n), 0.9, 0.99, like=like)
    assert_matches_reference(tx, step, ref_init=init, num_steps=15, rtol=RTOL, atol=ATOL)


def shrinking_problem(num_steps=15):
    params, grads = problem(num_steps)
    return params, [{k: 0.7**t * g[k] for k in g} for t, g in enumerate(grads)]


KWARGS = [
    {"learning_rate": 0.01},
    {"learning_rate": 0.05, "b1": 0.5, "b2": 0.9, "eps": 1e-3},
]


@pytest.mark.parametrize("kwargs", KWARGS)
@pytest.mark.parametrize("make_problem", [problem, shrinking_problem])
def test_parity_optax(kwargs, make_problem):
    params, grads = make_problem(15)
    assert_same_trajectory(
        jax_rollout(adamax(**kwargs, like="optax"), params, grads),
        jax_rollout(optax.adamax(**kwargs), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )


@pytest.mark.parametrize("kwargs", KWARGS)
@pytest.mark.parametrize("make_problem", [problem, shrinking_problem])
def test_parity_torch(torch, kwargs, make_problem):
    # torch.optim.Adamax(lr, betas, eps, weight_decay=0).
    params, grads = make_problem(15)
    kw = {"learning_rate": 0.01, "b1": 0.9, "b2": 0.999, "eps": 1e-8, **kwargs}
    assert_same_trajectory(
        jax_rollout(adamax(**kwargs, like="torch"), params, grads),
        torch_rollout(
            lambda ps: torch.optim.Adamax(
                ps, lr=kw["learning_rate"], betas=(kw["b1"], kw["b2"]), eps=kw["eps"]
            ),
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


def test_complex_parity_and_the_libraries_differ(torch):
    # optax: u of the modulus |g|; torch: of |Re g| and |Im g| apart (view_as_real).
    params, grads = complex_problem()
    ours_optax = jax_rollout(adamax(0.05, 0.9, 0.99, like="optax"), params, grads)
    ours_torch = jax_rollout(adamax(0.05, 0.9, 0.99, like="torch"), params, grads)
    assert_same_trajectory(
        ours_optax,
        jax_rollout(optax.adamax(0.05, 0.9, 0.99), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )
    assert_same_trajectory(
        ours_torch,
        torch_rollout(lambda ps: torch.optim.Adamax(ps, lr=0.05, betas=(0.9, 0.99)), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )
    assert relative_gap(ours_optax, ours_torch, params) > 1e-2


def relative_gap(a, b, start=None):
    """The largest relative difference of the paths (of their displacements from ``start``)."""
    start = start or {k: 0.0 for k in b[0]}
    return max(
        float(np.max(np.abs(x[k] - y[k]) / (np.abs(y[k] - start[k]) + 1e-12)))
        for x, y in zip(a, b, strict=True)
        for k in y
    )


def test_forms_differ_by_where_eps_goes():
    # The paper's m̂/(max(β2·u, |g|) + ε) against the libraries' m̂/max(β2·u, |g| + ε):
    # apart where ε is comparable to the gradients, one formula at ε = 0.
    params, grads = problem(15, scale=1e-6)
    for eps, apart in ((1e-6, True), (0.0, False)):
        paper = jax_rollout(adamax(0.01, eps=eps), params, grads)
        for like in ("optax", "torch"):
            lib = jax_rollout(adamax(0.01, eps=eps, like=like), params, grads)
            if apart:
                assert relative_gap(paper, lib, params) > 1e-2, like
            else:
                assert_same_trajectory(paper, lib, rtol=RTOL, atol=ATOL)


def test_defaults_are_optax_and_torch():
    ours = inspect.signature(adamax).parameters
    theirs = inspect.signature(optax.adamax).parameters
    assert list(ours) == [*theirs, "like"]  # optax's names, in optax's order
    assert ours["like"].kind is inspect.Parameter.KEYWORD_ONLY
    for name in ("b1", "b2", "eps"):
        assert ours[name].default == theirs[name].default, name
    assert (ours["b1"].default, ours["b2"].default) == (0.9, 0.999)  # the paper's
    torch = pytest.importorskip("torch")
    torch_adamax = inspect.signature(torch.optim.Adamax).parameters
    assert torch_adamax["betas"].default == (ours["b1"].default, ours["b2"].default)
    assert torch_adamax["eps"].default == ours["eps"].default


def test_state_is_optax_adam_state():
    tx = adamax(0.1)
    state = tx.init(jnp.ones(2))
    assert isinstance(state[0], ScaleByAdamState)
    assert state[0]._fields == optax.ScaleByAdamState._fields


@pytest.mark.parametrize("like", [None, "optax", "torch"])
def test_traced_hyperparameters(like):
    kwargs = {"learning_rate": 0.1, "b1": 0.9, "b2": 0.99, "eps": 1e-6}
    tx = optax.inject_hyperparams(adamax)(**kwargs, like=like)
    plain = adamax(**kwargs, like=like)
    params, g = jnp.ones(3), jnp.array([0.5, -2.0, 1.0])
    state, ref_state = tx.init(params), plain.init(params)
    update = jax.jit(tx.update)
    for _ in range(3):
        got, state = update(g, state)
        want, ref_state = plain.update(g, ref_state)
        np.testing.assert_allclose(got, want, rtol=1e-5)  # float32 rounding of traced β's


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"like": "keras"}, r"adamax: `like` must be one of \(None, 'optax', 'torch'\)"),
        ({"b1": 1.0}, r"`b1` must be in \[0, 1\)"),
        ({"b2": 1.5}, r"`b2` must be in \[0, 1\)"),
        ({"eps": -1e-8}, "`eps` must be a finite number >= 0"),
        ({"learning_rate": -0.1}, "adamax: `learning_rate` must be"),
    ],
)
def test_bad_input(kwargs, match):
    kwargs = {"learning_rate": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        adamax(**kwargs)
