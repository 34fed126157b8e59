"""lars: You, Gitman & Ginsburg's Algorithm 1 (SGD with momentum and layer-wise rates)."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optlab.optimizers._trust_ratio import lars, scale_by_trust_ratio
from optlab.testing import assert_matches_reference
from tests.optimizers.rollouts import assert_same_trajectory, jax_rollout, problem

RTOL, ATOL = 1e-11, 1e-13


def _walk(tree, prefix=()):
    """(path, leaf) of a tree of nested dicts, in key order."""
    if isinstance(tree, dict):
        for key in sorted(tree):
            yield from _walk(tree[key], (*prefix, key))
    else:
        yield prefix, tree


def _rebuild(tree, values, prefix=()):
    if isinstance(tree, dict):
        return {k: _rebuild(v, values, (*prefix, k)) for k, v in tree.items()}
    return values[prefix]


def _everywhere(path):
    return True


def algorithm_1(
    gamma_of,
    beta_of,
    eta,
    *,
    m=0.9,
    eps=0.0,
    nesterov=False,
    decays=_everywhere,
    trusts=_everywhere,
    form="paper",
    rate_inside=True,
):
    """The box, layer by layer (a layer is a leaf), γ_t and β_t read at t updates made.

    ``form="optax"``: λ^l from the norm of the decayed gradient (optax.lars's chain).
    ``rate_inside=False``: the alternative v ← m·v + λ·d, w ← w − γ_t·v (not LARS's).
    ``decays(path)``/``trusts(path)``: the masks; a masked-out leaf has β = 0 / λ = 1.
    """

    def init(params):
        return {"v": {p: np.zeros_like(w) for p, w in _walk(params)}, "t": 0}

    def step(params, grads, s):
        t = s["t"]
        gamma, beta_t = gamma_of(t), beta_of(t)
        g_of = dict(_walk(grads))
        new, v_new = {}, {}
        for path, w in _walk(params):
            g = g_of[path]
            beta = beta_t if decays(path) else 0.0
            w_norm, g_norm = np.linalg.norm(w.ravel()), np.linalg.norm(g.ravel())
            d = g + beta * w
            if not trusts(path):
                local = 1.0
            elif form == "paper":
                ok = w_norm > 0 and g_norm > 0
                local = eta * w_norm / (g_norm + beta * w_norm + eps) if ok else 1.0
            else:
                d_norm = np.linalg.norm(d.ravel())
                local = eta * w_norm / (d_norm + eps) if w_norm > 0 and d_norm > 0 else 1.0
            if rate_inside:
                v = m * s["v"][path] + gamma * local * d
                delta = m * v + gamma * local * d if nesterov else v
            else:
                v = m * s["v"][path] + local * d
                delta = gamma * v
            v_new[path], new[path] = v, w - delta
        return _rebuild(params, new), {"v": v_new, "t": t + 1}

    return init, step


def constant(x):
    return lambda t: x


def rollout_reference(init, step, params, grads):
    state, out = init(params), []
    for g in grads:
        params, state = step(params, g, state)
        out.append(params)
    return out


CASES = [
    # gamma, beta, eta, m, eps, nesterov, grad_scale
    (10.0, 0.0, 0.001, 0.9, 0.0, False, 1.0),  # optax's defaults, a LARS-sized rate
    (2.0, 5e-4, 0.001, 0.9, 0.0, False, 1.0),  # the paper's ImageNet β
    (0.5, 0.3, 0.02, 0.9, 0.0, False, 1.0),  # a strong decay: the forms' λ differ
    (0.5, 0.1, 0.02, 0.5, 1e-2, True, 1.0),  # ε, Nesterov
    (1.0, 0.1, 0.05, 0.0, 0.0, False, 1e-6),  # no momentum, tiny gradients
    (1.0, 0.01, 0.05, 0.95, 1e-9, False, 1e4),  # huge gradients
]


@pytest.mark.parametrize("like", [None, "optax"])
@pytest.mark.parametrize(("gamma", "beta", "eta", "m", "eps", "nesterov", "scale"), CASES)
def test_algorithm_1(like, gamma, beta, eta, m, eps, nesterov, scale):
    form = "paper" if like is None else "optax"
    init, step = algorithm_1(
        constant(gamma), constant(beta), eta, m=m, eps=eps, nesterov=nesterov, form=form
    )
    tx = lars(gamma, beta, True, eta, eps, True, m, nesterov, like=like)
    assert_matches_reference(
        tx, step, ref_init=init, num_steps=15, per_leaf=False, grad_scale=scale,
        rtol=RTOL, atol=ATOL,
    )  # fmt: skip


# Default shapes: {"dense": {"kernel", "bias"}, "scale"}. Masks: a full tree, a prefix, a
# function of the params (here: the leaves with at least two dimensions).
MASKS = [
    (
        {"dense": {"kernel": True, "bias": False}, "scale": False},
        {"dense": {"kernel": False, "bias": True}, "scale": True},
        lambda path: path == ("dense", "kernel"),
        lambda path: path != ("dense", "kernel"),
    ),
    ({"dense": True, "scale": False}, True, lambda path: path[0] == "dense", _everywhere),
    (
        lambda params: jax.tree.map(lambda p: p.ndim >= 2, params),
        lambda params: jax.tree.map(lambda p: p.ndim >= 2, params),
        lambda path: path == ("dense", "kernel"),
        lambda path: path == ("dense", "kernel"),
    ),
]


@pytest.mark.parametrize("like", [None, "optax"])
@pytest.mark.parametrize(("decay_mask", "trust_mask", "decays", "trusts"), MASKS)
def test_masks(like, decay_mask, trust_mask, decays, trusts):
    form = "paper" if like is None else "optax"
    init, step = algorithm_1(
        constant(0.5), constant(0.2), 0.02, decays=decays, trusts=trusts, form=form
    )
    tx = lars(0.5, 0.2, decay_mask, 0.02, trust_ratio_mask=trust_mask, momentum=0.9, like=like)
    assert_matches_reference(
        tx, step, ref_init=init, num_steps=15, per_leaf=False, rtol=RTOL, atol=ATOL
    )


@pytest.mark.parametrize("like", [None, "optax"])
@pytest.mark.parametrize("nesterov", [False, True])
def test_schedules_for_rate_and_decay(like, nesterov):
    # The paper's own schedule γ_t = γ_0·(1 − t/T)², and a growing β_t.
    form = "paper" if like is None else "optax"
    gamma_of = lambda t: 3.0 * (1 - t * (1 / 15)) ** 2  # noqa: E731  (float64 in jax too)
    beta_of = lambda t: 0.05 * (1 + t)  # noqa: E731
    init, step = algorithm_1(gamma_of, beta_of, 0.01, nesterov=nesterov, form=form)
    tx = lars(gamma_of, beta_of, trust_coefficient=0.01, nesterov=nesterov, like=like)
    assert_matches_reference(
        tx, step, ref_init=init, num_steps=15, per_leaf=False, rtol=RTOL, atol=ATOL
    )


@pytest.mark.parametrize("like", [None, "optax"])
@pytest.mark.parametrize("beta", [0.0, 0.2])
def test_zero_gradient_leaf(like, beta):
    # ‖g‖ = 0 on "scale" at every step: the paper's λ = 1 (so the step is γ·β·w), optax's
    # λ = η‖w‖/‖β·w‖ = η/β where β > 0.
    form = "paper" if like is None else "optax"
    init, step = algorithm_1(constant(0.5), constant(beta), 0.02, form=form)
    rng = np.random.default_rng(3)
    seq = [rng.standard_normal((3, 4)) for _ in range(15)]

    def grad_fn(params, t):
        return {
            "dense": {"kernel": seq[t - 1], "bias": params["dense"]["bias"] - 1.0},
            "scale": np.zeros(()),
        }

    assert_matches_reference(
        lars(0.5, beta, trust_coefficient=0.02, like=like), step, ref_init=init,
        num_steps=15, per_leaf=False, grad_fn=grad_fn, rtol=RTOL, atol=ATOL,
    )  # fmt: skip


@pytest.mark.parametrize("like", [None, "optax"])
def test_zero_parameter_leaf(like):
    # ‖w‖ = 0 (a zero-initialized bias): λ = 1 for its first step (the formula's λ = 0 would
    # freeze it forever); from the second step on ‖w‖ > 0.
    form = "paper" if like is None else "optax"
    params, grads = problem(15)
    params["b"] = np.zeros(4)
    init, step = algorithm_1(constant(0.5), constant(0.1), 0.02, form=form)
    got = jax_rollout(lars(0.5, 0.1, trust_coefficient=0.02, like=like), params, grads)
    want = rollout_reference(init, step, params, grads)
    assert_same_trajectory(got, want, rtol=RTOL, atol=ATOL)
    assert np.all(got[0]["b"] != 0)


SCHEDULE = lambda n: 2.0 / (1 + 0.5 * n)  # noqa: E731  (NumPy and jax alike)

PARITY = [
    {"learning_rate": 10.0},
    {"learning_rate": 1.0, "weight_decay": 0.1, "trust_coefficient": 0.02},
    {"learning_rate": 1.0, "weight_decay": 0.1, "eps": 1e-2, "nesterov": True},
    {"learning_rate": 1.0, "weight_decay": 0.1, "momentum": 0.0},
    {"learning_rate": SCHEDULE, "weight_decay": lambda n: 0.01 * (1 + n)},
    {
        "learning_rate": 1.0,
        "weight_decay": 0.1,
        "weight_decay_mask": {"w": True, "b": False},
        "trust_ratio_mask": {"w": False, "b": True},
    },
    {
        "learning_rate": 1.0,
        "weight_decay": 0.1,
        "weight_decay_mask": lambda p: jax.tree.map(lambda x: x.ndim > 1, p),
        "trust_ratio_mask": lambda p: jax.tree.map(lambda x: x.ndim > 1, p),
    },
]


@pytest.mark.parametrize("kwargs", PARITY)
def test_parity_optax(kwargs):
    params, grads = problem(15)
    assert_same_trajectory(
        jax_rollout(lars(**kwargs, like="optax"), params, grads),
        jax_rollout(optax.lars(**kwargs), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )


@pytest.mark.parametrize("zero", ["params", "grads"])
@pytest.mark.parametrize("kwargs", PARITY[:2])
def test_parity_optax_zero_norms(kwargs, zero):
    # "b" starts at 0 (‖θ‖ = 0) or never gets a gradient: both ratio rules, side by side.
    params, grads = problem(15)
    if zero == "params":
        params["b"] = np.zeros(4)
    else:
        for g in grads:
            g["b"] = np.zeros(4)
    assert_same_trajectory(
        jax_rollout(lars(**kwargs, like="optax"), params, grads),
        jax_rollout(optax.lars(**kwargs), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )


def test_forms_differ_only_through_the_decay_in_the_norm():
    params, grads = problem(15)
    kwargs = {"learning_rate": 1.0, "weight_decay": 0.3, "trust_coefficient": 0.02}
    paper = jax_rollout(lars(**kwargs), params, grads)
    lib = jax_rollout(optax.lars(**kwargs), params, grads)
    gap = max(np.max(np.abs(p[k] - q[k])) for p, q in zip(paper, lib, strict=True) for k in p)
    assert gap > 1e-3  # ‖g + βw‖ < ‖g‖ + β‖w‖: optax's steps are longer
    kwargs["weight_decay"] = 0.0  # no decay: the two λ^l coincide
    assert_same_trajectory(
        jax_rollout(lars(**kwargs), params, grads),
        jax_rollout(optax.lars(**kwargs), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )


def test_rate_sits_inside_the_momentum():
    # v ← m·v + γ_t·λ·d (the box, optax's chain): a schedule is not the same as
    # w ← w − γ_t·(m·v + λ·d), which a constant rate cannot tell apart.
    params, grads = problem(15)
    for gamma_of, differs in ((constant(0.7), False), (SCHEDULE, True)):
        got = jax_rollout(lars(gamma_of, 0.1, trust_coefficient=0.02), params, grads)
        inside = algorithm_1(gamma_of, constant(0.1), 0.02)
        outside = algorithm_1(gamma_of, constant(0.1), 0.02, rate_inside=False)
        assert_same_trajectory(got, rollout_reference(*inside, params, grads), rtol=RTOL, atol=ATOL)
        other = rollout_reference(*outside, params, grads)
        gap = max(np.max(np.abs(p[k] - q[k])) for p, q in zip(got, other, strict=True) for k in p)
        assert (gap > 1e-3) == differs, gap


def test_defaults_are_optax():
    ours = list(inspect.signature(lars).parameters.values())
    theirs = list(inspect.signature(optax.lars).parameters.values())
    assert [p.name for p in ours[: len(theirs)]] == [p.name for p in theirs]
    for mine, p in zip(ours, theirs, strict=False):
        assert mine.default == p.default, p.name
        assert mine.kind == p.kind, p.name
    assert ours[-1].name == "like" and ours[-1].kind is inspect.Parameter.KEYWORD_ONLY
    assert ours[-1].default is None


def test_scale_by_trust_ratio_is_optax():
    # The reusable piece: optax.scale_by_trust_ratio's names, defaults and numbers.
    ours = inspect.signature(scale_by_trust_ratio).parameters
    theirs = inspect.signature(optax.scale_by_trust_ratio).parameters
    assert {k: p.default for k, p in ours.items()} == {k: p.default for k, p in theirs.items()}
    params = {"w": np.arange(12.0).reshape(3, 4) - 5, "b": np.zeros(4), "s": np.array(0.3)}
    updates = {"w": np.ones((3, 4)), "b": np.arange(4.0), "s": np.array(0.0)}
    with jax.enable_x64(True):
        for kwargs in ({}, {"min_norm": 2.0, "trust_coefficient": 0.1, "eps": 0.5}):
            got, state = scale_by_trust_ratio(**kwargs).update(updates, optax.EmptyState(), params)
            want, _ = optax.scale_by_trust_ratio(**kwargs).update(
                updates, optax.EmptyState(), params
            )
            for k in want:
                np.testing.assert_allclose(got[k], want[k], rtol=1e-15, atol=0)
    assert state == optax.EmptyState()


def test_complex_norms_are_moduli():
    tx = lars(1.0, momentum=0.0, trust_coefficient=1.0)
    params = jnp.array([3.0 + 4.0j], jnp.complex64)  # ‖w‖ = 5
    updates, _ = tx.update(jnp.array([0.0 + 10.0j], jnp.complex64), tx.init(params), params)
    np.testing.assert_allclose(np.asarray(updates), [-5.0j], rtol=1e-6)


def test_bfloat16_stays_bfloat16():
    tx = lars(1.0, weight_decay=0.1)
    params = jnp.ones(3, jnp.bfloat16)
    updates, state = tx.update(jnp.ones(3, jnp.bfloat16), tx.init(params), params)
    assert updates.dtype == jnp.bfloat16
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(state) if x.ndim)


def test_traced_hyperparameters_pass():
    kwargs = {
        "learning_rate": 0.5,
        "weight_decay": 0.1,
        "trust_coefficient": 0.02,
        "eps": 1e-3,
        "momentum": 0.8,
    }
    params, grads = problem(3)
    tx = optax.inject_hyperparams(lars)(**kwargs, nesterov=True)
    got = jax_rollout(tx, params, grads)
    want = jax_rollout(lars(**kwargs, nesterov=True), params, grads)
    # inject_hyperparams holds the numbers in float32.
    assert_same_trajectory(got, want, rtol=1e-6, atol=1e-7)


def test_update_needs_params():
    tx = lars(0.1)
    with pytest.raises(ValueError, match="lars: `update` needs `params`"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"like": "keras"}, r"lars: `like` must be one of \(None, 'optax'\)"),
        ({"like": "torch"}, "torch.optim has no lars"),
        ({"learning_rate": -0.1}, "lars: `learning_rate` must be"),
        ({"weight_decay": -1e-4}, "`weight_decay` must be a finite number >= 0"),
        ({"trust_coefficient": -1e-3}, "`trust_coefficient` must be a finite number >= 0"),
        ({"eps": -1e-8}, "`eps` must be a finite number >= 0"),
        ({"momentum": 1.0}, r"`momentum` must be in \[0, 1\)"),
        ({"momentum": -0.1}, r"`momentum` must be in \[0, 1\)"),
    ],
)
def test_bad_input(kwargs, match):
    kwargs = {"learning_rate": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        lars(**kwargs)
