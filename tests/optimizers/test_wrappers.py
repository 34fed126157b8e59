"""lookahead / ema_params / skip_spikes / evaluation_point (optlab/optimizers/_wrappers.py)."""

import inspect
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optlab
from optlab.optimizers._wrappers import (
    EmaParamsState,
    LookaheadState,
    SkipSpikesState,
    ema_params,
    evaluation_point,
    lookahead,
    skip_spikes,
)
from optlab.testing import assert_matches_reference, random_tree
from tests.optimizers.rollouts import assert_same_trajectory, problem

RTOL, ATOL = 1e-11, 1e-13
SHAPES = {"dense": {"kernel": (3, 4), "bias": (4,)}, "scale": ()}


# ------------------------------------------------------------------ NumPy references


def sgd_ref(lr_of):
    def init(theta):
        return {"t": 0}

    def step(theta, g, s):
        return theta - lr_of(s["t"]) * g, {"t": s["t"] + 1}

    return init, step


def adam_ref(lr_of, b1=0.9, b2=0.999, eps=1e-8):
    """Kingma & Ba's Algorithm 1 (update t reads lr_of(t − 1))."""

    def init(theta):
        return {"m": np.zeros_like(theta), "v": np.zeros_like(theta), "t": 0}

    def step(theta, g, s):
        t = s["t"] + 1
        m = b1 * s["m"] + (1 - b1) * g
        v = b2 * s["v"] + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        theta = theta - lr_of(t - 1) * m_hat / (np.sqrt(v_hat) + eps)
        return theta, {"m": m, "v": v, "t": t}

    return init, step


def lookahead_algorithm_1(inner, k, alpha, reset=False):
    """The paper's two loops, unrolled: k inner steps on θ, then φ ← φ + α(θ − φ), θ ← φ."""
    inner_init, inner_step = inner

    def init(theta0):
        return {"phi": np.array(theta0, float), "i": 0, "inner": inner_init(theta0)}

    def step(theta, g, s):
        theta, inner_state = inner_step(theta, g, s["inner"])
        i, phi = s["i"] + 1, s["phi"]
        if i == k:
            phi = phi + alpha * (theta - phi)
            theta, i = phi.copy(), 0
            if reset:
                inner_state = inner_init(theta)
        return theta, {"phi": phi, "i": i, "inner": inner_state}

    return init, step


def constant(x):
    return lambda t: x


def quick_first(n, cases):
    """The first ``n`` cases in the quick tier, the others ``slow`` (the full tier)."""
    return [c if i < n else pytest.param(*c, marks=pytest.mark.slow) for i, c in enumerate(cases)]


def rollout(tx, params0, grads, values=None):
    """(params, evaluation_point, state) after each jitted update, float64."""
    with jax.enable_x64(True):
        update = jax.jit(
            lambda g, s, p, v: tx.update(g, s, p, **({} if v is None else {"value": v}))
        )
        point = jax.jit(evaluation_point)
        p = jax.tree.map(jnp.asarray, params0)
        state = tx.init(p)
        out = []
        for t, g in enumerate(grads):
            v = None if values is None else jnp.asarray(values[t])
            updates, state = update(jax.tree.map(jnp.asarray, g), state, p, v)
            p = optax.apply_updates(p, updates)
            out.append(
                (jax.tree.map(np.asarray, p), jax.tree.map(np.asarray, point(state, p)), state)
            )
    return out


def sequence(num_steps, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    params0 = random_tree(SHAPES, rng)
    return params0, [random_tree(SHAPES, rng, scale) for _ in range(num_steps)]


def assert_tree_close(got, want, step, what):
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL, err_msg=f"step {step}: {what}")


# ------------------------------------------------------------------------- lookahead

LOOKAHEAD_CASES = quick_first(
    2,
    [
        # k, alpha, reset, inner: 15 steps, k = 5 divides, 4 does not; k = 1; α = 1 (inner alone)
        (5, 0.5, False, "adam"),
        (4, 0.8, False, "adam"),
        (4, 0.5, True, "adam"),
        (1, 0.3, False, "sgd"),
        (6, 1.0, False, "adam"),
        (3, 0.5, False, "adam_schedule"),
    ],
)


def make_inner(name):
    if name == "adam":
        return optlab.adam(0.05), adam_ref(constant(0.05))
    if name == "adam_schedule":
        return optlab.adam(lambda n: 0.1 / (1 + n)), adam_ref(lambda n: 0.1 / (1 + n))
    return optlab.sgd(0.1), sgd_ref(constant(0.1))


@pytest.mark.parametrize(("k", "alpha", "reset", "inner"), LOOKAHEAD_CASES)
def test_lookahead_algorithm_1(k, alpha, reset, inner):
    tx_inner, ref_inner = make_inner(inner)
    init, step = lookahead_algorithm_1(ref_inner, k, alpha, reset)
    tx = lookahead(tx_inner, k, alpha, reset)
    assert_matches_reference(tx, step, ref_init=init, num_steps=15, rtol=RTOL, atol=ATOL)

    # The slow weights φ (evaluation_point) every step, too.
    params0, grads = sequence(15, seed=1)
    ref_theta = params0
    ref_state = jax.tree.map(init, params0)
    for t, (theta, point, state) in enumerate(rollout(tx, params0, grads), start=1):
        out = jax.tree.map(step, ref_theta, grads[t - 1], ref_state)
        treedef = jax.tree.structure(params0)
        pairs = treedef.flatten_up_to(out)
        ref_theta = treedef.unflatten([q[0] for q in pairs])
        ref_state = treedef.unflatten([q[1] for q in pairs])
        assert_tree_close(theta, ref_theta, t, "fast weights θ")
        phi = treedef.unflatten([s["phi"] for s in treedef.flatten_up_to(ref_state)])
        assert_tree_close(point, phi, t, "slow weights φ")
        assert int(state.count) == t


LOOKAHEAD_PARITY = quick_first(
    2, [(5, 0.5, False), (3, 0.5, True), (4, 0.8, False), (1, 0.25, True)]
)


@pytest.mark.parametrize(("k", "alpha", "reset"), LOOKAHEAD_PARITY)
def test_lookahead_parity_optax(k, alpha, reset):
    # like="optax" on optax.LookaheadParams against optax.lookahead: fast and slow at 1e-10.
    params0, grads = problem(15)

    def run(tx):
        with jax.enable_x64(True):
            p = optax.LookaheadParams.init_synced({k_: jnp.asarray(v) for k_, v in params0.items()})
            state = tx.init(p)
            update = jax.jit(tx.update)
            out = []
            for g in grads:
                updates, state = update({k_: jnp.asarray(v) for k_, v in g.items()}, state, p)
                assert isinstance(updates, optax.LookaheadParams)
                p = optax.apply_updates(p, updates)
                out.append(jax.tree.map(np.asarray, p))
        return out

    ours = run(lookahead(optlab.adam(0.05), k, alpha, reset, like="optax"))
    theirs = run(optax.lookahead(optax.adam(0.05), k, alpha, reset))
    for t, (a, b) in enumerate(zip(ours, theirs, strict=True), start=1):
        for name in ("fast", "slow"):
            for key in b.fast:
                np.testing.assert_allclose(
                    getattr(a, name)[key], getattr(b, name)[key], rtol=1e-10, atol=1e-12,
                    err_msg=f"step {t}, {name}[{key!r}]",
                )  # fmt: skip

    # The default (plain params) computes the same θ (params) and φ (evaluation point).
    plain = rollout(lookahead(optlab.adam(0.05), k, alpha, reset), params0, grads)
    assert_same_trajectory([r[0] for r in plain], [b.fast for b in theirs], rtol=1e-10, atol=1e-12)
    assert_same_trajectory([r[1] for r in plain], [b.slow for b in theirs], rtol=1e-10, atol=1e-12)


