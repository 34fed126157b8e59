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


# like="optax" (optax.adamw, λ = 1e-4 by default) and like="torch" (torch.optim.AdamW,
# λ = 0.01), each against the library's written form.


def optax_adamw_reference(rate_of_t, b1, b2, eps, lam, decays=True):
    """optax.adamw = chain(scale_by_adam, add_decayed_weights(λ), scale_by_learning_rate):
    u = −α_t·(m̂/(√v̂ + ε) + λ·θ)."""

    def step(theta, g, s):
        t = s["t"] + 1
        m = (1 - b1) * g + b1 * s["m"]
        v = (1 - b2) * g * g + b2 * s["v"]
        d = (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        if decays:
            d = d + lam * theta
        return theta - rate_of_t(t - 1) * d, {"m": m, "v": v, "t": t}

    return lambda p: {"m": 0 * p, "v": 0 * p, "t": 0}, step


def torch_adamw_reference(lr, b1, b2, eps, lam):
    """torch.optim.AdamW: θ ← θ·(1 − lr·λ); then θ ← θ − lr/(1 − β1^t)·m/(√v/√(1 − β2^t) + ε)."""

    def step(theta, g, s):
        t = s["t"] + 1
        theta = theta * (1 - lr * lam)
        m = s["m"] + (1 - b1) * (g - s["m"])
        v = b2 * s["v"] + (1 - b2) * g * g
        denom = np.sqrt(v) / np.sqrt(1 - b2**t) + eps
        return theta - lr / (1 - b1**t) * m / denom, {"m": m, "v": v, "t": t}

    return lambda p: {"m": 0 * p, "v": 0 * p, "t": 0}, step


@pytest.mark.parametrize(
    ("kwargs", "hyper", "scheduled"),
    [
        ({}, (0.9, 0.999, 1e-8, 1e-4), False),  # optax's defaults: λ = 1e-4
        ({"b1": B1, "b2": B2, "eps": EPS, "weight_decay": LAM}, (B1, B2, EPS, LAM), True),
    ],
)
def test_optax_formula(kwargs, hyper, scheduled):
    init, step = optax_adamw_reference(schedule_np if scheduled else lambda t: 0.01, *hyper)
    tx = optlab.adamw(schedule_jax if scheduled else 0.01, like="optax", **kwargs)
    assert_matches_reference(tx, step, ref_init=init, num_steps=15, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(
    ("kwargs", "hyper"),
    [
        ({}, (0.9, 0.999, 1e-8, 0.01)),  # torch's defaults: λ = 0.01
        ({"b1": B1, "b2": B2, "eps": EPS, "weight_decay": LAM}, (B1, B2, EPS, LAM)),
    ],
)
def test_torch_formula(kwargs, hyper):
    init, step = torch_adamw_reference(0.01, *hyper)
    tx = optlab.adamw(0.01, like="torch", **kwargs)
    assert_matches_reference(tx, step, ref_init=init, num_steps=15, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(
    ("lr", "kwargs"),
    [
        (0.01, {}),
        (
            schedule_jax,
            {"b1": B1, "b2": B2, "eps": EPS, "weight_decay": LAM, "mask": {"w": True, "b": False}},
        ),
    ],
)
def test_parity_optax_like(lr, kwargs):
    params, grads = problem(15)
    assert_same_trajectory(
        jax_rollout(optlab.adamw(lr, like="optax", **kwargs), params, grads),
        jax_rollout(optax.adamw(lr, **kwargs), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )


@pytest.mark.parametrize(
    ("kwargs", "theirs"),
    [
        ({}, {}),
        (
            {"b1": B1, "b2": B2, "eps": EPS, "weight_decay": LAM},
            {"betas": (B1, B2), "eps": EPS, "weight_decay": LAM},
        ),
    ],
)
def test_parity_torch_like(torch, kwargs, theirs):
    params, grads = problem(15)
    assert_same_trajectory(
        jax_rollout(optlab.adamw(0.01, like="torch", **kwargs), params, grads),
        torch_rollout(lambda ps: torch.optim.AdamW(ps, lr=0.01, **theirs), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )


def test_weight_decay_default_resolves_per_form():
    params, grads = problem(15)
    default = jax_rollout(optlab.adamw(0.01), params, grads)
    before = jax_rollout(optlab.adamw(0.01, weight_decay=0.01), params, grads)
    assert_same_trajectory(default, before, rtol=0, atol=0)
    torch_form = jax_rollout(optlab.adamw(0.01, like="torch"), params, grads)
    assert_same_trajectory(torch_form, default, rtol=RTOL, atol=ATOL)
    optax_form = jax_rollout(optlab.adamw(0.01, like="optax"), params, grads)
    assert np.max(np.abs(optax_form[-1]["w"] - default[-1]["w"])) > 1e-5
    small = jax_rollout(optlab.adamw(0.01, weight_decay=1e-4), params, grads)
    assert_same_trajectory(optax_form, small, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"like": "keras"}, r"adamw: `like` must be one of \(None, 'optax', 'torch'\)"),
        (
            {"decay_scaling": "schedule", "like": "torch"},
            "decay_scaling='schedule' conflicts with like='torch'",
        ),
        (
            {"decay_scaling": "schedule", "like": "optax"},
            "decay_scaling='schedule' conflicts with like='optax'",
        ),
        ({"weight_decay": -0.1, "like": "optax"}, "`weight_decay` must be a finite number"),
        ({"b1": 1.0, "like": "torch"}, r"`b1` must be in \[0, 1\)"),
        ({"learning_rate": -0.1, "like": "torch"}, "adamw: `learning_rate` must be"),
    ],
)
def test_bad_input_like(kwargs, match):
    kwargs = {"learning_rate": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        optlab.adamw(**kwargs)
