"""rmsprop: s ← βs + (1−β)g⊙g, w ← w − α g ⊘ √(s + ε) (lectures 01, 02), and switches."""

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