def test_lookahead_forms_differ_in_structure_and_reset_point():
    # The default keeps the trainer's params plain; optax's form needs LookaheadParams.
    params = jnp.zeros(2)
    tx = lookahead(optax.sgd(0.1), 2, 0.5)
    updates, state = tx.update(jnp.ones(2), tx.init(params), params)
    assert isinstance(state, LookaheadState) and not isinstance(updates, optax.LookaheadParams)
    with pytest.raises(ValueError, match="LookaheadParams"):
        lookahead(optax.sgd(0.1), 2, 0.5, like="optax").update(jnp.ones(2), state, params)
    # reset_state with an inner state that depends on the params (an anchor θ, as
    # schedule-free's z = θ at init): the default re-initializes at φ (the new θ), optax at
    # the fast params before the update.
    inner = optax.chain(
        optax.GradientTransformation(lambda p: {"anchor": p}, lambda u, s, p=None: (u, s)),
        optax.sgd(1.0),
    )
    p0 = jnp.array([0.0])
    ours = lookahead(inner, 1, 0.5, reset_state=True)
    u, s = ours.update(jnp.array([-1.0]), ours.init(p0), p0)  # θ + u = 1, φ = 0.5
    np.testing.assert_allclose(p0 + u, [0.5])
    np.testing.assert_allclose(s.fast_state[0]["anchor"], [0.5])
    lib = optax.lookahead(inner, 1, 0.5, reset_state=True)
    lp = optax.LookaheadParams.init_synced(p0)
    _, ls = lib.update(jnp.array([-1.0]), lib.init(lp), lp)
    np.testing.assert_allclose(ls.fast_state[0]["anchor"], [0.0])
    mine = lookahead(inner, 1, 0.5, reset_state=True, like="optax")
    _, ms = mine.update(jnp.array([-1.0]), mine.init(lp), lp)
    np.testing.assert_allclose(ms.fast_state[0]["anchor"], [0.0])


def test_lookahead_defaults_and_signature_follow_optax():
    ours = list(inspect.signature(lookahead).parameters.values())
    theirs = list(inspect.signature(optax.lookahead).parameters.values())
    assert [p.name for p in ours[:4]] == [p.name for p in theirs]
    assert ours[3].default is theirs[3].default is False
    assert (ours[1].default, ours[2].default) == (6, 0.5)  # optax has none: TF Addons'


def test_lookahead_inject_hyperparams():
    # slow_step_size (and sync_period) read from the state, changed without recompiling.
    make = optax.inject_hyperparams(lookahead)
    tx = make(optlab.sgd(0.1), sync_period=2, slow_step_size=0.5)
    params = jnp.array([1.0, -2.0])
    state = tx.init(params)
    traces = [0]

    def counted(g, s, p):
        traces[0] += 1
        return tx.update(g, s, p)

    update = jax.jit(counted)
    for t in range(4):
        if t == 2:
            state.hyperparams["slow_step_size"] = jnp.asarray(0.25, jnp.float32)
        updates, state = update(jnp.ones(2), state, params)
        params = optax.apply_updates(params, updates)
    assert traces[0] == 1
    # θ: 1 → 0.9 → 0.8, sync φ = 1 + 0.5·(0.8 − 1) = 0.9; → 0.8 → 0.7, with α = 0.25 now:
    # φ = 0.9 + 0.25·(0.7 − 0.9) = 0.85
    np.testing.assert_allclose(params, [0.85, -2.15], rtol=1e-6)
    np.testing.assert_allclose(evaluation_point(state, params), [0.85, -2.15], rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sync_period": 0}, "lookahead: `sync_period` must be an integer >= 1"),
        ({"sync_period": 2.5}, "`sync_period` must be an integer >= 1"),
        ({"sync_period": True}, "`sync_period` must be an integer >= 1"),
        ({"slow_step_size": 0.0}, r"lookahead: `slow_step_size` must be in \(0, 1\]"),
        ({"slow_step_size": 1.5}, r"`slow_step_size` must be in \(0, 1\]"),
        ({"like": "keras"}, r"lookahead: `like` must be one of \(None, 'optax'\)"),
        ({"like": "torch"}, "torch.optim has no lookahead"),
        ({"fast_optimizer": 0.1}, "`fast_optimizer` must be an optax.GradientTransformation"),
    ],
)
def test_lookahead_bad_input(kwargs, match):
    kwargs = {"fast_optimizer": optax.sgd(0.1), **kwargs}
    with pytest.raises(ValueError, match=match):
        lookahead(**kwargs)


