"""adamw: Adam with decoupled weight decay (Loshchilov & Hutter, Algorithm 2)."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optlab
from optlab.testing import assert_matches_reference
from tests.optimizers.rollouts import assert_same_trajectory, jax_rollout, problem, torch_rollout

RTOL, ATOL = 1e-11, 1e-13
B1, B2, EPS, LAM = 0.9, 0.99, 1e-6, 0.1


def schedule_np(t):
    return 0.02 * 0.9**t + 0.001


def schedule_jax(count):
    return 0.02 * 0.9**count + 0.001  # float64 under x64, float32 otherwise


def algorithm_2(rate_of_t, decay_multiplier_of_t):
    """θ_t ← θ_{t−1} − (rate_t · m̂_t/(√v̂_t + ε) + c_t · λ · θ_{t−1})."""

    def init(theta0):
        return {"m": 0 * theta0, "v": 0 * theta0, "t": 0}

    def step(theta, g, s):
        t = s["t"] + 1
        m = B1 * s["m"] + (1 - B1) * g
        v = B2 * s["v"] + (1 - B2) * g * g
        adam_direction = (m / (1 - B1**t)) / (np.sqrt(v / (1 - B2**t)) + EPS)
        theta = theta - (
            rate_of_t(t - 1) * adam_direction + decay_multiplier_of_t(t - 1) * LAM * theta
        )
        return theta, {"m": m, "v": v, "t": t}

    return init, step


def test_paper_scaling_with_schedule():
    # Paper: θ_t ← θ_{t−1} − η_t (α m̂/(√v̂+ε) + λθ), η_t = α_t/α_0 the schedule multiplier.
    init, step = algorithm_2(schedule_np, lambda t: schedule_np(t) / schedule_np(0))
    assert_matches_reference(
        optlab.adamw(schedule_jax, B1, B2, EPS, LAM, decay_scaling="schedule"),
        step,
        ref_init=init,
        num_steps=15,
        rtol=RTOL,
        atol=ATOL,
    )


def test_lr_scaling_with_schedule():
    # PyTorch/optax: the decay is multiplied by the whole rate α_t.
    init, step = algorithm_2(schedule_np, schedule_np)
    assert_matches_reference(
        optlab.adamw(schedule_jax, B1, B2, EPS, LAM),
        step,
        ref_init=init,
        num_steps=15,
        rtol=RTOL,
        atol=ATOL,
    )


def test_mask_leaves_biases_alone():
    # Masked-out leaves follow plain Adam.
    params, grads = problem()
    mask = {"w": True, "b": False}
    ours = jax_rollout(optlab.adamw(0.01, B1, B2, EPS, LAM, mask=mask), params, grads)
    plain = jax_rollout(optlab.adam(0.01, B1, B2, EPS), params, grads)
    decayed = jax_rollout(optlab.adamw(0.01, B1, B2, EPS, LAM), params, grads)
    for o, p in zip(ours, plain, strict=True):
        np.testing.assert_allclose(o["b"], p["b"], rtol=RTOL, atol=ATOL)
    for o, d in zip(ours, decayed, strict=True):
        np.testing.assert_allclose(o["w"], d["w"], rtol=RTOL, atol=ATOL)
    callable_mask = jax_rollout(
        optlab.adamw(0.01, B1, B2, EPS, LAM, mask=lambda p: {"w": True, "b": False}), params, grads
    )
    assert_same_trajectory(callable_mask, ours, rtol=0, atol=0)


def test_parity_optax():
    params, grads = problem()
    mask = {"w": True, "b": False}
    assert_same_trajectory(
        jax_rollout(optlab.adamw(schedule_jax, B1, B2, EPS, LAM, mask=mask), params, grads),
        jax_rollout(
            optax.adamw(schedule_jax, B1, B2, EPS, weight_decay=LAM, mask=mask), params, grads
        ),
        rtol=RTOL,
        atol=ATOL,
    )


def test_parity_torch(torch):
    # torch.optim.AdamW(lr, betas, eps, weight_decay=λ, amsgrad=False).
    params, grads = problem()
    assert_same_trajectory(
        jax_rollout(optlab.adamw(0.01, B1, B2, EPS, LAM), params, grads),
        torch_rollout(
            lambda ps: torch.optim.AdamW(ps, lr=0.01, betas=(B1, B2), eps=EPS, weight_decay=LAM),
            params,
            grads,
        ),
        rtol=RTOL,
        atol=ATOL,
    )


def test_schedule_scaling_rejects_a_schedule_starting_at_zero():
    with pytest.raises(ValueError, match="decay_scaling"):
        optlab.adamw(optax.linear_schedule(0.0, 1e-3, 100), decay_scaling="schedule")


def test_update_without_params_is_a_clear_error():
    tx = optlab.adamw(0.01)
    with pytest.raises(ValueError, match="needs `params`"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)))
