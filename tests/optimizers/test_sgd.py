"""sgd: θ ← θ − α g (lectures 01, 02, 04, 05)."""

import jax.numpy as jnp
import optax

import optlab
from optlab.testing import assert_matches_reference
from tests.optimizers.rollouts import assert_same_trajectory, jax_rollout, problem, torch_rollout

# float64 on both sides: agreement to rounding (tolerance stated for every formula test).
RTOL, ATOL = 1e-12, 1e-14


def test_formula_constant_rate():
    alpha = 0.05

    def ref_step(w, g, state):  # lecture 02: w := w − α ∂L/∂w
        return w - alpha * g, state

    assert_matches_reference(optlab.sgd(alpha), ref_step, num_steps=12, rtol=RTOL, atol=ATOL)


def test_formula_time_dependent_rate():
    # Lecture 04: θ ← θ − γ^(t) ∇E(θ); our step counter starts at 0 for the first update.
    def gamma(t):
        return 0.5 / (1.0 + t)

    def ref_step(theta, g, t):
        return theta - gamma(t) * g, t + 1

    assert_matches_reference(
        optlab.sgd(lambda count: gamma(count.astype(jnp.float64))),
        ref_step,
        ref_init=lambda _: 0,
        num_steps=12,
        rtol=RTOL,
        atol=ATOL,
    )


def test_parity_optax_sgd():
    params, grads = problem()
    assert_same_trajectory(
        jax_rollout(optlab.sgd(0.1), params, grads),
        jax_rollout(optax.sgd(0.1), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )


def test_parity_torch_sgd(torch):
    # torch.optim.SGD(lr) with momentum=0, weight_decay=0.
    params, grads = problem()
    assert_same_trajectory(
        jax_rollout(optlab.sgd(0.1), params, grads),
        torch_rollout(lambda ps: torch.optim.SGD(ps, lr=0.1), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )
