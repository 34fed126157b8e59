"""schedule_free_sgd / schedule_free_adamw / schedule_free_eval_params (Defazio et al. 2024)."""

import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optlab.optimizers._schedule_free import (
    ScheduleFreeState,
    schedule_free_adamw,
    schedule_free_eval_params,
    schedule_free_sgd,
)
from optlab.testing import assert_matches_reference, random_tree
from tests.optimizers.rollouts import assert_same_trajectory, jax_rollout, problem

RTOL, ATOL = 1e-11, 1e-13


def constant(a):
    return lambda n: a


def schedule_free_box(alpha_of, b1, *, warmup=None, lam=None, p=2.0, r=0.0, adam=None):
    """The paper's loop with x stored explicitly (as the authors' reference code does).

    ``adam=(b2, eps)`` is Algorithm 1 (AdamW), else the SGD form. Update t (from 1) reads
    α(t − 1); γ_t = α(t − 1)·min(1, t/T_warmup)[·√(1 − β2^t)]; w_t = t^r·(max_{i≤t} γ_i)^p.
    """

    def init(theta):
        return {"z": theta.copy(), "x": theta.copy(), "v": np.zeros_like(theta), "W": 0.0,
                "gmax": 0.0, "t": 1}  # fmt: skip

    def step(y, g, s):
        t = s["t"]
        gamma = alpha_of(t - 1) * (min(1.0, t / warmup) if warmup else 1.0)
        v = s["v"]
        if adam is None:
            direction = g + (lam * y if lam else 0.0)
        else:
            b2, eps = adam
            v = b2 * v + (1 - b2) * g * g
            gamma = gamma * math.sqrt(1 - b2**t)
            direction = g / (np.sqrt(v) + eps) + (lam * y if lam else 0.0)
        z = s["z"] - gamma * direction
        gmax = max(s["gmax"], gamma)
        w = t**r * gmax**p
        big_w = s["W"] + w
        c = w / big_w if big_w > 0 else 0.0
        x = (1 - c) * s["x"] + c * z
        y = (1 - b1) * z + b1 * x
        return y, {"z": z, "x": x, "v": v, "W": big_w, "gmax": gmax, "t": t + 1}

    return init, step


def optax_box(alpha, b1, *, warmup=None, lam=None, p=2.0, adam=None):
    """optax.contrib's equations: the z step reads the rate at t − 1 (the base optimizer's
    count), the weight at t (the wrapper's step_count); AdamW bias-corrects v in the root."""

    def rate(n):
        if warmup:
            return alpha * min(n / warmup, 1.0)
        return alpha(n) if callable(alpha) else alpha

    def init(theta):
        return {"z": theta.copy(), "x": theta.copy(), "v": np.zeros_like(theta), "W": 0.0,
                "maxlr": 0.0, "t": 1}  # fmt: skip

    def step(y, g, s):
        t = s["t"]
        v = s["v"]
        if adam is None:
            direction = g + (lam * y if lam else 0.0)
        else:
            b2, eps = adam
            v = b2 * v + (1 - b2) * g * g
            direction = g / (np.sqrt(v / (1 - b2**t)) + eps) + (lam * y if lam else 0.0)
        z = s["z"] - rate(t - 1) * direction
        maxlr = max(s["maxlr"], rate(t))
        w = maxlr**p
        big_w = s["W"] + w
        c = w / big_w if big_w > 0 else 0.0
        x = (1 - c) * s["x"] + c * z
        y = b1 * x + (1 - b1) * z
        return y, {"z": z, "x": x, "v": v, "W": big_w, "maxlr": maxlr, "t": t + 1}

    return init, step


SGD_CASES = [
    # alpha, b1, warmup, weight_decay, p, r
    (1.0, 0.9, None, None, 2.0, 0.0),  # optax's defaults (its learning_rate default 1.0)
    (0.5, 0.5, 4, 0.1, 2.0, 0.0),  # warmup (α/T exact in float32, see _optax_rate) + decay
    (0.1, 0.9, None, None, 0.0, 0.0),  # p = 0: c_{t+1} = 1/t, the paper's equations (1)-(3)
    (0.1, 1.0, None, None, 2.0, 0.0),  # β = 1: the gradient at x (primal averaging)
    (0.125, 0.02, 4, None, 1.0, 0.0),  # small β: x = (y − 0.98·z)/0.02 recovered each step
]


