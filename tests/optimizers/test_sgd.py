"""sgd: θ ← θ − α g (lectures 01, 02, 04, 05)."""

import jax.numpy as jnp
import optax
import pytest

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


# like="optax" / like="torch": both libraries' SGD is this formula, so the switch must be
# accepted and give the library's numbers.


def schedule_np(t):
    return 0.1 * 0.9**t + 0.01


def schedule_jax(count):
    return 0.1 * 0.9 ** count.astype(jnp.float64) + 0.01


@pytest.mark.parametrize("like", [None, "optax", "torch"])
@pytest.mark.parametrize("scheduled", [False, True])
def test_formula_like(like, scheduled):
    # optax.sgd: u_t = −α_t g_t (scale_by_learning_rate); torch.optim.SGD: θ ← θ − lr·g.
    def ref_step(w, g, t):
        alpha = schedule_np(t) if scheduled else 0.05
        return w - alpha * g, t + 1

    tx = optlab.sgd(schedule_jax if scheduled else 0.05, like=like)
    assert_matches_reference(
        tx, ref_step, ref_init=lambda _: 0, num_steps=15, rtol=1e-11, atol=1e-13
    )


@pytest.mark.parametrize("lr", [0.1, schedule_jax])
def test_parity_optax_like(lr):
    params, grads = problem(15)
    assert_same_trajectory(
        jax_rollout(optlab.sgd(lr, like="optax"), params, grads),
        jax_rollout(optax.sgd(lr), params, grads),
        rtol=1e-11,
        atol=1e-13,
    )


@pytest.mark.parametrize("lr", [0.1, 0.37])
def test_parity_torch_like(torch, lr):
    params, grads = problem(15)
    assert_same_trajectory(
        jax_rollout(optlab.sgd(lr, like="torch"), params, grads),
        torch_rollout(lambda ps: torch.optim.SGD(ps, lr=lr), params, grads),
        rtol=1e-11,
        atol=1e-13,
    )


def test_like_forms_equal_the_default():
    params, grads = problem(15)
    default = jax_rollout(optlab.sgd(schedule_jax), params, grads)
    for like in ("optax", "torch"):
        assert_same_trajectory(
            jax_rollout(optlab.sgd(schedule_jax, like=like), params, grads), default, rtol=0, atol=0
        )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"like": "keras"}, r"sgd: `like` must be one of \(None, 'optax', 'torch'\)"),
        ({"learning_rate": -0.1, "like": "torch"}, "sgd: `learning_rate` must be"),
    ],
)
def test_bad_input_like(kwargs, match):
    kwargs = {"learning_rate": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        optlab.sgd(**kwargs)
