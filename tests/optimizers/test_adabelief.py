"""adabelief: Zhuang et al.'s Algorithm 2 (s = EMA of (g − m)² + ε, bias-corrected)."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optlab.optimizers._adabelief import ScaleByBeliefState, adabelief, scale_by_belief
from optlab.testing import assert_matches_reference
from tests.optimizers.rollouts import assert_same_trajectory, jax_rollout, problem

RTOL, ATOL = 1e-11, 1e-13


def algorithm_2(alpha_of, b1, b2, eps, eps_root, nesterov=False):
    """The published box: ε_root inside s_t (kept in the state), ε outside the root;
    α read at t − 1 updates made. Nesterov: optax's documented m̂_t."""

    def init(theta0):
        return {"m": np.zeros_like(theta0), "s": np.zeros_like(theta0), "t": 0}

    def step(theta, g, state):
        t = state["t"] + 1
        m = b1 * state["m"] + (1 - b1) * g
        s = b2 * state["s"] + (1 - b2) * (g - m) ** 2 + eps_root
        if nesterov:
            m_hat = b1 * m / (1 - b1 ** (t + 1)) + (1 - b1) * g / (1 - b1**t)
        else:
            m_hat = m / (1 - b1**t)
        s_hat = s / (1 - b2**t)
        theta = theta - alpha_of(t - 1) * m_hat / (np.sqrt(s_hat) + eps)
        return theta, {"m": m, "s": s, "t": t}

    return init, step


def constant(x):
    return lambda t: x


CASES = [
    # alpha, b1, b2, eps, eps_root, nesterov, grad_scale
    (1e-3, 0.9, 0.999, 1e-16, 1e-16, False, 1.0),  # the defaults (optax's, the authors')
    (1e-2, 0.9, 0.999, 1e-8, 1e-8, False, 1.0),  # the paper's image-classification ε
    (1e-2, 0.9, 0.99, 1e-8, 1e-2, False, 1.0),  # a large ε_root: it accumulates in s
    (5e-2, 0.0, 0.9, 1e-8, 1e-8, False, 1.0),  # β1 = 0: m = g, so s gets 0 the first step
    (1e-2, 0.5, 0.9, 0.0, 0.0, False, 1.0),  # no ε at all
    (1e-2, 0.9, 0.999, 1e-16, 1e-16, True, 1.0),  # optax's Nesterov option
    (1e-2, 0.9, 0.999, 1e-8, 1e-8, False, 1e-6),  # gradients near √ε
    (1e-2, 0.9, 0.999, 1e-16, 1e-16, False, 1e6),  # huge gradients
]


@pytest.mark.parametrize("like", [None, "optax"])
@pytest.mark.parametrize(("alpha", "b1", "b2", "eps", "eps_root", "nesterov", "scale"), CASES)
def test_algorithm_2(like, alpha, b1, b2, eps, eps_root, nesterov, scale):
    # optax's documented and source equations are the box term by term (with ε split into
    # eps_root and eps), hence one reference for both forms.
    init, step = algorithm_2(constant(alpha), b1, b2, eps, eps_root, nesterov)
    tx = adabelief(alpha, b1, b2, eps, eps_root, nesterov=nesterov, like=like)
    assert_matches_reference(
        tx, step, ref_init=init, num_steps=15, grad_scale=scale, rtol=RTOL, atol=ATOL
    )


def test_schedule():
    init, step = algorithm_2(lambda t: 0.1 / (1 + t), 0.9, 0.999, 1e-8, 1e-8)
    tx = adabelief(lambda n: 0.1 / (1 + n), eps=1e-8, eps_root=1e-8)
    assert_matches_reference(tx, step, ref_init=init, num_steps=15, rtol=RTOL, atol=ATOL)


def test_eps_root_is_state():
    # Zero gradients: m stays 0 and s_t = ε·(1 + β2 + … + β2^{t−1}), the paper's "+ ε" kept.
    tx = scale_by_belief(b2=0.9, eps_root=1e-3)
    state = tx.init(jnp.zeros(2))
    for _ in range(5):
        _, state = tx.update(jnp.zeros(2), state)
    assert isinstance(state, ScaleByBeliefState)
    np.testing.assert_allclose(state.nu, 1e-3 * (1 - 0.9**5) / (1 - 0.9), rtol=1e-6)
    assert int(state.count) == 5


