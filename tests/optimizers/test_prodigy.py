"""prodigy: Mishchenko & Defazio's Algorithm 4 (Adam version); d is global over the leaves."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optlab.optimizers._prodigy import ProdigyState, prodigy
from optlab.testing import assert_matches_reference
from tests.optimizers.rollouts import assert_same_trajectory, jax_rollout, problem

RTOL, ATOL = 1e-11, 1e-13


def tmap(f, *trees):
    return jax.tree.map(f, *trees)


def total(tree):
    return float(sum(np.sum(leaf) for leaf in jax.tree.leaves(tree)))


def algorithm_4(gamma_of, b1, b2, b3, eps, d0, coef=1.0, lam=0.0, safeguard=False):
    """The paper's loop on the whole tree (⟨·,·⟩ and ‖·‖_1 over all leaves)."""

    def init(x0):
        zeros = tmap(np.zeros_like, x0)
        return {"m": zeros, "v": zeros, "s": zeros, "x0": x0, "r": 0.0, "d": d0, "k": 0}

    def step(x, g, st):
        k, d = st["k"], st["d"]
        gamma = gamma_of(k)
        m = tmap(lambda m, g: b1 * m + (1 - b1) * d * g, st["m"], g)
        v = tmap(lambda v, g: b2 * v + (1 - b2) * d**2 * g * g, st["v"], g)
        inner = total(tmap(lambda g, x0, x: g * (x0 - x), g, st["x0"], x))
        r = b3 * st["r"] + (1 - b3) * gamma * d**2 * inner
        s_gamma = 1.0 if safeguard else gamma
        s = tmap(lambda s, g: b3 * s + (1 - b3) * s_gamma * d**2 * g, st["s"], g)
        norm = total(tmap(np.abs, s))
        d_new = max(d, coef * r / norm) if norm > 0 else d
        x = tmap(lambda x, m, v: x - gamma * d * (m / (np.sqrt(v) + d * eps) + lam * x), x, m, v)
        return x, {"m": m, "v": v, "s": s, "x0": st["x0"], "r": r, "d": d_new, "k": k + 1}

    return init, step


def optax_prodigy_box(gamma_of, b1, b2, b3, eps, d0, coef=1.0, lam=0.0, safeguard=False):
    """optax.contrib.prodigy's equations: dlr = d·γ·√(1 − β2^{k+1})/(1 − β1^{k+1}) in the
    step and in r, s (with the factor d/d0); ε scaled by the new d."""

    def init(x0):
        zeros = tmap(np.zeros_like, x0)
        return {"m": zeros, "v": zeros, "s": zeros, "x0": x0, "r": 0.0, "d": d0, "k": 0}

    def step(x, g, st):
        k, d = st["k"], st["d"]
        dlr = d * gamma_of(k) * np.sqrt(1 - b2 ** (k + 1)) / (1 - b1 ** (k + 1))
        m = tmap(lambda m, g: b1 * m + (1 - b1) * d * g, st["m"], g)
        v = tmap(lambda v, g: b2 * v + (1 - b2) * (d * g) ** 2, st["v"], g)
        inner = total(tmap(lambda g, x0, x: g * (x0 - x), g, st["x0"], x))
        r = b3 * st["r"] + (d / d0) * dlr * inner
        s_rate = d if safeguard else dlr
        s = tmap(lambda s, g: b3 * s + s_rate * d * g / d0, st["s"], g)
        d_new = max(d, coef * r / total(tmap(np.abs, s)))
        x = tmap(lambda x, m, v: x - lam * dlr * x - dlr * m / (np.sqrt(v) + d_new * eps), x, m, v)
        return x, {"m": m, "v": v, "s": s, "x0": st["x0"], "r": r, "d": d_new, "k": k + 1}

    return init, step


def toward_two(params, t):
    """The gradient of Σ (θ − 2)²/2 plus a bounded wiggle: d has a distance to estimate."""
    return tmap(lambda p: p - 2.0 + 0.3 * np.sin(t + p), params)


def constant(a):
    return lambda k: a


CASES = [
    # gamma, betas, beta3, eps, d0, coef, weight_decay, safeguard
    (1.0, (0.9, 0.999), None, 1e-8, 1e-6, 1.0, 0.0, False),  # the defaults
    (1.0, (0.9, 0.99), None, 1e-8, 1e-2, 1.0, 0.0, False),  # d moves within 15 steps
    (0.5, (0.5, 0.9), 0.7, 1e-3, 1e-2, 2.0, 0.1, False),  # β3, large ε, coef, decay
    (1.0, (0.9, 0.99), None, 1e-8, 1e-2, 1.0, 0.0, True),  # safeguard_warmup
    (1.0, (0.0, 0.0), None, 0.0, 1e-3, 1.0, 0.0, False),  # β = 0: the sign-like extreme
]


