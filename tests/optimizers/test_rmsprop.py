"""rmsprop: s ← βs + (1−β)g⊙g, w ← w − α g ⊘ √(s + ε) (lectures 01, 02), and switches."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optlab
from optlab.testing import assert_matches_reference
from tests.optimizers.rollouts import assert_same_trajectory, jax_rollout, problem, torch_rollout

RTOL, ATOL = 1e-11, 1e-13
ALPHA, BETA = 0.01, 0.9


def test_lecture02_formula():
    eps = 1e-8

    def ref_step(w, g, s):
        s = BETA * s + (1 - BETA) * g * g
        return w - ALPHA * g / np.sqrt(s + eps), s

    assert_matches_reference(
        optlab.rmsprop(ALPHA, BETA, eps), ref_step, ref_init=np.zeros_like, rtol=RTOL, atol=ATOL
    )


def test_lecture01_formula():
    # Lecture 01: v(θ,t) = γ v(θ,t−1) + (1 − γ) g_t²;  Δθ_t = −η g_t / √v(θ,t)  (no ε).
    eta, gamma = 0.02, 0.95

    def ref_step(theta, g, v):
        v = gamma * v + (1 - gamma) * g**2
        return theta - eta / np.sqrt(v) * g, v

    assert_matches_reference(
        optlab.rmsprop(eta, gamma, eps=0.0), ref_step, ref_init=np.zeros_like, rtol=RTOL, atol=ATOL
    )


@pytest.mark.parametrize("eps_in_sqrt", [True, False])
@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("momentum", [None, 0.8])
def test_switches_formula(eps_in_sqrt, centered, momentum):
    # Graves' centred form divides by √(s − m²); momentum accumulates the scaled gradient
    # and the rate multiplies the buffer (PyTorch's order).
    eps = 1e-3

    def ref_step(w, g, state):
        s, m, b = state
        s = BETA * s + (1 - BETA) * g * g
        m = BETA * m + (1 - BETA) * g
        var = s - m * m if centered else s
        denom = np.sqrt(var + eps) if eps_in_sqrt else np.sqrt(var) + eps
        d = g / denom
        if momentum is not None:
            b = momentum * b + d
            d = b
        return w - ALPHA * d, (s, m, b)

    tx = optlab.rmsprop(
        ALPHA, BETA, eps, eps_in_sqrt=eps_in_sqrt, centered=centered, momentum=momentum
    )
    assert_matches_reference(
        tx, ref_step, ref_init=lambda p: (0 * p, 0 * p, 0 * p), rtol=RTOL, atol=ATOL
    )


@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("momentum", [None, 0.8])
def test_parity_torch(torch, centered, momentum):
    # torch.optim.RMSprop(lr, alpha=β, eps, centered, momentum): ε outside the root.
    params, grads = problem()
    ours = optlab.rmsprop(
        ALPHA, BETA, 1e-8, eps_in_sqrt=False, centered=centered, momentum=momentum
    )
    theirs = lambda ps: torch.optim.RMSprop(  # noqa: E731
        ps, lr=ALPHA, alpha=BETA, eps=1e-8, centered=centered, momentum=momentum or 0.0
    )
    assert_same_trajectory(
        jax_rollout(ours, params, grads), torch_rollout(theirs, params, grads), rtol=RTOL, atol=ATOL
    )


@pytest.mark.parametrize("eps_in_sqrt", [True, False])
@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("momentum", [None, 0.8])
def test_parity_optax(eps_in_sqrt, centered, momentum):
    # optax.rmsprop with the same switches; constant rate (optax puts the rate inside the
    # momentum buffer, which only agrees with ours for a constant rate).
    params, grads = problem()
    ours = optlab.rmsprop(
        ALPHA, BETA, 1e-8, eps_in_sqrt=eps_in_sqrt, centered=centered, momentum=momentum
    )
    theirs = optax.rmsprop(
        ALPHA, BETA, 1e-8, eps_in_sqrt=eps_in_sqrt, centered=centered, momentum=momentum
    )
    assert_same_trajectory(
        jax_rollout(ours, params, grads), jax_rollout(theirs, params, grads), rtol=RTOL, atol=ATOL
    )


# like="torch" (torch.optim.RMSprop: α = 0.99, ε outside the root, lerp'd mean, momentum
# buffer of unscaled steps) and like="optax" (optax.rmsprop: the rate before the trace).


def schedule_np(t):
    return 0.02 * 0.9**t + 0.002


def schedule_jax(count):
    return 0.02 * 0.9 ** count.astype(np.float64) + 0.002


def torch_rmsprop_reference(lr, alpha, eps, centered, momentum):
    """torch.optim.RMSprop docs: v_t = α v_{t−1} + (1 − α) g²; centered: g^ave_t =
    g^ave_{t−1} + (1 − α)(g − g^ave_{t−1}), ṽ = v − (g^ave)²; b_t = μ b_{t−1} + g/(√ṽ + ε),
    θ_t = θ_{t−1} − γ b_t (μ > 0), else θ_t = θ_{t−1} − γ g/(√ṽ + ε)."""

    def step(w, g, state):
        v, g_ave, b = state
        v = alpha * v + (1 - alpha) * g**2
        v_tilde = v
        if centered:
            g_ave = g_ave + (1 - alpha) * (g - g_ave)
            v_tilde = v - g_ave**2
        if momentum > 0:
            b = momentum * b + g / (np.sqrt(v_tilde) + eps)
            return w - lr * b, (v, g_ave, b)
        return w - lr * g / (np.sqrt(v_tilde) + eps), (v, g_ave, b)

    return lambda p: (0 * p, 0 * p, 0 * p), step


def optax_rmsprop_reference(rate_of_t, decay, eps, eps_in_sqrt, centered, momentum):
    """optax.rmsprop = chain(scale_by_rms | scale_by_stddev, scale_by_learning_rate,
    trace(μ)): ν_t = β ν + (1 − β) g², μ_t = β μ + (1 − β) g, d = g/√(ν − μ² + ε) (or
    /(√· + ε)), u = −α_t d, then tr_t = u + μ tr_{t−1} and θ += tr_t."""

    def step(w, g, state):
        nu, mu, tr, t = state
        nu = decay * nu + (1 - decay) * g * g
        mu = decay * mu + (1 - decay) * g
        var = nu - mu * mu if centered else nu
        d = g / np.sqrt(var + eps) if eps_in_sqrt else g / (np.sqrt(var) + eps)
        u = -rate_of_t(t) * d
        if momentum is not None:
            tr = u + momentum * tr
            u = tr
        return w + u, (nu, mu, tr, t + 1)

    return lambda p: (0 * p, 0 * p, 0 * p, 0), step


TORCH_CASES = [
    # kwargs for optlab, (alpha, eps, centered, momentum) of torch
    ({}, (0.99, 1e-8, False, 0.0)),  # torch's defaults: α = 0.99
    ({"centered": True, "momentum": 0.8}, (0.99, 1e-8, True, 0.8)),
    ({"decay": 0.9, "eps": 1e-3, "eps_in_sqrt": False, "momentum": 0.5}, (0.9, 1e-3, False, 0.5)),
    ({"decay": 0.5, "eps": 1e-3, "centered": True}, (0.5, 1e-3, True, 0.0)),
]


@pytest.mark.parametrize(("kwargs", "theirs"), TORCH_CASES)
def test_torch_formula(kwargs, theirs):
    init, step = torch_rmsprop_reference(ALPHA, *theirs)
    tx = optlab.rmsprop(ALPHA, like="torch", **kwargs)
    assert_matches_reference(tx, step, ref_init=init, num_steps=15, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(("kwargs", "theirs"), TORCH_CASES)
def test_parity_torch_like(torch, kwargs, theirs):
    alpha, eps, centered, momentum = theirs
    params, grads = problem(15)
    assert_same_trajectory(
        jax_rollout(optlab.rmsprop(ALPHA, like="torch", **kwargs), params, grads),
        torch_rollout(
            lambda ps: torch.optim.RMSprop(
                ps, lr=ALPHA, alpha=alpha, eps=eps, centered=centered, momentum=momentum
            ),
            params,
            grads,
        ),
        rtol=RTOL,
        atol=ATOL,
    )


OPTAX_CASES = [
    # kwargs for optlab and optax alike, whether the rate is scheduled
    ({}, False),  # optax's defaults (decay 0.9, ε = 1e-8 inside the root)
    ({"momentum": 0.8}, True),  # the rate inside the trace: differs from ours when scheduled
    ({"centered": True, "momentum": 0.8, "eps_in_sqrt": False, "eps": 1e-3}, True),
    ({"decay": 0.5, "centered": True, "eps": 1e-3}, False),
]


@pytest.mark.parametrize(("kwargs", "scheduled"), OPTAX_CASES)
def test_optax_formula(kwargs, scheduled):
    args = {"decay": 0.9, "eps": 1e-8, "eps_in_sqrt": True, "centered": False, "momentum": None}
    args.update(kwargs)
    init, step = optax_rmsprop_reference(
        schedule_np if scheduled else lambda t: ALPHA,
        args["decay"],
        args["eps"],
        args["eps_in_sqrt"],
        args["centered"],
        args["momentum"],
    )
    tx = optlab.rmsprop(schedule_jax if scheduled else ALPHA, like="optax", **kwargs)
    assert_matches_reference(tx, step, ref_init=init, num_steps=15, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(("kwargs", "scheduled"), OPTAX_CASES)
def test_parity_optax_like(kwargs, scheduled):
    lr = schedule_jax if scheduled else ALPHA
    params, grads = problem(15)
    assert_same_trajectory(
        jax_rollout(optlab.rmsprop(lr, like="optax", **kwargs), params, grads),
        jax_rollout(optax.rmsprop(lr, **kwargs), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )


def test_forms_differ_where_the_formulas_do():
    params, grads = problem(15)
    default = jax_rollout(optlab.rmsprop(schedule_jax, momentum=0.8), params, grads)
    # optax: the rate inside the momentum buffer (differs under a schedule).
    optax_form = jax_rollout(
        optlab.rmsprop(schedule_jax, momentum=0.8, like="optax"), params, grads
    )
    assert np.max(np.abs(optax_form[-1]["w"] - default[-1]["w"])) > 1e-3
    # torch: α = 0.99 and ε outside the root when not passed.
    torch_form = jax_rollout(
        optlab.rmsprop(schedule_jax, momentum=0.8, like="torch"), params, grads
    )
    assert np.max(np.abs(torch_form[-1]["w"] - default[-1]["w"])) > 1e-3
    same = jax_rollout(
        optlab.rmsprop(schedule_jax, 0.99, momentum=0.8, eps_in_sqrt=False), params, grads
    )
    assert_same_trajectory(torch_form, same, rtol=RTOL, atol=ATOL)


def test_default_is_unchanged_and_keeps_its_state():
    params, grads = problem(15)
    before = jax_rollout(optlab.rmsprop(ALPHA, 0.9, 1e-8, eps_in_sqrt=True), params, grads)
    assert_same_trajectory(
        jax_rollout(optlab.rmsprop(ALPHA), params, grads), before, rtol=0, atol=0
    )
    for like in (None, "torch"):
        state = optlab.rmsprop(ALPHA, centered=True, momentum=0.5, like=like).init(jnp.zeros(2))
        assert type(state[0]).__name__ == "RmspropState"
    state = optlab.rmsprop(ALPHA, momentum=0.5, like="optax").init(jnp.zeros(2))
    assert type(state[-1]).__name__ == "TraceState"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"like": "keras"}, r"rmsprop: `like` must be one of \(None, 'optax', 'torch'\)"),
        ({"eps_in_sqrt": True, "like": "torch"}, "eps_in_sqrt=True conflicts with like='torch'"),
        ({"decay": 1.0, "like": "torch"}, r"`decay` must be in \[0, 1\)"),
        ({"momentum": 1.0, "like": "optax"}, r"`momentum` must be in \[0, 1\)"),
        ({"eps": -1.0, "like": "torch"}, "`eps` must be a finite number >= 0"),
        ({"learning_rate": -0.1, "like": "optax"}, "rmsprop: `learning_rate` must be"),
    ],
)
def test_bad_input_like(kwargs, match):
    kwargs = {"learning_rate": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        optlab.rmsprop(**kwargs)