@pytest.mark.parametrize("like", [None, "optax"])
@pytest.mark.parametrize(("alpha", "b1", "warmup", "lam", "p", "r"), SGD_CASES)
def test_sgd_box(like, alpha, b1, warmup, lam, p, r):
    kw = {"warmup_steps": warmup, "b1": b1, "weight_decay": lam, "weight_lr_power": p}
    if like is None:
        init, step = schedule_free_box(constant(alpha), b1, warmup=warmup, lam=lam, p=p, r=r)
    else:
        init, step = optax_box(alpha, b1, warmup=warmup, lam=lam, p=p)
    tx = schedule_free_sgd(alpha, **kw, like=like)
    assert_matches_reference(tx, step, ref_init=init, num_steps=15, rtol=RTOL, atol=ATOL)


def test_sgd_polynomial_weights_and_schedules():
    # r = 1 (the authors' t^r weighting) with warmup; an increasing and a decreasing
    # schedule (γ^max stays at the first rate for the decreasing one).
    init, step = schedule_free_box(constant(0.5), 0.9, warmup=4, r=1.0)
    tx = schedule_free_sgd(0.5, warmup_steps=4, r=1.0)
    assert_matches_reference(tx, step, ref_init=init, num_steps=15, rtol=RTOL, atol=ATOL)
    for schedule in (lambda n: 0.05 * (1 + n), lambda n: 0.3 / (1 + n)):
        init, step = schedule_free_box(schedule, 0.8, warmup=3)
        tx = schedule_free_sgd(schedule, warmup_steps=3, b1=0.8)
        assert_matches_reference(tx, step, ref_init=init, num_steps=15, rtol=RTOL, atol=ATOL)
        init, step = optax_box(schedule, 0.8)
        tx = schedule_free_sgd(schedule, b1=0.8, like="optax")
        assert_matches_reference(tx, step, ref_init=init, num_steps=15, rtol=RTOL, atol=ATOL)


ADAM_CASES = [
    # alpha, b1, b2, eps, weight_decay, warmup, p, r, grad_scale
    (0.0025, 0.9, 0.999, 1e-8, 0.0, None, 2.0, 0.0, 1.0),  # the defaults (optax, authors)
    (0.5, 0.5, 0.9, 1e-3, 0.1, 4, 2.0, 0.0, 1.0),  # warmup, decay at y, large ε
    (0.1, 0.9, 0.0, 1e-8, 0.0, None, 1.0, 0.0, 1.0),  # β2 = 0 (sign-like steps), p = 1
    (0.01, 0.9, 0.99, 1e-6, 0.0, None, 2.0, 0.0, 1e-8),  # gradients below ε
]


@pytest.mark.parametrize("like", [None, "optax"])
@pytest.mark.parametrize(
    ("alpha", "b1", "b2", "eps", "lam", "warmup", "p", "r", "scale"), ADAM_CASES
)
def test_adamw_box(like, alpha, b1, b2, eps, lam, warmup, p, r, scale):
    kw = {"warmup_steps": warmup, "b1": b1, "b2": b2, "eps": eps, "weight_decay": lam,
          "weight_lr_power": p}  # fmt: skip
    if like is None:
        init, step = schedule_free_box(
            constant(alpha), b1, warmup=warmup, lam=lam, p=p, r=r, adam=(b2, eps)
        )
    else:
        init, step = optax_box(alpha, b1, warmup=warmup, lam=lam, p=p, adam=(b2, eps))
    tx = schedule_free_adamw(alpha, **kw, like=like)
    assert_matches_reference(
        tx, step, ref_init=init, num_steps=15, grad_scale=scale, rtol=RTOL, atol=ATOL
    )