@pytest.mark.parametrize("like", [None, "optax"])
@pytest.mark.parametrize(("gamma", "betas", "beta3", "eps", "d0", "coef", "lam", "safe"), CASES)
def test_algorithm_4(like, gamma, betas, beta3, eps, d0, coef, lam, safe):
    b3 = betas[1] ** 0.5 if beta3 is None else beta3
    box = algorithm_4 if like is None else optax_prodigy_box
    init, step = box(constant(gamma), *betas, b3, eps, d0, coef, lam, safe)
    tx = prodigy(gamma, betas, beta3, eps, d0, coef, lam, safe, like=like)
    report = assert_matches_reference(
        tx, step, ref_init=init, num_steps=15, grad_fn=toward_two, per_leaf=False,
        rtol=RTOL, atol=ATOL,
    )  # fmt: skip
    assert report.max_abs_error < 1e-12


def test_schedule_and_the_estimate_grows():
    # γ_k = schedule(k); with d0 = 1e-2 the estimate d grows well above d0 in 15 steps.
    schedule = lambda k: 1.0 / (1 + 0.1 * k)  # noqa: E731
    for like, box in ((None, algorithm_4), ("optax", optax_prodigy_box)):
        init, step = box(schedule, 0.9, 0.99, 0.99**0.5, 1e-8, 1e-2)
        tx = prodigy(schedule, (0.9, 0.99), estim_lr0=1e-2, like=like)
        assert_matches_reference(
            tx, step, ref_init=init, num_steps=15, grad_fn=toward_two, per_leaf=False,
            rtol=RTOL, atol=ATOL,
        )  # fmt: skip
    with jax.enable_x64(True):
        tx = prodigy(1.0, (0.9, 0.99), estim_lr0=1e-2)
        x = {"a": jnp.zeros(3)}
        state = tx.init(x)
        for t in range(15):
            u, state = tx.update(toward_two(x, t), state, x)
            x = optax.apply_updates(x, u)
        assert float(state.estim_lr) > 10 * 1e-2


PARITY = [
    {"learning_rate": 1.0},
    {"learning_rate": 0.5, "betas": (0.5, 0.9), "weight_decay": 0.1, "eps": 1e-3},
    {"learning_rate": 1.0, "safeguard_warmup": True, "beta3": 0.5, "estim_lr0": 1e-2},
    {"learning_rate": lambda k: 1.0 / (1 + k), "estim_lr0": 1e-3, "estim_lr_coef": 2.0},
]


@pytest.mark.parametrize("kwargs", PARITY)
def test_parity_optax(kwargs):
    params, grads = problem(15)
    got = jax_rollout(prodigy(**kwargs, like="optax"), params, grads)
    want = jax_rollout(optax.contrib.prodigy(**kwargs), params, grads)
    assert_same_trajectory(got, want, rtol=1e-12, atol=1e-14)


def test_parity_optax_with_a_growing_estimate():
    # Gradients that point back to the start make d grow (random ones barely move it).
    params, _ = problem(1)
    with jax.enable_x64(True):
        traj = {}
        for name, tx in (
            ("ours", prodigy(1.0, estim_lr0=1e-2, like="optax")),
            ("optax", optax.contrib.prodigy(1.0, estim_lr0=1e-2)),
        ):
            p = {k: jnp.asarray(v) for k, v in params.items()}
            state, out = tx.init(p), []
            for t in range(15):
                g = {k: jnp.asarray(v) for k, v in toward_two(p, t).items()}
                u, state = jax.jit(tx.update)(g, state, p)
                p = optax.apply_updates(p, u)
                out.append({k: np.asarray(v) for k, v in p.items()})
            traj[name] = (out, float(state.estim_lr))
    assert_same_trajectory(traj["ours"][0], traj["optax"][0], rtol=1e-12, atol=1e-14)
    assert traj["optax"][1] > 0.1  # d grew from 1e-2


def test_forms_differ_where_the_formulas_do():
    gfn = toward_two
    kw = {"betas": (0.9, 0.99), "estim_lr0": 1e-2}
    paper = assert_matches_reference(
        prodigy(1.0, **kw), algorithm_4(constant(1.0), 0.9, 0.99, 0.99**0.5, 1e-8, 1e-2)[1],
        ref_init=algorithm_4(constant(1.0), 0.9, 0.99, 0.99**0.5, 1e-8, 1e-2)[0],
        num_steps=15, grad_fn=gfn, per_leaf=False, rtol=RTOL, atol=ATOL,
    )  # fmt: skip
    lib = assert_matches_reference(
        prodigy(1.0, **kw, like="optax"),
        optax_prodigy_box(constant(1.0), 0.9, 0.99, 0.99**0.5, 1e-8, 1e-2)[1],
        ref_init=optax_prodigy_box(constant(1.0), 0.9, 0.99, 0.99**0.5, 1e-8, 1e-2)[0],
        num_steps=15, grad_fn=gfn, per_leaf=False, rtol=RTOL, atol=ATOL,
    )  # fmt: skip
    # Bias correction through dlr: optax's factor √(1 − β2^{k+1})/(1 − β1^{k+1}) is 1 at the
    # first step (√0.01/0.1), then changes, scaling the steps and reweighting r against s.
    diff = max(
        float(np.max(np.abs(a - b)))
        for a, b in zip(
            jax.tree.leaves(paper.jax_params[-1]), jax.tree.leaves(lib.jax_params[-1]), strict=True
        )
    )
    assert diff > 1e-3
    # β1 = β2 = 0 (bias factor 1) and ε = 0: the forms agree.
    small = {"betas": (0.0, 0.0), "eps": 0.0, "estim_lr0": 1e-2}
    params, grads = problem(15)
    assert_same_trajectory(
        jax_rollout(prodigy(1.0, **small), params, grads),
        jax_rollout(prodigy(1.0, **small, like="optax"), params, grads),
        rtol=1e-10,
        atol=1e-13,
    )


def test_zero_gradients_keep_d_in_the_paper_form_and_nan_optax():
    # ‖s‖_1 = 0: d̂ = 0/0. The paper form keeps d (the authors' code skips the estimate),
    # optax's (and like="optax") turns NaN.
    x = jnp.ones(3)
    for like, finite in ((None, True), ("optax", False)):
        tx = prodigy(1.0, like=like)
        _, state = tx.update(jnp.zeros(3), tx.init(x), x)
        assert bool(jnp.isfinite(state.estim_lr)) is finite, like
    _, state = optax.contrib.prodigy(1.0).update(
        jnp.zeros(3), optax.contrib.prodigy(1.0).init(x), x
    )
    assert bool(jnp.isnan(state.estim_lr))


def test_state_is_optaxs_and_needs_params():
    x = {"w": jnp.ones((2, 3), jnp.bfloat16)}
    state = prodigy(1.0).init(x)
    assert isinstance(state, ProdigyState)
    assert ProdigyState._fields == optax.contrib.ProdigyState._fields
    assert state.estim_lr.dtype == jnp.float32 and state.exp_avg["w"].dtype == jnp.bfloat16
    with pytest.raises(ValueError, match="needs `params`"):
        prodigy(1.0).update(x, state)


def test_defaults_and_order_are_optaxs():
    mine = inspect.signature(prodigy).parameters
    lib = inspect.signature(optax.contrib.prodigy).parameters
    assert list(mine)[: len(lib)] == list(lib)
    assert mine["learning_rate"].default is inspect.Parameter.empty
    for name in list(lib)[1:]:
        assert mine[name].default == lib[name].default, name
    assert mine["like"].kind is inspect.Parameter.KEYWORD_ONLY


def test_traced_hyperparameters_pass():
    x = jnp.array([1.0, -2.0])
    tx = optax.inject_hyperparams(prodigy)(
        learning_rate=1.0, beta3=0.9, eps=1e-8, estim_lr0=1e-3, estim_lr_coef=1.0, weight_decay=0.1
    )
    state = tx.init(x)
    update = jax.jit(tx.update)
    direct = prodigy(1.0, beta3=0.9, estim_lr0=1e-3, weight_decay=0.1)
    ref_state = direct.init(x)
    for g in ([1.0, 0.5], [0.3, -1.0], [2.0, 1.0]):
        u, state = update(jnp.asarray(g), state, x)
        want, ref_state = direct.update(jnp.asarray(g), ref_state, x)
        np.testing.assert_allclose(u, want, rtol=1e-6)
        x = optax.apply_updates(x, u)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"like": "keras"}, r"prodigy: `like` must be one of \(None, 'optax'\)"),
        ({"like": "torch"}, "torch.optim has no prodigy"),
        ({"learning_rate": -1.0}, "prodigy: `learning_rate` must be"),
        ({"betas": (1.0, 0.999)}, r"`betas\[0\]` must be in \[0, 1\)"),
        ({"betas": (0.9, -0.1)}, r"`betas\[1\]` must be in \[0, 1\)"),
        ({"betas": (0.9, 0.99, 0.9)}, r"`betas` must be a pair"),
        ({"beta3": 1.0}, r"`beta3` must be in \[0, 1\)"),
        ({"eps": -1e-8}, "`eps` must be a finite number >= 0"),
        ({"estim_lr0": 0.0}, "`estim_lr0` must be a finite number > 0"),
        ({"estim_lr_coef": -1.0}, "`estim_lr_coef` must be a finite number >= 0"),
        ({"weight_decay": -0.1}, "`weight_decay` must be a finite number >= 0"),
    ],
)
def test_bad_input(kwargs, match):
    kwargs = {"learning_rate": 1.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        prodigy(**kwargs)
