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


# like="optax" (optax.sgd(momentum=μ), trace before the rate) and like="torch"
# (torch.optim.SGD(momentum=μ, dampening=τ)), each against the library's equations.


def optax_sgd_momentum_reference(rate_of_t, mu):
    """optax.sgd docs: m_t ← g_t + μ·m_{t−1};  u_t ← −α_t·m_t."""

    def step(theta, g, state):
        trace, t = state
        trace = g + mu * trace
        return theta - rate_of_t(t) * trace, (trace, t + 1)

    return lambda p: (np.zeros_like(p), 0), step


def torch_sgd_momentum_reference(rate_of_t, mu, dampening):
    """torch.optim.SGD docs: b_1 = g_1, b_t = μ·b_{t−1} + (1 − τ)·g_t;  θ_t = θ_{t−1} − γ·b_t."""

    def step(theta, g, state):
        buf, t = state
        buf = g.copy() if buf is None else mu * buf + (1 - dampening) * g
        return theta - rate_of_t(t) * buf, (buf, t + 1)

    return lambda p: (None, 0), step


@pytest.mark.parametrize(("mu", "scheduled"), [(MU, False), (MU, True), (0.5, True), (0.0, False)])
def test_optax_formula(mu, scheduled):
    init, step = optax_sgd_momentum_reference(schedule_np if scheduled else lambda t: 0.1, mu)
    lr = schedule_jax if scheduled else 0.1
    assert_matches_reference(
        optlab.momentum(lr, mu, like="optax"),
        step,
        ref_init=init,
        num_steps=15,
        rtol=RTOL,
        atol=ATOL,
    )


@pytest.mark.parametrize(
    ("mu", "dampening", "scheduled"),
    [(MU, None, False), (MU, 0.0, True), (MU, 0.3, False), (0.5, 0.5, True), (MU, MU, False)],
)
def test_torch_formula(mu, dampening, scheduled):
    init, step = torch_sgd_momentum_reference(
        schedule_np if scheduled else lambda t: 0.1, mu, dampening or 0.0
    )
    lr = schedule_jax if scheduled else 0.1
    assert_matches_reference(
        optlab.momentum(lr, mu, dampening=dampening, like="torch"),
        step,
        ref_init=init,
        num_steps=15,
        rtol=RTOL,
        atol=ATOL,
    )


@pytest.mark.parametrize(
    ("lr", "kwargs", "theirs"),
    [
        (0.1, {}, {"momentum": MU}),  # μ: neither library has a default for momentum on
        (schedule_jax, {"mu": 0.5}, {"momentum": 0.5}),
    ],
)
def test_parity_optax_like(lr, kwargs, theirs):
    params, grads = problem(15)
    assert_same_trajectory(
        jax_rollout(optlab.momentum(lr, like="optax", **kwargs), params, grads),
        jax_rollout(optax.sgd(lr, **theirs), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )


@pytest.mark.parametrize(
    ("kwargs", "theirs"),
    [
        ({}, {"momentum": MU}),
        ({"mu": 0.5, "dampening": 0.3}, {"momentum": 0.5, "dampening": 0.3}),
        ({"dampening": MU}, {"momentum": MU, "dampening": MU}),
    ],
)
def test_parity_torch_like(torch, kwargs, theirs):
    params, grads = problem(15)
    assert_same_trajectory(
        jax_rollout(optlab.momentum(0.1, like="torch", **kwargs), params, grads),
        torch_rollout(lambda ps: torch.optim.SGD(ps, lr=0.1, **theirs), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )


def test_like_without_dampening_is_heavy_ball_and_dampening_is_not():
    params, grads = problem(15)
    heavy = jax_rollout(optlab.momentum(schedule_jax, MU), params, grads)
    for like in ("optax", "torch"):
        assert_same_trajectory(
            jax_rollout(optlab.momentum(schedule_jax, MU, like=like), params, grads),
            heavy,
            rtol=RTOL,
            atol=ATOL,
        )
    damped = jax_rollout(
        optlab.momentum(schedule_jax, MU, dampening=0.3, like="torch"), params, grads
    )
    assert np.max(np.abs(damped[-1]["w"] - heavy[-1]["w"])) > 1e-2


def test_states():
    # like=None and like="optax" keep HeavyBallState; torch's buffer has its own state.
    p = jnp.zeros(2)
    assert type(optlab.momentum(0.1).init(p)[0]).__name__ == "HeavyBallState"
    assert type(optlab.momentum(0.1, like="optax").init(p)[0]).__name__ == "HeavyBallState"
    state = optlab.momentum(0.1, like="torch").init(p)[0]
    assert type(state).__name__ == "TorchMomentumState"
    assert state._fields == ("count", "momentum_buffer")


def test_traced_dampening_and_mu():
    tx = optax.inject_hyperparams(optlab.momentum)(
        learning_rate=0.1, mu=0.9, dampening=0.3, like="torch"
    )
    updates, _ = jax.jit(tx.update)(jnp.ones(2), tx.init(jnp.ones(2)))
    np.testing.assert_allclose(np.asarray(updates), -0.1, rtol=1e-6)  # step 1: buf = g


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"like": "keras"}, r"momentum: `like` must be one of \(None, 'optax', 'torch'\)"),
        ({"form": "ema", "like": "optax"}, r"form='ema' conflicts with like='optax'"),
        ({"form": "velocity", "like": "torch"}, r"form='velocity' conflicts with like='torch'"),
        ({"dampening": 0.5}, r"dampening=0.5 conflicts with like=None"),
        ({"dampening": 0.5, "like": "optax"}, r"dampening=0.5 conflicts with like='optax'"),
        ({"dampening": 1.5, "like": "torch"}, r"`dampening` must be in \[0, 1\]"),
        ({"mu": 1.0, "like": "torch"}, r"`mu` must be in \[0, 1\)"),
        ({"learning_rate": -0.1, "like": "optax"}, "momentum: `learning_rate` must be"),
    ],
)
def test_bad_input_like(kwargs, match):
    kwargs = {"learning_rate": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        optlab.momentum(**kwargs)
