"""nadam: Dozat (2016) as torch.optim.NAdam computes it, and optax's constant-μ form."""

import numpy as np
import optax

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
