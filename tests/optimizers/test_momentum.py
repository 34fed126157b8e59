"""momentum: lecture 04's heavy ball, lecture 02's EMA, lecture 01's velocity form."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optlab
from optlab.testing import assert_matches_reference
from tests.optimizers.rollouts import assert_same_trajectory, jax_rollout, problem, torch_rollout

# float64 on both sides: the formulas agree to rounding.
RTOL, ATOL = 1e-11, 1e-13
MU = 0.9


def schedule_np(t):
    """A non-constant rate (t counts updates from 0) to separate the forms."""
    return 0.1 * 0.8**t + 0.01


def schedule_jax(count):
    return 0.1 * 0.8 ** count.astype(jnp.float64) + 0.01


@pytest.mark.parametrize("scheduled", [False, True])
def test_heavy_ball_formula(scheduled):
    # Lecture 04: Δ ← μ·Δ + (−∇E(θ));  θ ← θ + γ·Δ
    def ref_step(theta, g, state):
        delta, t = state
        gamma = schedule_np(t) if scheduled else 0.1
        delta = MU * delta + (-g)
        return theta + gamma * delta, (delta, t + 1)

    lr = schedule_jax if scheduled else 0.1
    assert_matches_reference(
        optlab.momentum(lr, MU, form="heavy_ball"),
        ref_step,
        ref_init=lambda p: (np.zeros_like(p), 0),
        rtol=RTOL,
        atol=ATOL,
    )


@pytest.mark.parametrize("scheduled", [False, True])
def test_ema_formula(scheduled):
    # Lecture 02: V_w := β·V_w + (1 − β)·∇_w J(w);  w := w − α·V_w
    beta = MU

    def ref_step(w, g, state):
        v, t = state
        alpha = schedule_np(t) if scheduled else 0.1
        v = beta * v + (1 - beta) * g
        return w - alpha * v, (v, t + 1)

    lr = schedule_jax if scheduled else 0.1
    assert_matches_reference(
        optlab.momentum(lr, beta, form="ema"),
        ref_step,
        ref_init=lambda p: (np.zeros_like(p), 0),
        rtol=RTOL,
        atol=ATOL,
    )


@pytest.mark.parametrize("scheduled", [False, True])
def test_velocity_formula(scheduled):
    # Lecture 01: Δθ_t = ρ·Δθ_{t−1} − η·g_t;  θ_t = θ_{t−1} + Δθ_t
    rho = MU

    def ref_step(theta, g, state):
        delta_theta, t = state
        eta = schedule_np(t) if scheduled else 0.1
        delta_theta = rho * delta_theta - eta * g
        return theta + delta_theta, (delta_theta, t + 1)

    lr = schedule_jax if scheduled else 0.1
    assert_matches_reference(
        optlab.momentum(lr, rho, form="velocity"),
        ref_step,
        ref_init=lambda p: (np.zeros_like(p), 0),
        rtol=RTOL,
        atol=ATOL,
    )


def test_heavy_ball_equals_ema_under_any_schedule():
    # γ_t = α_t (1 − β) makes the two forms identical, whatever the schedule.
    params, grads = problem(num_steps=30)
    heavy = jax_rollout(
        optlab.momentum(lambda c: schedule_jax(c) * (1 - MU), MU, form="heavy_ball"),
        params,
        grads,
    )
    ema = jax_rollout(optlab.momentum(schedule_jax, MU, form="ema"), params, grads)
    assert_same_trajectory(heavy, ema, rtol=RTOL, atol=ATOL)


def test_velocity_equals_heavy_ball_for_a_constant_rate_only():
    params, grads = problem(num_steps=20)
    constant = [
        jax_rollout(optlab.momentum(0.05, MU, form=f), params, grads)
        for f in ("velocity", "heavy_ball")
    ]
    assert_same_trajectory(*constant, rtol=RTOL, atol=ATOL)
    scheduled = [
        jax_rollout(optlab.momentum(schedule_jax, MU, form=f), params, grads)
        for f in ("velocity", "heavy_ball")
    ]
    gap = max(np.max(np.abs(a["w"] - b["w"])) for a, b in zip(*scheduled, strict=True))
    assert gap > 1e-2, f"velocity and heavy_ball should part under a schedule, gap {gap}"


@pytest.mark.parametrize(
    ("form", "limit"),
    [("heavy_ball", 0.1 / (1 - MU)), ("velocity", 0.1 / (1 - MU)), ("ema", 0.1)],
)
def test_constant_gradient_step_limit(form, limit):
    # Lecture 04's property: all gradients equal ⇒ effective rate γ' = γ/(1 − μ);
    # for the EMA form the step tends to α itself.
    tx = optlab.momentum(0.1, MU, form=form)
    with jax.enable_x64(True):
        g = jnp.ones(3)
        state = tx.init(g)
        update = jax.jit(tx.update)
        for _ in range(400):  # μ^400 ≈ 5e-19
            step, state = update(g, state)
    np.testing.assert_allclose(-np.asarray(step), limit, rtol=1e-12)


def test_parity_optax():
    params, grads = problem()
    # heavy_ball ↔ optax.sgd(momentum=μ) (trace before the rate), constant rate.
    assert_same_trajectory(
        jax_rollout(optlab.momentum(0.1, MU, form="heavy_ball"), params, grads),
        jax_rollout(optax.sgd(0.1, momentum=MU), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )
    # velocity ↔ rate first, then optax.trace: the rate inside the velocity, scheduled.
    assert_same_trajectory(
        jax_rollout(optlab.momentum(schedule_jax, MU, form="velocity"), params, grads),
        jax_rollout(
            optax.chain(optax.scale_by_learning_rate(schedule_jax), optax.trace(MU)),
            params,
            grads,
        ),
        rtol=RTOL,
        atol=ATOL,
    )
    # ema ↔ optax.ema without debiasing, then −α.
    assert_same_trajectory(
        jax_rollout(optlab.momentum(0.1, MU, form="ema"), params, grads),
        jax_rollout(optax.chain(optax.ema(MU, debias=False), optax.scale(-0.1)), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )


def test_parity_torch_heavy_ball(torch):
    # torch.optim.SGD(lr=γ, momentum=μ, dampening=0, nesterov=False) is lecture 04's form.
    params, grads = problem()
    assert_same_trajectory(
        jax_rollout(optlab.momentum(0.1, MU, form="heavy_ball"), params, grads),
        torch_rollout(lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=MU), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )


def test_torch_dampening_is_not_the_ema_form(torch):
    # PyTorch's dampening=β skips the (1 − β) factor on the first step, so it is no
    # oracle for lecture 02's EMA: the first step differs by exactly 1/(1 − β).
    params, grads = problem(num_steps=1)
    ours = jax_rollout(optlab.momentum(0.1, MU, form="ema"), params, grads)
    theirs = torch_rollout(
        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=MU, dampening=MU), params, grads
    )
    np.testing.assert_allclose(
        theirs[0]["w"] - params["w"], (ours[0]["w"] - params["w"]) / (1 - MU), rtol=1e-12
    )