def test_lookahead_needs_params():
    tx = lookahead(optax.sgd(0.1))
    with pytest.raises(ValueError, match="lookahead: `update` needs `params`"):
        tx.update(jnp.ones(2), tx.init(jnp.zeros(2)))


# ------------------------------------------------------------------------ ema_params


def ema_reference(form, beta):
    """Averages of θ_1, θ_2, …: the paper-style debiased EMA, timm's (from θ_0), torch's."""

    def averages(thetas, theta0):
        out, e = [], np.zeros_like(theta0) if form == "debias" else np.array(theta0, float)
        for t, theta in enumerate(thetas, start=1):
            if form == "torch":
                e = np.array(theta, float) if t == 1 else beta * e + (1 - beta) * theta
                out.append(e)
            else:
                e = beta * e + (1 - beta) * theta
                out.append(e / (1 - beta**t) if form == "debias" else e)
        return out

    return averages


EMA_CASES = quick_first(
    3,
    [
        # form, beta, inner
        ("debias", 0.9, "adam"),
        ("plain", 0.9, "adam"),
        ("torch", 0.9, "adam"),
        ("debias", 0.999, "sgd"),
        ("debias", 0.0, "sgd"),  # β = 0: the last iterate
        ("plain", 0.5, "sgd"),
        ("torch", 0.7, "adam_schedule"),
    ],
)


def make_ema(form, beta, tx_inner):
    if form == "torch":
        return ema_params(tx_inner, beta, like="torch")
    return ema_params(tx_inner, beta, debias=form == "debias")


@pytest.mark.parametrize(("form", "beta", "inner"), EMA_CASES)
def test_ema_params_formula(form, beta, inner):
    tx_inner, (init, step) = make_inner(inner)
    tx = make_ema(form, beta, tx_inner)
    # The update is the wrapped optimizer's: the iterates are unchanged.
    assert_matches_reference(tx, step, ref_init=init, num_steps=15, rtol=RTOL, atol=ATOL)

    params0, grads = sequence(16, seed=2)
    runs = rollout(tx, params0, grads)
    averages = ema_reference(form, beta)
    thetas = [r[0] for r in runs]
    leaves0, treedef = jax.tree.flatten(params0)
    per_leaf = [
        averages([treedef.flatten_up_to(th)[i] for th in thetas], leaves0[i])
        for i in range(len(leaves0))
    ]
    for t, (_, point, state) in enumerate(runs, start=1):
        want = treedef.unflatten([per_leaf[i][t - 1] for i in range(len(leaves0))])
        assert_tree_close(point, want, t, f"average ({form})")
        assert isinstance(state, EmaParamsState) and int(state.count) == t


def test_ema_params_parity_torch_averaged_model():
    torch = pytest.importorskip("torch")
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    params0, grads = problem(15)
    decay = 0.8

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        model = torch.nn.ParameterDict(
            {k: torch.nn.Parameter(torch.tensor(v)) for k, v in params0.items()}
        )
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
        averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))
        want_params, want_avg = [], []
        for g in grads:
            for k, p in model.items():
                p.grad = torch.tensor(g[k])
            opt.step()
            averaged.update_parameters(model)
            want_params.append({k: p.detach().numpy().copy() for k, p in model.items()})
            want_avg.append({k: p.detach().numpy().copy() for k, p in averaged.module.items()})
    finally:
        torch.set_default_dtype(previous)

    runs = rollout(ema_params(optlab.adam(0.05, like="torch"), decay, like="torch"), params0, grads)
    assert_same_trajectory([r[0] for r in runs], want_params, rtol=RTOL, atol=ATOL)
    assert_same_trajectory([r[1] for r in runs], want_avg, rtol=RTOL, atol=ATOL)
    # The debiased default differs from torch's from the second step on (equal at the first).
    default = rollout(ema_params(optlab.adam(0.05, like="torch"), decay), params0, grads)
    np.testing.assert_allclose(default[0][1]["w"], want_avg[0]["w"], rtol=RTOL)
    assert not np.allclose(default[1][1]["w"], want_avg[1]["w"], rtol=1e-6)