def test_adamw_polynomial_weights_and_schedule():
    init, step = schedule_free_box(
        lambda n: 0.02 * (1 + n), 0.9, warmup=5, r=2.0, adam=(0.99, 1e-8)
    )
    tx = schedule_free_adamw(lambda n: 0.02 * (1 + n), 5, 0.9, 0.99, r=2.0)
    assert_matches_reference(tx, step, ref_init=init, num_steps=15, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("like", [None, "optax"])
@pytest.mark.parametrize("adam", [False, True])
def test_eval_params_is_the_boxs_x(like, adam):
    # After each update, schedule_free_eval_params(state, y) is the box's (stored) x.
    alpha, b1 = (0.125, 0.7)  # α·n/4 exact in float32, where optax evaluates its warmup
    if adam:
        tx = schedule_free_adamw(alpha, 4, b1, 0.9, like=like)
        box = (
            optax_box(alpha, b1, warmup=4, adam=(0.9, 1e-8))
            if like
            else schedule_free_box(constant(alpha), b1, warmup=4, adam=(0.9, 1e-8))
        )
    else:
        tx = schedule_free_sgd(alpha, 4, b1, 0.01, like=like)
        box = (
            optax_box(alpha, b1, warmup=4, lam=0.01)
            if like
            else schedule_free_box(constant(alpha), b1, warmup=4, lam=0.01)
        )
    init, step = box
    rng = np.random.default_rng(1)
    shapes = {"w": (3, 4), "b": (4,)}
    params0 = random_tree(shapes, rng)
    with jax.enable_x64(True):
        y = jax.tree.map(jnp.asarray, params0)
        state = tx.init(y)
        ref_y = params0
        ref_s = {k: init(v) for k, v in params0.items()}
        update = jax.jit(tx.update)
        for _ in range(15):
            g = random_tree(shapes, rng)
            u, state = update(jax.tree.map(jnp.asarray, g), state, y)
            y = optax.apply_updates(y, u)
            out = {k: step(ref_y[k], g[k], ref_s[k]) for k in shapes}
            ref_y = {k: o[0] for k, o in out.items()}
            ref_s = {k: o[1] for k, o in out.items()}
            x = schedule_free_eval_params(state, y)
            for k in shapes:
                np.testing.assert_allclose(y[k], ref_y[k], rtol=RTOL, atol=ATOL)
                np.testing.assert_allclose(x[k], ref_s[k]["x"], rtol=1e-10, atol=1e-12)


SGD_PARITY = [
    {"learning_rate": 1.0},
    {"learning_rate": 0.1, "warmup_steps": 5},
    {"learning_rate": 0.3, "warmup_steps": 7, "b1": 0.5, "weight_decay": 0.1},
    {"learning_rate": 0.1, "weight_lr_power": 1.0, "b1": 0.95},
    {"learning_rate": lambda n: 0.01 * (1 + n)},
]
ADAM_PARITY = [
    {"learning_rate": 0.0025},
    {"learning_rate": 0.1, "warmup_steps": 5, "weight_decay": 0.05},
    {"learning_rate": 0.05, "b1": 0.5, "b2": 0.9, "eps": 1e-3, "weight_lr_power": 3.0},
    {"learning_rate": lambda n: 0.01 * (1 + n), "b2": 0.99},
]


@pytest.mark.parametrize(
    ("ours", "theirs", "kwargs"),
    [(schedule_free_sgd, optax.contrib.schedule_free_sgd, kw) for kw in SGD_PARITY]
    + [(schedule_free_adamw, optax.contrib.schedule_free_adamw, kw) for kw in ADAM_PARITY],
)
def test_parity_optax(ours, theirs, kwargs):
    params, grads = problem(15)
    assert_same_trajectory(
        jax_rollout(ours(**kwargs, like="optax"), params, grads),
        jax_rollout(theirs(**kwargs), params, grads),
        rtol=1e-12,
        atol=1e-14,
    )


def test_forms_differ_where_the_formulas_do():
    params, grads = problem(15)
    # With warmup, optax's z step lags by one: its first update is exactly 0 (z unchanged,
    # c = 1 so x = z = y), the paper's moves by α/T_warmup·g_1.
    paper = jax_rollout(schedule_free_sgd(0.1, 5), params, grads)
    lib = jax_rollout(schedule_free_sgd(0.1, 5, like="optax"), params, grads)
    np.testing.assert_array_equal(lib[0]["w"], params["w"])
    assert np.max(np.abs(paper[0]["w"] - params["w"])) > 1e-3
    # Without warmup, a constant rate: the SGD forms agree.
    assert_same_trajectory(
        jax_rollout(schedule_free_sgd(0.1), params, grads),
        jax_rollout(schedule_free_sgd(0.1, like="optax"), params, grads),
        rtol=1e-12,
        atol=1e-14,
    )
    # AdamW, constant rate: the paper's ε/√(1 − β2^t) and √(1 − β2^t)-weighted average vs
    # optax's bias-corrected v; tiny gradients make the ε term dominate.
    small, tiny = problem(15, scale=1e-8)
    paper = jax_rollout(schedule_free_adamw(0.01), small, tiny)
    lib = jax_rollout(schedule_free_adamw(0.01, like="optax"), small, tiny)
    assert np.max(np.abs(paper[-1]["w"] - lib[-1]["w"])) > 1e-4
    # And the weights alone: ε = 0 makes both z steps the same direction at step 1.
    paper = jax_rollout(schedule_free_adamw(0.01, eps=0.0), params, grads)
    lib = jax_rollout(schedule_free_adamw(0.01, eps=0.0, like="optax"), params, grads)
    np.testing.assert_allclose(paper[0]["w"], lib[0]["w"], rtol=1e-12)
    assert np.max(np.abs(paper[-1]["w"] - lib[-1]["w"])) > 1e-6


def test_sgd_eval_point_reaches_the_quadratics_minimum():
    # 0.5·wᵀAw with A's eigenvalues 8 ± 2√2 (lecture 02): x = eval params → 0.
    a = jnp.array([[10.0, 2.0], [2.0, 6.0]])
    tx = schedule_free_sgd(0.1)
    w = jnp.array([1.0, 1.0])
    state = tx.init(w)

    @jax.jit
    def step(w, state):
        updates, state = tx.update(a @ w, state, w)
        return optax.apply_updates(w, updates), state

    for _ in range(200):
        w, state = step(w, state)
    x = schedule_free_eval_params(state, w)
    assert float(jnp.linalg.norm(x)) < 1e-3
    assert float(jnp.linalg.norm(w)) < 1e-3


def test_eval_params_finds_the_state_in_wrappers():
    params = {"a": jnp.array([1.0, 2.0])}
    grads = {"a": jnp.array([0.5, -1.0])}

    def one_step(tx):
        state = tx.init(params)
        updates, state = tx.update(grads, state, params)
        return schedule_free_eval_params(state, optax.apply_updates(params, updates))

    want = one_step(schedule_free_sgd(0.1, b1=0.8))
    for tx in (
        optax.chain(optax.identity(), schedule_free_sgd(0.1, b1=0.8)),
        optax.with_extra_args_support(schedule_free_sgd(0.1, b1=0.8)),
        optax.inject_hyperparams(schedule_free_sgd)(learning_rate=0.1, b1=0.8),
    ):
        np.testing.assert_allclose(one_step(tx)["a"], want["a"], rtol=1e-6)
    # optax.contrib's state is found too, and gives optax's own answer.
    tx = optax.contrib.schedule_free_sgd(0.1, b1=0.8)
    state = tx.init(params)
    updates, state = tx.update(grads, state, params)
    y = optax.apply_updates(params, updates)
    np.testing.assert_allclose(
        schedule_free_eval_params(state, y)["a"],
        optax.contrib.schedule_free_eval_params(state, y)["a"],
        rtol=1e-6,
    )
    with pytest.raises(ValueError, match="holds no ScheduleFreeState"):
        schedule_free_eval_params(optax.adam(0.1).init(params), params)
    two = optax.chain(schedule_free_sgd(0.1), schedule_free_sgd(0.1)).init(params)
    with pytest.raises(ValueError, match="holds 2 ScheduleFreeStates"):
        schedule_free_eval_params(two, params)


def test_state_fields_dtypes_and_state_dtype():
    params = {"w": jnp.ones((2, 3), jnp.bfloat16)}
    state = schedule_free_adamw(0.1, state_dtype=jnp.float32).init(params)
    assert isinstance(state, ScheduleFreeState)
    assert ScheduleFreeState._fields == optax.contrib.ScheduleFreeState._fields
    assert state.z["w"].dtype == jnp.float32 and int(state.step_count) == 1
    assert state.base_optimizer_state.nu["w"].dtype == jnp.bfloat16
    updates, new_state = jax.jit(schedule_free_adamw(0.1, state_dtype=jnp.float32).update)(
        {"w": jnp.ones((2, 3), jnp.bfloat16)}, state, params
    )
    assert updates["w"].dtype == jnp.bfloat16 and new_state.z["w"].dtype == jnp.float32
    with pytest.raises(ValueError, match="needs `params`"):
        schedule_free_sgd(0.1).update(params, schedule_free_sgd(0.1).init(params))


@pytest.mark.parametrize(("ours", "theirs"), [
    (schedule_free_sgd, optax.contrib.schedule_free_sgd),
    (schedule_free_adamw, optax.contrib.schedule_free_adamw),
])  # fmt: skip
def test_defaults_and_order_are_optaxs(ours, theirs):
    mine = inspect.signature(ours).parameters
    lib = inspect.signature(theirs).parameters
    assert list(mine)[: len(lib)] == list(lib)  # optax's positional order
    assert mine["learning_rate"].default is inspect.Parameter.empty  # required here
    for name in list(lib)[1:]:
        assert mine[name].default == lib[name].default, name
    assert mine["r"].default == 0.0 and mine["like"].default is None
    assert mine["r"].kind is inspect.Parameter.KEYWORD_ONLY


def test_traced_hyperparameters_pass():
    tx = optax.inject_hyperparams(schedule_free_adamw)(
        learning_rate=0.1, warmup_steps=3, b1=0.9, b2=0.99, eps=1e-8, weight_decay=0.01
    )
    params = jnp.ones(2)
    state = tx.init(params)
    updates, state = jax.jit(tx.update)(jnp.ones(2), state, params)
    want, _ = schedule_free_adamw(0.1, 3, 0.9, 0.99, 1e-8, 0.01).update(
        jnp.ones(2), schedule_free_adamw(0.1, 3, 0.9, 0.99, 1e-8, 0.01).init(params), params
    )
    np.testing.assert_allclose(updates, want, rtol=1e-6)
    for like in (None, "optax"):
        sgd = optax.inject_hyperparams(schedule_free_sgd, static_args=("like",))(
            learning_rate=0.1, b1=0.8, weight_decay=0.1, like=like
        )
        updates, _ = jax.jit(sgd.update)(jnp.ones(2), sgd.init(params), params)
        assert updates.shape == (2,)


def test_changed_b1_recovers_x_with_the_b1_that_formed_y():
    # The paper form recovers x_t with the β that formed y_t, so x stays the box's x when
    # β changes between updates (inject_hyperparams).
    tx = optax.inject_hyperparams(schedule_free_sgd)(learning_rate=0.1, b1=0.9)
    box = [schedule_free_box(constant(0.1), b) for b in (0.9, 0.5)]
    with jax.enable_x64(True):
        y = jnp.array([1.0, -2.0])
        state = tx.init(y)
        ref_y, ref_s = np.array([1.0, -2.0]), box[0][0](np.array([1.0, -2.0]))
        for t, g in enumerate([[1.0, 0.5], [0.3, -1.0], [2.0, 1.0], [-1.0, 0.2]]):
            if t == 2:
                state.hyperparams["b1"] = jnp.asarray(0.5)
            u, state = tx.update(jnp.asarray(g), state, y)
            y = optax.apply_updates(y, u)
            ref_y, ref_s = box[t >= 2][1](ref_y, np.asarray(g), ref_s)
            np.testing.assert_allclose(y, ref_y, rtol=1e-12)
            np.testing.assert_allclose(schedule_free_eval_params(state, y), ref_s["x"], rtol=1e-12)


@pytest.mark.parametrize("factory", [schedule_free_sgd, schedule_free_adamw])
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"like": "keras"}, r"`like` must be one of \(None, 'optax'\)"),
        ({"like": "torch"}, "torch.optim has no schedule_free"),
        ({"learning_rate": -0.1}, "`learning_rate` must be"),
        ({"b1": 0.0}, r"`b1` must be in \(0, 1\]"),
        ({"b1": 1.5}, r"`b1` must be in \(0, 1\]"),
        ({"warmup_steps": -1}, "`warmup_steps` must be None or an integer >= 0"),
        ({"warmup_steps": 2.5}, "`warmup_steps` must be None or an integer >= 0"),
        ({"weight_decay": -1e-3}, "`weight_decay` must be a finite number >= 0"),
        ({"weight_lr_power": -1.0}, "`weight_lr_power` must be a finite number >= 0"),
        ({"r": -1.0}, "`r` must be a finite number >= 0"),
        ({"r": 1.0, "like": "optax"}, "`r` must be 0 with like='optax'"),
        (
            {"learning_rate": lambda n: 0.1, "warmup_steps": 3, "like": "optax"},
            "like='optax' warms up to a float peak",
        ),
    ],
)
def test_bad_input(factory, kwargs, match):
    kwargs = {"learning_rate": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        factory(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"b2": 1.0}, r"`b2` must be in \[0, 1\)"),
        ({"eps": -1e-8}, "`eps` must be a finite number >= 0"),
    ],
)
def test_bad_adam_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        schedule_free_adamw(0.1, **kwargs)