def test_defaults_match_optax():
    ours = inspect.signature(adabelief).parameters
    theirs = inspect.signature(optax.adabelief).parameters
    assert list(ours)[: len(theirs)] == list(theirs)
    for name in ("b1", "b2", "eps", "eps_root", "nesterov"):
        assert ours[name].default == theirs[name].default, name
    assert ours["learning_rate"].default is inspect.Parameter.empty
    assert ours["like"].kind is inspect.Parameter.KEYWORD_ONLY
    scale_ours = inspect.signature(scale_by_belief).parameters
    scale_theirs = inspect.signature(optax.scale_by_belief).parameters
    for name in scale_theirs:
        assert scale_ours[name].default == scale_theirs[name].default, name


@pytest.mark.parametrize("like", [None, "optax"])
@pytest.mark.parametrize(
    "kwargs",
    [
        {"learning_rate": 0.01},
        {"learning_rate": 0.05, "b1": 0.5, "b2": 0.9, "eps": 1e-8, "eps_root": 1e-3},
        {"learning_rate": 0.01, "nesterov": True},
        {"learning_rate": lambda n: 0.05 / (1 + n)},
    ],
)
def test_parity_optax(like, kwargs):
    params, grads = problem(15)
    assert_same_trajectory(
        jax_rollout(adabelief(**kwargs, like=like), params, grads),
        jax_rollout(optax.adabelief(**kwargs), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )


def test_the_optax_form_equals_the_papers_and_matches_optax_on_complex():
    # The formulas coincide, so the switch changes nothing (exactly); |g − m|² for complex g.
    params, grads = problem(15, seed=3)
    kwargs = {"learning_rate": 0.02, "eps": 1e-8, "eps_root": 1e-4}
    paper = jax_rollout(adabelief(**kwargs), params, grads)
    lib = jax_rollout(adabelief(**kwargs, like="optax"), params, grads)
    assert_same_trajectory(paper, lib, rtol=0.0, atol=0.0)

    with jax.enable_x64(True):
        rng = np.random.default_rng(1)
        p = jnp.asarray(rng.standard_normal(4) + 1j * rng.standard_normal(4))
        ours, theirs = adabelief(0.1, like="optax"), optax.adabelief(0.1)
        s_ours, s_theirs = ours.init(p), theirs.init(p)
        for _ in range(8):
            g = jnp.asarray(rng.standard_normal(4) + 1j * rng.standard_normal(4))
            u_ours, s_ours = ours.update(g, s_ours, p)
            u_theirs, s_theirs = theirs.update(g, s_theirs, p)
            np.testing.assert_allclose(u_ours, u_theirs, rtol=RTOL, atol=ATOL)
            p = p + u_ours


def test_traced_hyperparameters_pass():
    kwargs = {"learning_rate": 0.1, "b1": 0.9, "b2": 0.99, "eps": 1e-8, "eps_root": 1e-8}
    tx = optax.inject_hyperparams(adabelief)(**kwargs)
    plain = adabelief(**kwargs)
    params = jnp.array([1.0, -2.0])
    state, plain_state = tx.init(params), plain.init(params)
    for g in (jnp.array([0.5, 1.0]), jnp.array([-1.0, 2.0])):
        updates, state = jax.jit(tx.update)(g, state)
        want, plain_state = plain.update(g, plain_state)
        np.testing.assert_allclose(updates, want, rtol=1e-5)  # float32 β vs Python β


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"like": "keras"}, r"adabelief: `like` must be one of \(None, 'optax'\)"),
        ({"like": "torch"}, "torch.optim has no adabelief"),
        ({"b1": 1.0}, r"`b1` must be in \[0, 1\)"),
        ({"b2": -0.1}, r"`b2` must be in \[0, 1\)"),
        ({"eps": -1e-8}, "`eps` must be a finite number >= 0"),
        ({"eps_root": -1e-8}, "`eps_root` must be a finite number >= 0"),
        ({"learning_rate": -0.1}, "adabelief: `learning_rate` must be"),
    ],
)
def test_bad_input(kwargs, match):
    kwargs = {"learning_rate": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        adabelief(**kwargs)