def test_ema_params_before_the_first_update_is_theta0():
    params = {"a": jnp.array([1.0, 2.0])}
    for tx in (ema_params(optax.sgd(0.1)), ema_params(optax.sgd(0.1), like="torch")):
        np.testing.assert_array_equal(evaluation_point(tx.init(params), params)["a"], [1.0, 2.0])


def test_ema_params_dtype():
    # bfloat16 params with a float32 average: the point comes back in bfloat16.
    params = jnp.ones(3, jnp.bfloat16)
    tx = ema_params(optax.sgd(1e-3), 0.999, ema_dtype=jnp.float32)
    state = tx.init(params)
    assert state.ema.dtype == jnp.float32
    updates, state = jax.jit(tx.update)(jnp.ones(3, jnp.bfloat16), state, params)
    assert updates.dtype == jnp.bfloat16 and state.ema.dtype == jnp.float32
    assert evaluation_point(state, params).dtype == jnp.bfloat16


def test_ema_params_inject_hyperparams():
    tx = optax.inject_hyperparams(ema_params)(optax.sgd(1.0), decay=0.5, debias=False)
    params = jnp.array([0.0])
    state = tx.init(params)
    update = jax.jit(tx.update)
    for t, g in enumerate((-1.0, -1.0)):
        if t == 1:
            state.hyperparams["decay"] = jnp.asarray(0.25, jnp.float32)
        updates, state = update(jnp.array([g]), state, params)
        params = optax.apply_updates(params, updates)
    # ē_1 = 0.5·0 + 0.5·1 = 0.5; ē_2 = 0.25·0.5 + 0.75·2 = 1.625
    np.testing.assert_allclose(evaluation_point(state, params), [1.625], rtol=1e-6)


def test_ema_params_at_decay_one_is_the_uniform_average():
    # A traced β = 1 (only reachable through inject_hyperparams): w_t = 1/t, Polyak–Ruppert.
    tx = optax.inject_hyperparams(ema_params)(optax.sgd(1.0), decay=1.0)
    params = jnp.array([0.0])
    state = tx.init(params)
    for g in (-1.0, -1.0, -1.0):  # θ = 1, 2, 3
        updates, state = tx.update(jnp.array([g]), state, params)
        params = optax.apply_updates(params, updates)
    np.testing.assert_allclose(evaluation_point(state, params), [2.0], rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"decay": 1.0}, r"ema_params: `decay` must be in \[0, 1\)"),
        ({"decay": -0.1}, r"`decay` must be in \[0, 1\)"),
        ({"like": "optax"}, "optax has no ema_params"),
        ({"like": "keras"}, r"ema_params: `like` must be one of \(None, 'torch'\)"),
        ({"optimizer": "adam"}, "`optimizer` must be an optax.GradientTransformation"),
    ],
)
def test_ema_params_bad_input(kwargs, match):
    kwargs = {"optimizer": optax.sgd(0.1), **kwargs}
    with pytest.raises(ValueError, match=match):
        ema_params(**kwargs)


# ----------------------------------------------------------------------- skip_spikes


def weighted_stats(xs, beta):
    """Mean and population variance of xs with weights β^{n−i} (the newest weighs 1)."""
    xs = np.asarray(xs, float)
    w = beta ** np.arange(len(xs) - 1, -1, -1, dtype=float)
    mu = np.sum(w * xs) / np.sum(w)
    return mu, np.sum(w * (xs - mu) ** 2) / np.sum(w)


def skip_reference(inner, k, beta, warmup, metric, values=None):
    """Whole-tree reference: judge x_t against the accepted history, then step or skip."""
    inner_init, inner_step = inner

    def init(params):
        return {"inner": jax.tree.map(inner_init, params), "xs": [], "t": 0, "skips": []}

    def step(params, grads, s):
        t = s["t"] + 1
        if metric == "loss":
            x = float(values[t - 1])
        else:
            x = math.sqrt(sum(float(np.sum(g * g)) for g in jax.tree.leaves(grads)))
        spike = not math.isfinite(x)
        if not spike and t > warmup and s["xs"]:
            mu, var = weighted_stats(s["xs"], beta)
            spike = x > mu + k * math.sqrt(var)
        if spike:
            return params, {**s, "t": t, "skips": [*s["skips"], t]}
        treedef = jax.tree.structure(params)
        out = [
            inner_step(p, g, st)
            for p, g, st in zip(
                treedef.flatten_up_to(params),
                treedef.flatten_up_to(grads),
                treedef.flatten_up_to(s["inner"]),
                strict=True,
            )
        ]
        return treedef.unflatten([o[0] for o in out]), {
            "inner": treedef.unflatten([o[1] for o in out]),
            "xs": [*s["xs"], x],
            "t": t,
            "skips": s["skips"],
        }

    return init, step


