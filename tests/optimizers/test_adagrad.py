"""adagrad: s ← s + g⊙g, w ← w − α g ⊘ √(s + ε) (lectures 01, 02, 03)."""

import numpy as np
import optax
import pytest

import optlab
from optlab.testing import assert_matches_reference
from tests.optimizers.rollouts import assert_same_trajectory, jax_rollout, problem, torch_rollout

RTOL, ATOL = 1e-11, 1e-13


@pytest.mark.parametrize("s0", [0.0, 0.1])
def test_lecture02_formula(s0):
    alpha, eps = 0.5, 1e-10

    def ref_step(w, g, s):
        s = s + g * g  # s ← s + ∇J ⊗ ∇J
        return w - alpha * g / np.sqrt(s + eps), s  # w ← w − α ∇J ⊘ √(s + ε)

    assert_matches_reference(
        optlab.adagrad(alpha, eps, initial_accumulator=s0),
        ref_step,
        ref_init=lambda p: np.full_like(p, s0),
        rtol=RTOL,
        atol=ATOL,
    )


def test_lecture01_formula_without_eps():
    # Lecture 01: Δθ_j = −η g_j / √(Σ_{τ=1}^{t} g²_{τ,j}); the history is kept explicitly.
    eta = 0.3

    def ref_step(theta, g, history):
        history = [*history, g]
        return theta - eta * g / np.sqrt(sum(h**2 for h in history)), history

    assert_matches_reference(
        optlab.adagrad(eta, eps=0.0), ref_step, ref_init=lambda p: [], rtol=RTOL, atol=ATOL
    )


def test_torch_epsilon_placement():
    alpha, eps = 0.5, 1e-3  # a visible ε, so the placement matters

    def ref_step(w, g, s):
        s = s + g * g
        return w - alpha * g / (np.sqrt(s) + eps), s

    assert_matches_reference(
        optlab.adagrad(alpha, eps, eps_in_sqrt=False),
        ref_step,
        ref_init=np.zeros_like,
        rtol=RTOL,
        atol=ATOL,
    )


def test_parity_optax():
    # optax.adagrad keeps ε inside the root; match its defaults explicitly.
    params, grads = problem()
    assert_same_trajectory(
        jax_rollout(optlab.adagrad(0.5, 1e-7, initial_accumulator=0.1), params, grads),
        jax_rollout(optax.adagrad(0.5, initial_accumulator_value=0.1, eps=1e-7), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )


def test_parity_torch(torch):
    # torch.optim.Adagrad(lr, lr_decay=0, initial_accumulator_value=0, eps=1e-10):
    # ε outside the root, so eps_in_sqrt=False.
    params, grads = problem()
    assert_same_trajectory(
        jax_rollout(optlab.adagrad(0.5, 1e-10, eps_in_sqrt=False), params, grads),
        torch_rollout(lambda ps: torch.optim.Adagrad(ps, lr=0.5, eps=1e-10), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )
