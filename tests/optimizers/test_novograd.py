"""novograd: Ginsburg et al.'s Algorithm 1 (layer-wise normalized momentum)."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optlab
from optlab.optimizers._novograd import ScaleByNovogradState, novograd, scale_by_novograd
from optlab.testing import assert_matches_reference
from tests.optimizers.rollouts import assert_same_trajectory, jax_rollout, problem

RTOL, ATOL = 1e-11, 1e-13


def algorithm_1(lam_of, b1, b2, eps, d_of, eps_root=0.0, eps_at_init=False):
    """Algorithm 1 for ONE layer (assert_matches_reference calls it per leaf, per_leaf=True:
    a layer is a pytree leaf, and ‖·‖ runs over the whole leaf).

    ``eps_at_init=True`` is optax's first step, m_1 = g_1/(√(v_1 + eps_root) + ε) + d·w_1.
    """

    def init(w0):
        return {"m": None, "v": None, "t": 1}

    def step(w, g, s):
        t = s["t"]
        lam, d = lam_of(t - 1), d_of(t - 1)
        sq = float(np.sum(np.asarray(g, float) ** 2))
        if t == 1:
            v = sq
            root = np.sqrt(v + eps_root)
            m = g / (root + eps) if eps_at_init else g / root
            m = m + d * w
        else:
            v = b2 * s["v"] + (1 - b2) * sq
            m = b1 * s["m"] + (g / (np.sqrt(v + eps_root) + eps) + d * w)
        return w - lam * m, {"m": m, "v": v, "t": t + 1}

    return init, step


def constant(x):
    return lambda n: x


CASES = [
    # lam, b1, b2, eps, eps_root, d, grad_scale
    (1e-2, 0.9, 0.25, 1e-6, 0.0, 0.0, 1.0),  # optax's defaults
    (0.05, 0.95, 0.98, 1e-8, 0.0, 1e-2, 1.0),  # a long memory, weight decay
    (0.1, 0.0, 0.0, 1e-6, 1e-4, 0.1, 1.0),  # β = 0: normalized GD, eps_root
    (1e-2, 0.9, 0.5, 1e-3, 0.0, 1e-3, 1e-4),  # gradients near ε: ε matters
    (1e-2, 0.5, 0.9, 1e-6, 0.0, 0.0, 1e5),  # huge gradients
]


@pytest.mark.parametrize("like", [None, "optax"])
@pytest.mark.parametrize(("lam", "b1", "b2", "eps", "eps_root", "d", "scale"), CASES)
def test_algorithm_1(like, lam, b1, b2, eps, eps_root, d, scale):
    init, step = algorithm_1(
        constant(lam), b1, b2, eps, constant(d), eps_root, eps_at_init=like == "optax"
    )
    tx = novograd(lam, b1, b2, eps, eps_root, d, like=like)
    assert_matches_reference(
        tx, step, ref_init=init, num_steps=15, grad_scale=scale, per_leaf=True, rtol=RTOL, atol=ATOL
    )


@pytest.mark.parametrize("like", [None, "optax"])
def test_schedules(like):
    # λ_t and d_t are read at the number of updates made (0 for the first).
    lam_of, d_of = (lambda n: 0.05 / (1 + n)), (lambda n: 1e-2 * (n + 1))
    init, step = algorithm_1(lam_of, 0.9, 0.5, 1e-6, d_of, eps_at_init=like == "optax")
    tx = novograd(lam_of, 0.9, 0.5, weight_decay=d_of, like=like)
    assert_matches_reference(tx, step, ref_init=init, num_steps=15, rtol=RTOL, atol=ATOL)


PARITY_KWARGS = [
    {"learning_rate": 0.01},
    {"learning_rate": 0.05, "b1": 0.95, "b2": 0.98, "weight_decay": 1e-2},
    {"learning_rate": 0.05, "b1": 0.5, "eps": 1e-3, "eps_root": 1e-4},
    {"learning_rate": optax.cosine_decay_schedule(0.1, 30), "weight_decay": 1e-3},
]


@pytest.mark.parametrize("kwargs", PARITY_KWARGS)
def test_parity_optax(kwargs):
    params, grads = problem(30)
    assert_same_trajectory(
        jax_rollout(novograd(**kwargs, like="optax"), params, grads),
        jax_rollout(optax.novograd(**kwargs), params, grads),
        rtol=1e-11,
        atol=ATOL,
    )


def test_parity_scale_by_novograd_and_state():
    params, grads = problem(8)
    ours = scale_by_novograd(0.9, 0.5, weight_decay=1e-2, like="optax")
    theirs = optax.scale_by_novograd(0.9, 0.5, weight_decay=1e-2)
    with jax.enable_x64(True):
        p = jax.tree.map(jnp.asarray, params)
        s1, s2 = ours.init(p), theirs.init(p)
        assert s1._fields == s2._fields == ("count", "mu", "nu")
        for g in grads:
            g = jax.tree.map(jnp.asarray, g)
            u1, s1 = ours.update(g, s1, p)
            u2, s2 = theirs.update(g, s2, p)
            jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-13), u1, u2)
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-13), tuple(s1), tuple(s2)
        )


def test_forms_differ_at_the_first_step():
    # optax keeps ε in m_1; the paper's m_1 = g_1/√v_1. Gradient norms near ε show it.
    params, grads = problem(20, scale=1e-3)
    kwargs = {"learning_rate": 0.01, "eps": 1e-3}
    paper = jax_rollout(novograd(**kwargs), params, grads)
    lib = jax_rollout(novograd(**kwargs, like="optax"), params, grads)
    # the first step: ‖Δw‖ = λ for the paper (a unit direction per layer), less for optax
    for k in params:
        assert np.linalg.norm(paper[0][k] - params[k]) == pytest.approx(0.01, rel=1e-12)
        assert np.linalg.norm(lib[0][k] - params[k]) < 0.01 * 0.9
    gap = max(np.max(np.abs(a[k] - b[k])) for a, b in zip(paper, lib, strict=True) for k in a)
    assert gap > 1e-3


def test_zero_first_gradient_of_a_layer():
    # the box's 0/0 at t = 1 reads as 0 (m_1 = d·w_1); with ε = 0 optax's is NaN
    params, grads = problem(5)
    grads[0]["b"][:] = 0.0
    kwargs = {"learning_rate": 0.01, "eps": 0.0, "weight_decay": 0.1}
    paper = jax_rollout(novograd(**kwargs), params, grads)
    np.testing.assert_allclose(paper[0]["b"], params["b"] * (1 - 0.01 * 0.1), rtol=1e-14)
    assert all(np.all(np.isfinite(p[k])) for p in paper for k in p)
    lib = jax_rollout(novograd(**kwargs, like="optax"), params, grads)
    ref = jax_rollout(optax.novograd(**kwargs), params, grads)
    assert np.isnan(ref[0]["b"]).all() and np.isnan(lib[0]["b"]).all()


def test_norms_are_per_leaf():
    # scaling one leaf's gradients does not change another leaf's update; v is one number
    # per leaf; on step 1 every leaf moves by exactly λ (d = 0).
    tx = novograd(0.1)
    rng = np.random.default_rng(0)
    p = {"a": jnp.zeros((3, 4)), "b": jnp.zeros(5)}
    g = {"a": jnp.asarray(rng.standard_normal((3, 4))), "b": jnp.asarray(rng.standard_normal(5))}
    u, state = tx.update(g, tx.init(p), p)
    for k in p:
        np.testing.assert_allclose(np.linalg.norm(u[k]), 0.1, rtol=1e-6)
    assert jax.tree.map(jnp.shape, state[0].nu) == {"a": (), "b": ()}
    u2, _ = tx.update(g, state, p)
    scaled = {"a": 1e3 * g["a"], "b": g["b"]}
    u3, _ = tx.update(scaled, state, p)
    np.testing.assert_array_equal(u2["b"], u3["b"])
    assert not np.allclose(u2["a"], u3["a"])


def test_mu_dtype_and_needs_params():
    tx = scale_by_novograd(mu_dtype=jnp.bfloat16, weight_decay=0.0)
    state = tx.init(jnp.zeros(3))
    assert isinstance(state, ScaleByNovogradState)
    assert state.mu.dtype == jnp.bfloat16 and state.nu.dtype == jnp.float32
    updates, state = tx.update(jnp.ones(3), state)  # d = 0: params not needed
    assert updates.dtype == jnp.float32 and state.mu.dtype == jnp.bfloat16
    with pytest.raises(ValueError, match="needs `params`"):
        decaying = novograd(0.1, weight_decay=1e-3)
        decaying.update(jnp.ones(3), decaying.init(jnp.zeros(3)))


def test_defaults():
    ours = inspect.signature(novograd).parameters
    theirs = inspect.signature(optax.novograd).parameters
    assert list(ours)[:6] == list(theirs)
    for name in ("b1", "b2", "eps", "eps_root", "weight_decay"):
        assert ours[name].default == theirs[name].default, name
    assert ours["learning_rate"].default is inspect.Parameter.empty
    assert ours["like"].kind is inspect.Parameter.KEYWORD_ONLY and ours["like"].default is None
    ours = inspect.signature(scale_by_novograd).parameters
    theirs = inspect.signature(optax.scale_by_novograd).parameters
    assert list(ours)[:6] == list(theirs)
    for name in theirs:
        assert ours[name].default == theirs[name].default, name  # eps = 1e-8 there


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"like": "keras"}, r"novograd: `like` must be one of \(None, 'optax'\)"),
        ({"like": "torch"}, "torch.optim has no novograd"),
        ({"b1": 1.0}, r"`b1` must be in \[0, 1\)"),
        ({"b1": -0.1}, r"`b1` must be in \[0, 1\)"),
        ({"b2": 1.5}, r"`b2` must be in \[0, 1\)"),
        ({"eps": -1e-6}, "`eps` must be a finite number >= 0"),
        ({"eps_root": -1.0}, "`eps_root` must be a finite number >= 0"),
        ({"weight_decay": -1e-3}, "`weight_decay` must be a finite number >= 0"),
        ({"learning_rate": -0.1}, "novograd: `learning_rate` must be"),
    ],
)
def test_bad_input(kwargs, match):
    kwargs = {"learning_rate": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        novograd(**kwargs)


@pytest.mark.parametrize("like", [None, "optax"])
def test_inject_hyperparams(like):
    hp = {"b1": 0.8, "b2": 0.5, "eps": 1e-4, "eps_root": 1e-6, "weight_decay": 1e-2}
    tx = optax.inject_hyperparams(novograd, static_args=("like",))(0.05, **hp, like=like)
    params, grads = problem(10)
    got = jax_rollout(tx, params, grads)
    want = jax_rollout(novograd(0.05, **hp, like=like), params, grads)
    assert_same_trajectory(got, want, rtol=1e-13, atol=1e-15)
    with jax.enable_x64(True):
        state = tx.init(jax.tree.map(jnp.asarray, params))
    assert set(state.hyperparams) == {"learning_rate", *hp}


def test_is_exported_alias():
    if hasattr(optlab.optimizers, "novograd"):
        assert optlab.optimizers.novograd is novograd