SPIKES = {8: 100.0, 12: 30.0, 13: float("nan"), 17: float("inf")}


def planted_grads(num_steps, seed=3):
    rng = np.random.default_rng(seed)
    grads = [random_tree(SHAPES, rng) for _ in range(num_steps)]
    for t, factor in SPIKES.items():
        grads[t - 1] = jax.tree.map(lambda g, f=factor: f * g, grads[t - 1])
    return grads


SKIP_CASES = quick_first(
    2,
    [
        # k, beta, warmup: spikes at 8, 12 (and a NaN at 13, an inf at 17) after the warm-up
        (6.0, 0.99, 5),
        (3.0, 0.9, 4),
        (6.0, 0.0, 3),  # β = 0: the statistics are the last accepted value, σ = 0
        (6.0, 0.99, 0),  # no warm-up: the first step is accepted (no statistics yet)
        (2.0, 0.8, 2),  # a tight k: ordinary steps are skipped too
    ],
)


@pytest.mark.parametrize(("k", "beta", "warmup"), SKIP_CASES)
def test_skip_spikes_grad_norm(k, beta, warmup):
    grads = planted_grads(20)
    init, step = skip_reference(adam_ref(constant(0.05)), k, beta, warmup, "grad_norm")
    tx = skip_spikes(optlab.adam(0.05), k, beta, warmup, metric="grad_norm")
    assert_matches_reference(
        tx, step, ref_init=init, num_steps=20, per_leaf=False,
        grad_fn=lambda params, t: grads[t - 1], rtol=RTOL, atol=ATOL,
    )  # fmt: skip

    params0, _ = sequence(0)
    ref = init(params0)
    ref_params = params0
    for t, (params, _, state) in enumerate(rollout(tx, params0, grads), start=1):
        ref_params, ref = step(ref_params, grads[t - 1], ref)
        assert int(state.skipped) == len(ref["skips"]), f"step {t}: {ref['skips']}"
        if ref["xs"]:
            mu, var = weighted_stats(ref["xs"], beta)
            np.testing.assert_allclose([state.mean, state.var], [mu, var], rtol=1e-10, atol=1e-13)
        assert_tree_close(params, ref_params, t, "params")
    assert {8, 12, 13, 17} <= set(ref["skips"])
    if k == 6.0 and beta > 0:  # only the planted spikes (β = 0: σ = 0 skips any rise)
        assert ref["skips"] == [8, 12, 13, 17]


def test_skip_spikes_loss():
    # Loss spikes (and a NaN) planted after the warm-up; a NaN inside the warm-up is
    # skipped too; an ordinary noisy loss never is at k = 6.
    rng = np.random.default_rng(4)
    values = list(2.0 + 0.05 * rng.standard_normal(20))
    values[2] = float("nan")
    values[9], values[14], values[15] = 9.0, 2.6, float("nan")
    params0, grads = sequence(20, seed=5)
    init, step = skip_reference(adam_ref(constant(0.05)), 6.0, 0.95, 6, "loss", values)
    tx = skip_spikes(optlab.adam(0.05), 6.0, 0.95, 6)
    ref, ref_params = init(params0), params0
    for t, (params, _, state) in enumerate(rollout(tx, params0, grads, values), start=1):
        ref_params, ref = step(ref_params, grads[t - 1], ref)
        assert_tree_close(params, ref_params, t, "params")
        assert int(state.skipped) == len(ref["skips"])
    assert ref["skips"] == [3, 10, 15, 16]
    assert int(state.count) == 20 and int(state.skipped) == 4


