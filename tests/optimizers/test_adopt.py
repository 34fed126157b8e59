"""adopt: Taniguchi et al.'s Algorithm 2 with the clipped normalized gradient."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optlab
from optlab.testing import assert_matches_reference
from tests.optimizers.rollouts import assert_same_trajectory, jax_rollout, problem

RTOL, ATOL = 1e-11, 1e-13


def algorithm_2(alpha_of, b1, b2, eps, clip_of=lambda t: t**0.25, nesterov=False):
    """The paper's loop: v_0 ← g_0², then m_t, θ_t, v_t for t ≥ 1 (α_t read at t)."""

    def init(theta0):
        return {"m": np.zeros_like(theta0), "v": None, "t": 0}

    def step(theta, g, s):
        t = s["t"]
        if t == 0:
            return theta, {"m": s["m"], "v": g * g, "t": 1}
        normed = g / np.maximum(np.sqrt(s["v"]), eps)
        if clip_of is not None:
            normed = np.clip(normed, -clip_of(t), clip_of(t))
        m = b1 * s["m"] + (1 - b1) * normed
        direction = b1 * m + (1 - b1) * normed if nesterov else m
        theta = theta - alpha_of(t) * direction
        v = b2 * s["v"] + (1 - b2) * g * g
        return theta, {"m": m, "v": v, "t": t + 1}

    return init, step


def constant(x):
    return lambda t: x


CASES = [
    # alpha, b1, b2, eps, clipping, nesterov, grad_scale
    (1e-3, 0.9, 0.9999, 1e-6, True, False, 1.0),  # the paper's defaults
    (0.1, 0.5, 0.9, 1e-3, True, False, 1.0),  # short memories: clipping at c_t active
    (0.01, 0.9, 0.999, 1e-6, False, False, 1.0),  # unclipped (the first version)
    (0.05, 0.0, 1.0, 1e-6, True, False, 1.0),  # β2 = 1 (v = g_0² forever), β1 = 0
    (0.01, 0.9, 0.99, 1e-6, True, True, 1.0),  # optax's Nesterov option
    (0.01, 0.9, 0.99, 1e-6, True, False, 1e-8),  # gradients below ε: max{√v, ε} = ε
]


@pytest.mark.parametrize("like", [None, "optax"])
@pytest.mark.parametrize(("alpha", "b1", "b2", "eps", "clip", "nesterov", "scale"), CASES)
def test_algorithm_2(like, alpha, b1, b2, eps, clip, nesterov, scale):
    # optax.contrib.scale_by_adopt's source computes the same numbers whenever g_0/ε is
    # finite (its first step is 1·0 + 0·finite), hence one reference for both forms.
    init, step = algorithm_2(constant(alpha), b1, b2, eps, nesterov=nesterov)
    if not clip:
        init, step = algorithm_2(constant(alpha), b1, b2, eps, clip_of=None)
    tx = optlab.adopt(alpha, b1, b2, eps, nesterov=nesterov, use_clipping=clip, like=like)
    assert_matches_reference(
        tx, step, ref_init=init, num_steps=15, grad_scale=scale, rtol=RTOL, atol=ATOL
    )


def test_schedule_and_clip_function():
    # α_t = schedule(t) (t updates made before this one); c_t = clip_value_fn(t).
    init, step = algorithm_2(lambda t: 0.1 / (1 + t), 0.9, 0.99, 1e-6, clip_of=lambda t: 0.5 + t)
    tx = optlab.adopt(lambda n: 0.1 / (1 + n), 0.9, 0.99, clip_value_fn=lambda n: 0.5 + n)
    assert_matches_reference(tx, step, ref_init=init, num_steps=15, rtol=RTOL, atol=ATOL)


def test_defaults_are_the_papers_and_optax():
    ours = inspect.signature(optlab.adopt).parameters
    theirs = inspect.signature(optax.contrib.adopt).parameters
    for name in ("b1", "b2", "eps", "mu_dtype", "nesterov", "use_clipping"):
        assert ours[name].default == theirs[name].default, name
    assert (ours["b1"].default, ours["b2"].default, ours["eps"].default) == (0.9, 0.9999, 1e-6)
    count = jnp.arange(1, 5)
    np.testing.assert_allclose(
        ours["clip_value_fn"].default(count), theirs["clip_value_fn"].default(count)
    )


@pytest.mark.parametrize("like", [None, "optax"])
@pytest.mark.parametrize(
    "kwargs",
    [
        {"learning_rate": 0.01},
        {"learning_rate": 0.05, "b1": 0.5, "b2": 0.9, "eps": 1e-3},
        {"learning_rate": 0.01, "nesterov": True},
        {"learning_rate": 0.01, "use_clipping": False},
        {"learning_rate": 0.01, "clip_value_fn": lambda n: 0.3 * (n + 1)},
    ],
)
def test_parity_optax(like, kwargs):
    params, grads = problem(15)
    assert_same_trajectory(
        jax_rollout(optlab.adopt(**kwargs, like=like), params, grads),
        jax_rollout(optax.contrib.adopt(**kwargs), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )


def test_forms_differ_where_g0_over_eps_is_not_finite():
    # ε = 0 and a zero coordinate in g_0 (a zero-initialized layer, the case the authors'
    # clipping is for): optax's first step forms 0·Clip(0/0, 0) = NaN, and m stays NaN;
    # the paper's loop only sets v_0 ← g_0², then clips g_1/max{0, 0} = ±∞ to ±c_1.
    params, grads = problem(15)
    grads[0]["b"][0] = 0.0
    kwargs = {"learning_rate": 0.01, "eps": 0.0}
    lib = jax_rollout(optlab.adopt(**kwargs, like="optax"), params, grads)
    assert_same_trajectory(
        lib, jax_rollout(optax.contrib.adopt(**kwargs), params, grads), rtol=RTOL, atol=ATOL
    )
    assert np.isnan(lib[-1]["b"][0])
    paper = jax_rollout(optlab.adopt(**kwargs), params, grads)
    assert all(np.all(np.isfinite(p[k])) for p in paper for k in p)


def test_complex_clips_the_modulus():
    # |g_1/√v_0| = 5 > c_1 = 1: the normalized gradient keeps its phase at modulus 1.
    tx = optlab.adopt(1.0, b1=0.0)
    state = tx.init(jnp.zeros(1, jnp.complex64))
    _, state = tx.update(jnp.array([1.0 + 0j], jnp.complex64), state)
    updates, _ = tx.update(jnp.array([3 + 4j], jnp.complex64), state)
    np.testing.assert_allclose(np.asarray(updates), [-(0.6 + 0.8j)], rtol=1e-6)


def test_traced_hyperparameters_pass():
    tx = optax.inject_hyperparams(optlab.adopt)(learning_rate=0.1, b1=0.9, b2=0.99, eps=1e-6)
    updates, _ = jax.jit(tx.update)(jnp.ones(2), tx.init(jnp.ones(2)))
    assert updates.shape == (2,)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"like": "keras"}, r"adopt: `like` must be one of \(None, 'optax'\)"),
        ({"like": "torch"}, "torch.optim has no adopt"),
        ({"b1": 1.0}, r"`b1` must be in \[0, 1\)"),
        ({"b2": 1.5}, r"`b2` must be in \[0, 1\]"),
        ({"b2": -0.1}, r"`b2` must be in \[0, 1\]"),
        ({"eps": -1e-6}, "`eps` must be a finite number >= 0"),
        ({"learning_rate": -0.1}, "adopt: `learning_rate` must be"),
    ],
)
def test_bad_input(kwargs, match):
    kwargs = {"learning_rate": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        optlab.adopt(**kwargs)
