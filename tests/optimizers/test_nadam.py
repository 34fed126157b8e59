"""nadam: Dozat (2016) as torch.optim.NAdam computes it, and optax's constant-μ form."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optlab
from optlab.testing import assert_matches_reference
from tests.optimizers.rollouts import assert_same_trajectory, jax_rollout, problem, torch_rollout

RTOL, ATOL = 1e-11, 1e-13
ALPHA, B1, B2, EPS, PSI = 0.01, 0.9, 0.99, 1e-6, 0.004


def nadam_reference(mu_of_t):
    """PyTorch's NAdam algorithm (its documentation's pseudo-code), for a given μ_t."""

    def init(theta0):
        return {"m": 0 * theta0, "v": 0 * theta0, "t": 0, "prod": 1.0}

    def step(theta, g, s):
        t = s["t"] + 1
        mu_t, mu_next = mu_of_t(t), mu_of_t(t + 1)
        prod = s["prod"] * mu_t  # Π_{i≤t} μ_i
        m = B1 * s["m"] + (1 - B1) * g
        v = B2 * s["v"] + (1 - B2) * g * g
        v_hat = v / (1 - B2**t)
        m_bar = (1 - mu_t) / (1 - prod) * g + mu_next / (1 - prod * mu_next) * m
        return theta - ALPHA * m_bar / (np.sqrt(v_hat) + EPS), {
            "m": m,
            "v": v,
            "t": t,
            "prod": prod,
        }

    return init, step


def test_momentum_schedule_formula():
    # μ_t = β1 (1 − ½ · 0.96^{tψ}).
    init, step = nadam_reference(lambda t: B1 * (1 - 0.5 * 0.96 ** (t * PSI)))
    assert_matches_reference(
        optlab.nadam(ALPHA, B1, B2, EPS, momentum_decay=PSI),
        step,
        ref_init=init,
        num_steps=15,
        rtol=RTOL,
        atol=ATOL,
    )


def test_constant_momentum_formula():
    init, step = nadam_reference(lambda t: B1)
    assert_matches_reference(
        optlab.nadam(ALPHA, B1, B2, EPS, momentum_schedule=False),
        step,
        ref_init=init,
        rtol=RTOL,
        atol=ATOL,
    )


def test_momentum_decay_zero_is_half_beta1_not_constant_form():
    # ψ = 0 gives μ_t = β1(1 − ½) = β1/2 for every t: a different optimizer from optax's.
    init, step = nadam_reference(lambda t: B1 / 2)
    assert_matches_reference(
        optlab.nadam(ALPHA, B1, B2, EPS, momentum_decay=0.0),
        step,
        ref_init=init,
        rtol=RTOL,
        atol=ATOL,
    )
    params, grads = problem()
    a = jax_rollout(optlab.nadam(ALPHA, B1, B2, EPS, momentum_decay=0.0), params, grads)
    b = jax_rollout(optlab.nadam(ALPHA, B1, B2, EPS, momentum_schedule=False), params, grads)
    assert np.max(np.abs(a[-1]["w"] - b[-1]["w"])) > 1e-3


def test_parity_optax_constant_momentum():
    # optax.nadam ≡ momentum_schedule=False.
    params, grads = problem()
    assert_same_trajectory(
        jax_rollout(optlab.nadam(ALPHA, B1, B2, EPS, momentum_schedule=False), params, grads),
        jax_rollout(optax.nadam(ALPHA, B1, B2, EPS), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )


def test_parity_torch(torch):
    # torch.optim.NAdam(lr, betas, eps, momentum_decay=ψ, weight_decay=0,
    # decoupled_weight_decay=False).
    params, grads = problem()
    assert_same_trajectory(
        jax_rollout(optlab.nadam(ALPHA, B1, B2, EPS, momentum_decay=PSI), params, grads),
        torch_rollout(
            lambda ps: torch.optim.NAdam(ps, lr=ALPHA, betas=(B1, B2), eps=EPS, momentum_decay=PSI),
            params,
            grads,
        ),
        rtol=RTOL,
        atol=ATOL,
    )


# like="optax" (optax.nadam = Adam with a Nesterov term, no μ-schedule) and like="torch"
# (torch.optim.NAdam, the default form), each against the library's written form.


def optax_nadam_reference(rate_of_t, b1, b2, eps):
    """optax.scale_by_adam(nesterov=True): m̂ = β1·m_t/(1 − β1^{t+1}) + (1 − β1)·g_t/(1 − β1^t),
    v̂ = v_t/(1 − β2^t), u = −α_t·m̂/(√v̂ + ε)."""

    def step(theta, g, s):
        t = s["t"] + 1
        m = (1 - b1) * g + b1 * s["m"]
        v = (1 - b2) * g * g + b2 * s["v"]
        m_hat = b1 * m / (1 - b1 ** (t + 1)) + (1 - b1) * g / (1 - b1**t)
        u = -rate_of_t(t - 1) * m_hat / (np.sqrt(v / (1 - b2**t)) + eps)
        return theta + u, {"m": m, "v": v, "t": t}

    return lambda p: {"m": 0 * p, "v": 0 * p, "t": 0}, step


def torch_nadam_reference(lr, b1, b2, eps, psi):
    """torch.optim.NAdam (non-capturable), line by line."""

    def step(theta, g, s):
        t = s["t"] + 1
        mu = b1 * (1.0 - 0.5 * 0.96 ** (t * psi))
        mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
        prod = s["prod"] * mu
        m = s["m"] + (1 - b1) * (g - s["m"])  # exp_avg.lerp_(grad, 1 − β1)
        v = b2 * s["v"] + (1 - b2) * g * g
        denom = np.sqrt(v / (1 - b2**t)) + eps
        theta = theta - lr * (1 - mu) / (1 - prod) * g / denom
        theta = theta - lr * mu_next / (1 - prod * mu_next) * m / denom
        return theta, {"m": m, "v": v, "t": t, "prod": prod}

    return lambda p: {"m": 0 * p, "v": 0 * p, "t": 0, "prod": 1.0}, step


def schedule_np(t):
    return 0.01 * 0.9**t + 0.001


def schedule_jax(count):
    return 0.01 * 0.9 ** count.astype(np.float64) + 0.001


OPTAX_CASES = [
    # lr, kwargs (optlab and optax alike), (b1, b2, eps)
    (ALPHA, {}, (0.9, 0.999, 1e-8)),  # optax's defaults
    ("schedule", {"b1": 0.8, "b2": 0.99, "eps": 1e-6}, (0.8, 0.99, 1e-6)),
]


@pytest.mark.parametrize(("lr", "kwargs", "hyper"), OPTAX_CASES)
def test_optax_formula(lr, kwargs, hyper):
    scheduled = lr == "schedule"
    init, step = optax_nadam_reference(schedule_np if scheduled else lambda t: lr, *hyper)
    tx = optlab.nadam(schedule_jax if scheduled else lr, like="optax", **kwargs)
    assert_matches_reference(tx, step, ref_init=init, num_steps=15, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(("lr", "kwargs", "hyper"), OPTAX_CASES)
def test_parity_optax_like(lr, kwargs, hyper):
    lr = schedule_jax if lr == "schedule" else lr
    params, grads = problem(15)
    assert_same_trajectory(
        jax_rollout(optlab.nadam(lr, like="optax", **kwargs), params, grads),
        jax_rollout(optax.nadam(lr, **kwargs), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )


TORCH_CASES = [
    # kwargs, (b1, b2, eps, ψ)
    ({}, (0.9, 0.999, 1e-8, 0.004)),  # torch's defaults
    ({"b1": 0.8, "b2": 0.99, "eps": 1e-6, "momentum_decay": 0.05}, (0.8, 0.99, 1e-6, 0.05)),
    ({"momentum_schedule": True, "momentum_decay": 0.0}, (0.9, 0.999, 1e-8, 0.0)),
]


@pytest.mark.parametrize(("kwargs", "hyper"), TORCH_CASES)
def test_torch_formula(kwargs, hyper):
    init, step = torch_nadam_reference(ALPHA, *hyper)
    tx = optlab.nadam(ALPHA, like="torch", **kwargs)
    assert_matches_reference(tx, step, ref_init=init, num_steps=15, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(("kwargs", "hyper"), TORCH_CASES)
def test_parity_torch_like(torch, kwargs, hyper):
    b1, b2, eps, psi = hyper
    params, grads = problem(15)
    assert_same_trajectory(
        jax_rollout(optlab.nadam(ALPHA, like="torch", **kwargs), params, grads),
        torch_rollout(
            lambda ps: torch.optim.NAdam(ps, lr=ALPHA, betas=(b1, b2), eps=eps, momentum_decay=psi),
            params,
            grads,
        ),
        rtol=RTOL,
        atol=ATOL,
    )


def test_default_differs_from_optax_and_equals_torch():
    params, grads = problem(15)
    default = jax_rollout(optlab.nadam(ALPHA), params, grads)
    before = jax_rollout(
        optlab.nadam(ALPHA, momentum_decay=0.004, momentum_schedule=True), params, grads
    )
    assert_same_trajectory(default, before, rtol=0, atol=0)
    optax_form = jax_rollout(optlab.nadam(ALPHA, like="optax"), params, grads)
    assert np.max(np.abs(optax_form[-1]["w"] - default[-1]["w"])) > 1e-4
    constant = jax_rollout(optlab.nadam(ALPHA, momentum_schedule=False), params, grads)
    assert_same_trajectory(optax_form, constant, rtol=RTOL, atol=ATOL)
    torch_form = jax_rollout(optlab.nadam(ALPHA, like="torch"), params, grads)
    assert_same_trajectory(torch_form, default, rtol=RTOL, atol=ATOL)


def test_states():
    assert type(optlab.nadam(ALPHA).init(jnp.zeros(2))[0]).__name__ == "NadamState"
    assert type(optlab.nadam(ALPHA, like="torch").init(jnp.zeros(2))[0]).__name__ == "NadamState"
    state = optlab.nadam(ALPHA, like="optax").init(jnp.zeros(2))[0]
    assert type(state).__name__ == "ScaleByAdamState" and state._fields == ("count", "mu", "nu")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"like": "keras"}, r"nadam: `like` must be one of \(None, 'optax', 'torch'\)"),
        (
            {"momentum_schedule": True, "like": "optax"},
            "momentum_schedule=True conflicts with like='optax'",
        ),
        ({"momentum_decay": 0.004, "like": "optax"}, "momentum_decay=0.004 conflicts with"),
        (
            {"momentum_schedule": False, "like": "torch"},
            "momentum_schedule=False conflicts with like='torch'",
        ),
        ({"momentum_decay": -1.0, "like": "torch"}, "`momentum_decay` must be a finite"),
        ({"b1": 1.0, "like": "optax"}, r"`b1` must be in \[0, 1\)"),
        ({"eps": -1.0, "like": "torch"}, "`eps` must be a finite number >= 0"),
        ({"learning_rate": -0.1, "like": "optax"}, "nadam: `learning_rate` must be"),
    ],
)
def test_bad_input_like(kwargs, match):
    kwargs = {"learning_rate": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        optlab.nadam(**kwargs)