def test_skip_spikes_skipped_step_is_a_no_op():
    tx = skip_spikes(optlab.adam(0.1), k=3.0, warmup=3)
    params = {"w": jnp.ones(3)}
    state = tx.init(params)
    update = jax.jit(tx.update)
    for loss in (1.0, 1.2, 0.8):
        _, state = update({"w": jnp.ones(3)}, state, params, value=jnp.asarray(loss))
    updates, after = update({"w": jnp.ones(3)}, state, params, value=jnp.asarray(100.0))
    np.testing.assert_array_equal(updates["w"], np.zeros(3))
    jax.tree.map(np.testing.assert_array_equal, after.inner_state, state.inner_state)
    np.testing.assert_array_equal([after.mean, after.var], [state.mean, state.var])
    assert (int(after.count), int(after.skipped)) == (4, 1)
    assert update._cache_size() == 1  # accepted and skipped steps share one program


def test_skip_spikes_needs_value_for_the_loss():
    tx = skip_spikes(optax.sgd(0.1))
    state = tx.init(jnp.zeros(2))
    with pytest.raises(ValueError, match=r"metric='loss'.*needs the loss as `value=`"):
        tx.update(jnp.ones(2), state, jnp.zeros(2))
    with pytest.raises(ValueError, match="`value` must be a scalar"):
        tx.update(jnp.ones(2), state, jnp.zeros(2), value=jnp.ones(3))


def test_skip_spikes_inject_hyperparams():
    # k read from the state: lowering it makes the same step a spike, without recompiling.
    tx = optax.inject_hyperparams(skip_spikes)(optax.sgd(1.0), k=6.0, decay=0.9, warmup=2)
    params = jnp.zeros(1)
    state = tx.init(params)
    update = jax.jit(tx.update)
    for loss in (1.0, 2.0):
        _, state = update(jnp.ones(1), state, params, value=jnp.asarray(loss))
    # μ = (0.9·1 + 2)/1.9, σ ≈ 0.499: a loss of 3 is within 6σ, not within 0.5σ.
    _, accepted = update(jnp.ones(1), state, params, value=jnp.asarray(3.0))
    state.hyperparams["k"] = jnp.asarray(0.5, jnp.float32)
    _, skipped = update(jnp.ones(1), state, params, value=jnp.asarray(3.0))
    assert int(accepted.inner_state.skipped) == 0 and int(skipped.inner_state.skipped) == 1
    assert update._cache_size() == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": 0.0}, "skip_spikes: `k` must be > 0"),
        ({"k": -1.0}, "`k` must be > 0"),
        ({"decay": 1.0}, r"skip_spikes: `decay` must be in \[0, 1\)"),
        ({"warmup": -1}, "skip_spikes: `warmup` must be an integer >= 0"),
        ({"warmup": 2.5}, "`warmup` must be an integer >= 0"),
        ({"metric": "accuracy"}, r"skip_spikes: `metric` must be one of \('loss', 'grad_norm'\)"),
        ({"optimizer": None}, "`optimizer` must be an optax.GradientTransformation"),
    ],
)
def test_skip_spikes_bad_input(kwargs, match):
    kwargs = {"optimizer": optax.sgd(0.1), **kwargs}
    with pytest.raises(ValueError, match=match):
        skip_spikes(**kwargs)


# ------------------------------------------------------------------ evaluation_point


def test_evaluation_point_finds_states_anywhere():
    params = {"a": jnp.array([1.0, 2.0]), "b": jnp.array([3.0])}
    grads = {"a": jnp.array([1.0, -1.0]), "b": jnp.array([2.0])}
    # No node: the params unchanged.
    plain = optax.adam(0.1)
    assert evaluation_point(plain.init(params), params) is params
    # Inside chain + inject_hyperparams + MultiSteps, found and jitted.
    tx = optax.MultiSteps(
        optax.chain(
            optax.clip_by_global_norm(10.0),
            optax.inject_hyperparams(ema_params)(optax.sgd(0.5), decay=0.5),
        ),
        every_k_schedule=1,
    )
    state = tx.init(params)
    updates, state = jax.jit(tx.update)(grads, state, params)
    new = optax.apply_updates(params, updates)
    got = jax.jit(evaluation_point)(state, new)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), got, new)  # a_1 = θ_1


