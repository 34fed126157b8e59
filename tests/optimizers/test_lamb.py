"""lamb: You et al.'s Algorithm 2 (Adam's direction with a layer-wise trust ratio)."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optlab.optimizers._trust_ratio import lamb
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


def algorithm_2(eta_of, b1, b2, eps, lam_of, *, eps_root=0.0, decays=lambda path: True):
    """The box, layer i = one leaf; η_t and λ_t read at t − 1 updates made; φ(z) = z.

    A zero ‖x‖ or ‖r + λx‖ gives the ratio 1. ``decays(path)``: the mask (λ = 0 elsewhere).
    """

    def init(params):
        zeros = {p: np.zeros_like(x) for p, x in _walk(params)}
        return {"m": zeros, "v": dict(zeros), "t": 0}

    def step(params, grads, s):
        t = s["t"] + 1
        eta, lam_t = eta_of(t - 1), lam_of(t - 1)
        g_of = dict(_walk(grads))
        new, ms, vs = {}, {}, {}
        for path, x in _walk(params):
            g = g_of[path]
            m = b1 * s["m"][path] + (1 - b1) * g
            v = b2 * s["v"][path] + (1 - b2) * g * g
            m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
            r = m_hat / (np.sqrt(v_hat + eps_root) + eps)
            lam = lam_t if decays(path) else 0.0
            u = r + lam * x
            x_norm, u_norm = np.linalg.norm(x.ravel()), np.linalg.norm(u.ravel())
            ratio = x_norm / u_norm if x_norm > 0 and u_norm > 0 else 1.0
            new[path], ms[path], vs[path] = x - eta * ratio * u, m, v
        return _rebuild(params, new), {"m": ms, "v": vs, "t": t}

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
    # eta, b1, b2, eps, eps_root, lam, grad_scale
    (1e-3, 0.9, 0.999, 1e-6, 0.0, 0.0, 1.0),  # optax's defaults
    (0.01, 0.9, 0.999, 1e-6, 0.0, 0.01, 1.0),  # the paper's BERT λ
    (0.05, 0.5, 0.9, 1e-3, 0.0, 0.5, 1.0),  # short memories, a strong decay
    (0.01, 0.9, 0.99, 1e-6, 1e-4, 0.1, 1.0),  # optax's eps_root
    (0.01, 0.0, 0.0, 1e-6, 0.0, 0.1, 1e4),  # β = 0: r = g/(|g| + ε), huge gradients
    (0.01, 0.9, 0.999, 1e-6, 0.0, 0.1, 1e-8),  # gradients below ε
]


@pytest.mark.parametrize("like", [None, "optax"])
@pytest.mark.parametrize(("eta", "b1", "b2", "eps", "eps_root", "lam", "scale"), CASES)
def test_algorithm_2(like, eta, b1, b2, eps, eps_root, lam, scale):
    # optax.lamb's chain (scale_by_adam, add_decayed_weights, scale_by_trust_ratio,
    # scale_by_learning_rate) is these lines term by term: one reference for both forms.
    init, step = algorithm_2(constant(eta), b1, b2, eps, constant(lam), eps_root=eps_root)
    tx = lamb(eta, b1, b2, eps, eps_root, lam, like=like)
    assert_matches_reference(
        tx, step, ref_init=init, num_steps=15, per_leaf=False, grad_scale=scale,
        rtol=RTOL, atol=ATOL,
    )  # fmt: skip


@pytest.mark.parametrize("like", [None, "optax"])
@pytest.mark.parametrize(
    ("mask", "decays"),
    [
        (
            {"dense": {"kernel": True, "bias": False}, "scale": False},
            lambda p: p == ("dense", "kernel"),
        ),
        ({"dense": False, "scale": True}, lambda p: p == ("scale",)),
        (lambda params: jax.tree.map(lambda x: x.ndim >= 2, params), lambda p: p[-1] == "kernel"),
    ],
)
def test_mask(like, mask, decays):
    init, step = algorithm_2(constant(0.02), 0.9, 0.99, 1e-6, constant(0.3), decays=decays)
    tx = lamb(0.02, 0.9, 0.99, weight_decay=0.3, mask=mask, like=like)
    assert_matches_reference(
        tx, step, ref_init=init, num_steps=15, per_leaf=False, rtol=RTOL, atol=ATOL
    )


@pytest.mark.parametrize("like", [None, "optax"])
def test_schedules_for_rate_and_decay(like):
    eta_of = lambda n: 0.05 / (1 + 0.5 * n)  # noqa: E731  (float64 in jax too)
    lam_of = lambda n: 0.01 * (1 + n)  # noqa: E731
    init, step = algorithm_2(eta_of, 0.9, 0.999, 1e-6, lam_of)
    assert_matches_reference(
        lamb(eta_of, weight_decay=lam_of, like=like), step, ref_init=init, num_steps=15,
        per_leaf=False, rtol=RTOL, atol=ATOL,
    )  # fmt: skip


@pytest.mark.parametrize("like", [None, "optax"])
@pytest.mark.parametrize("lam", [0.0, 0.1])
def test_zero_parameter_and_gradient_leaves(like, lam):
    # "b" starts at 0 (‖x‖ = 0: ratio 1, the plain Adam step), "s" never gets a gradient
    # (r = 0: with λ = 0 also ‖r + λx‖ = 0, ratio 1 and no step; with λ > 0 a pure decay
    # step of length η‖x‖).
    params, grads = problem(15)
    params["b"] = np.zeros(4)
    params["s"] = np.array([0.5, -2.0])
    for g in grads:
        g["s"] = np.zeros(2)
    init, step = algorithm_2(constant(0.05), 0.9, 0.999, 1e-6, constant(lam))
    got = jax_rollout(lamb(0.05, weight_decay=lam, like=like), params, grads)
    assert_same_trajectory(got, rollout_reference(init, step, params, grads), rtol=RTOL, atol=ATOL)
    assert np.all(got[0]["b"] != 0)


PARITY = [
    {"learning_rate": 1e-3},
    {"learning_rate": 0.01, "weight_decay": 0.01},
    {"learning_rate": 0.05, "b1": 0.5, "b2": 0.9, "eps": 1e-3, "weight_decay": 0.5},
    {"learning_rate": 0.01, "eps_root": 1e-4, "weight_decay": 0.1},
    {
        "learning_rate": optax.linear_schedule(0.05, 0.0, 10),
        "weight_decay": lambda n: 0.1 / (1 + n),
    },
    {"learning_rate": 0.01, "weight_decay": 0.1, "mask": {"w": True, "b": False}},
    {"learning_rate": 0.01, "weight_decay": 0.1, "mask": lambda p: {"w": False, "b": True}},
]


@pytest.mark.parametrize("kwargs", PARITY)
def test_parity_optax(kwargs):
    params, grads = problem(15)
    assert_same_trajectory(
        jax_rollout(lamb(**kwargs, like="optax"), params, grads),
        jax_rollout(optax.lamb(**kwargs), params, grads),
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
        jax_rollout(lamb(**kwargs, like="optax"), params, grads),
        jax_rollout(optax.lamb(**kwargs), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )


def test_optax_form_is_the_default():
    # The paper's box and optax.lamb are the same formula: like="optax" changes nothing.
    params, grads = problem(15)
    kwargs = {"learning_rate": 0.02, "weight_decay": 0.1, "mask": {"w": True, "b": False}}
    paper = jax_rollout(lamb(**kwargs), params, grads)
    lib = jax_rollout(lamb(**kwargs, like="optax"), params, grads)
    for p, q in zip(paper, lib, strict=True):
        for k in p:
            np.testing.assert_array_equal(p[k], q[k])


def test_defaults_are_optax():
    ours = list(inspect.signature(lamb).parameters.values())
    theirs = list(inspect.signature(optax.lamb).parameters.values())
    assert [p.name for p in ours[: len(theirs)]] == [p.name for p in theirs]
    for mine, p in zip(ours, theirs, strict=False):
        assert mine.default == p.default, p.name
        assert mine.kind == p.kind, p.name
    assert ours[-1].name == "like" and ours[-1].kind is inspect.Parameter.KEYWORD_ONLY
    assert ours[-1].default is None


def test_state_is_optax_adam_state():
    state = lamb(0.1).init({"w": jnp.ones(3)})
    assert type(state[0]).__name__ == "ScaleByAdamState"
    assert state[0]._fields == optax.ScaleByAdamState._fields


def test_complex_uses_moduli():
    # r = g/|g| at t = 1 (ε aside); ‖x‖ = 5 and ‖r‖ = 1: the step is −η·5·g/|g|.
    tx = lamb(0.1, eps=0.0)
    params = jnp.array([3.0 + 4.0j], jnp.complex64)
    g = jnp.array([0.0 + 2.0j], jnp.complex64)
    updates, _ = tx.update(g, tx.init(params), params)
    np.testing.assert_allclose(np.asarray(updates), [-0.5j], rtol=1e-6)


def test_traced_hyperparameters_pass():
    kwargs = {"learning_rate": 0.02, "b1": 0.8, "b2": 0.99, "eps": 1e-4, "weight_decay": 0.1}
    params, grads = problem(3)
    tx = optax.inject_hyperparams(lamb)(**kwargs, eps_root=1e-6)
    got = jax_rollout(tx, params, grads)
    want = jax_rollout(lamb(**kwargs, eps_root=1e-6), params, grads)
    assert_same_trajectory(got, want, rtol=1e-6, atol=1e-7)  # injected numbers are float32


def test_update_needs_params():
    tx = lamb(0.1)
    with pytest.raises(ValueError, match="lamb: `update` needs `params`"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"like": "keras"}, r"lamb: `like` must be one of \(None, 'optax'\)"),
        ({"like": "torch"}, "torch.optim has no lamb"),
        ({"learning_rate": -0.1}, "lamb: `learning_rate` must be"),
        ({"b1": 1.0}, r"`b1` must be in \[0, 1\)"),
        ({"b2": -0.1}, r"`b2` must be in \[0, 1\)"),
        ({"eps": -1e-6}, "`eps` must be a finite number >= 0"),
        ({"eps_root": -1e-8}, "`eps_root` must be a finite number >= 0"),
        ({"weight_decay": -0.01}, "`weight_decay` must be a finite number >= 0"),
    ],
)
def test_bad_input(kwargs, match):
    kwargs = {"learning_rate": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        lamb(**kwargs)