class _Add(NamedTuple):
    inner: Any
    c: jax.Array

    def evaluation_point(self, params):
        return params + self.c


class _Mul(NamedTuple):
    c: jax.Array

    def evaluation_point(self, params):
        return params * self.c


def test_evaluation_point_composes_innermost_first():
    # outer(inner(params)): 2·3 + 1, not (3 + 1)·2; siblings and nesting both searched.
    state = (optax.EmptyState(), _Add(inner=(_Mul(jnp.asarray(2.0)),), c=jnp.asarray(1.0)))
    np.testing.assert_allclose(evaluation_point(state, jnp.asarray(3.0)), 7.0)
    # The wrappers' points ignore their input, so the outermost one has the last word:
    # ema_params(lookahead(sgd)) gives the average of the fast weights, lookahead(ema(sgd)) φ.
    params = jnp.array([0.0])
    ema_la = ema_params(lookahead(optax.sgd(1.0), 2, 0.5), decay=0.5, debias=False)
    la_ema = lookahead(ema_params(optax.sgd(1.0), decay=0.5, debias=False), 2, 0.5)
    for tx, want in ((ema_la, 0.5), (la_ema, 0.0)):  # θ_1 = 1, φ = 0, ē_1 = 0.5·0 + 0.5·1
        updates, state = tx.update(jnp.array([-1.0]), tx.init(params), params)
        p = optax.apply_updates(params, updates)
        np.testing.assert_allclose(p, [1.0])
        np.testing.assert_allclose(evaluation_point(state, p), [want])


def test_evaluation_point_under_masked():
    # optax.masked: the masked-out leaves keep the params' values.
    params = {"w": jnp.array([1.0]), "b": jnp.array([5.0])}
    tx = optax.masked(lookahead(optax.sgd(1.0), 3, 0.5), {"w": True, "b": False})
    state = tx.init(params)
    updates, state = tx.update({"w": jnp.array([1.0]), "b": jnp.array([1.0])}, state, params)
    p = optax.apply_updates(params, updates)
    got = evaluation_point(state, p)
    np.testing.assert_allclose(got["w"], [1.0])  # φ = θ_0 until the first sync
    np.testing.assert_allclose(got["b"], p["b"])


def test_evaluation_point_optax_form_reads_the_slow_params():
    tx = lookahead(optax.sgd(1.0), 2, 0.5, like="optax")
    p = optax.LookaheadParams.init_synced(jnp.array([0.0]))
    state = tx.init(p)
    updates, state = tx.update(jnp.array([-1.0]), state, p)
    p = optax.apply_updates(p, updates)
    np.testing.assert_allclose(evaluation_point(state, p), [0.0])
    np.testing.assert_allclose(p.fast, [1.0])


def test_states_and_abstract_init():
    params = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params)
    for tx, cls in (
        (lookahead(optlab.adam(0.1)), LookaheadState),
        (ema_params(optlab.adam(0.1)), EmaParamsState),
        (skip_spikes(optlab.adam(0.1), metric="grad_norm"), SkipSpikesState),
    ):
        state = jax.eval_shape(tx.init, abstract)
        assert isinstance(state, cls)
        assert jax.tree.structure(state) == jax.tree.structure(tx.init(params))


def test_evaluation_point_of_a_schedule_free_state():
    # Schedule-free's x = (y − (1 − β)·z)/β, found by the same search inside optax.chain.
    from optlab.optimizers._schedule_free import (
        ScheduleFreeState,
        schedule_free_eval_params,
        schedule_free_sgd,
    )

    if not hasattr(ScheduleFreeState, "evaluation_point"):
        pytest.skip("ScheduleFreeState has no evaluation_point yet")
    tx = optax.chain(optax.clip(10.0), schedule_free_sgd(0.5, b1=0.5))
    y = jnp.array([1.0, -2.0])
    state = tx.init(y)
    for g in ([1.0, 0.5], [0.3, -1.0]):
        updates, state = tx.update(jnp.array(g), state, y)
        y = optax.apply_updates(y, updates)
    np.testing.assert_allclose(evaluation_point(state, y), schedule_free_eval_params(state, y))
