"""What every schedule promises: a jit-safe `t -> value` that any optimizer takes as its
learning rate, that vmaps over steps and hyper-parameters, and that rejects bad arguments."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optlab
from optlab import schedules as sch

SCHEDULES = {
    "constant": sch.constant(0.1),
    "step_decay": sch.step_decay(0.1, 0.5, 2),
    "exponential_decay": sch.exponential_decay(0.1, 0.9),
    "inverse_time_decay": sch.inverse_time_decay(0.1, 0.5),
    "polynomial": sch.polynomial(0.1, 0.01, 1.0, 4),
    "cosine_decay": sch.cosine_decay(0.1, 5, warmup_steps=2),
    "sgdr": sch.sgdr(0.1, 2, period_mult=2),
    "cyclical": sch.cyclical(0.01, 0.1, 2),
    "cyclical_momentum": sch.cyclical_momentum(0.8, 0.9, 2),
    "one_cycle": sch.one_cycle(0.1, 6),
    "one_cycle_momentum": sch.one_cycle_momentum(6, pct_start=0.5),
}


def test_registry_covers_the_public_schedules():
    not_schedules = {"ReduceOnPlateauState", "RobbinsMonroReport", "Schedule"}
    not_schedules |= {"reduce_on_plateau", "robbins_monro"}
    # the registry of names (tests/schedules/test_registry.py)
    not_schedules |= {"HORIZONS", "SCHEDULES", "SCHEDULE_ALIASES", "get_schedule"}
    not_schedules |= {"required_arguments", "schedules_help"}
    assert set(sch.__all__) - not_schedules == set(SCHEDULES)


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_learning_rate_of_sgd_without_recompiling(name):
    schedule = SCHEDULES[name]
    tx = optlab.sgd(schedule)
    traces = [0]

    def update(g, state):
        traces[0] += 1
        return tx.update(g, state)

    update = jax.jit(update)
    state = tx.init(jnp.zeros(3))
    for t in range(6):  # the first update reads schedule(0)
        updates, state = update(jnp.ones(3), state)
        np.testing.assert_allclose(updates, -float(schedule(t)), rtol=1e-6)
    assert traces[0] == 1, f"{name}: sgd's update traced {traces[0]} times for 6 steps"


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_jit_vmap_and_broadcast_agree(name):
    schedule = SCHEDULES[name]
    steps = jnp.arange(12, dtype=jnp.int32)
    broadcast = np.asarray(schedule(steps))
    assert broadcast.shape == (12,) and broadcast.dtype == np.float32
    assert np.all(np.isfinite(broadcast)) and np.all(broadcast >= 0)
    vmapped = np.asarray(jax.jit(jax.vmap(schedule))(steps))
    np.testing.assert_allclose(vmapped, broadcast, rtol=1e-6, atol=1e-9)
    scalars = [float(jax.jit(schedule)(jnp.int32(t))) for t in (0, 5, 11)]
    np.testing.assert_allclose(scalars, broadcast[[0, 5, 11]], rtol=1e-6)


def test_traced_hyperparameters_sweep():
    """A vmapped sweep over the peak passes tracers: no Python `if` on them."""
    peaks = jnp.array([0.1, 0.2, 0.4])
    cosine = jax.vmap(lambda peak: sch.cosine_decay(peak, 10, warmup_steps=2)(jnp.arange(10)))
    swept = np.asarray(cosine(peaks))
    np.testing.assert_allclose(swept, np.array([[1.0], [2.0], [4.0]]) * swept[0], rtol=1e-6)
    cyclic = jax.vmap(lambda peak: sch.cyclical(0.0, peak, 3)(jnp.arange(7)))(peaks)
    np.testing.assert_allclose(cyclic[:, 3], peaks, rtol=1e-6)


@pytest.mark.parametrize(
    ("factory", "args", "kwargs", "arg"),
    [
        (sch.constant, (-1.0,), {}, "value"),
        (sch.step_decay, (-0.1, 0.5, 10), {}, "init"),
        (sch.step_decay, (0.1, 0.0, 10), {}, "factor"),
        (sch.step_decay, (0.1, 1.5, 10), {}, "factor"),
        (sch.step_decay, (0.1, 0.5, 0), {}, "every"),
        (sch.exponential_decay, (0.1, 1.01), {}, "rate"),
        (sch.exponential_decay, (0.1, 0.9), {"every": -1}, "every"),
        (sch.inverse_time_decay, (0.1, -1.0), {}, "k"),
        (sch.inverse_time_decay, (float("nan"), 1.0), {}, "init"),
        (sch.polynomial, (0.1, 0.0, 1.0, 0), {}, "steps"),
        (sch.polynomial, (0.1, 0.0, 0.0, 10), {}, "power"),
        (sch.cosine_decay, (0.1, 10.5), {}, "steps"),
        (sch.cosine_decay, (0.1, 10), {"warmup_steps": 10}, "warmup_steps"),
        (sch.cosine_decay, (0.1, 10), {"alpha": -0.1}, "alpha"),
        (sch.sgdr, (0.1, 0), {}, "first_period"),
        (sch.sgdr, (0.1, 10), {"period_mult": 0.5}, "period_mult"),
        (sch.sgdr, (0.1, 10), {"decay": 0.0}, "decay"),
        (sch.cyclical, (0.1, 0.01, 10), {}, "base_lr"),
        (sch.cyclical, (0.01, 0.1, 0), {}, "step_size"),
        (sch.cyclical, (0.01, 0.1, 10), {"step_size_down": -2}, "step_size_down"),
        (sch.cyclical, (0.01, 0.1, 10), {"mode": "triangle"}, "mode"),
        (sch.cyclical, (0.01, 0.1, 10), {"gamma": 0.0}, "gamma"),
        (sch.cyclical_momentum, (0.8, 1.0, 10), {}, "max_momentum"),
        (sch.cyclical_momentum, (0.95, 0.85, 10), {}, "base_momentum"),
        (sch.one_cycle, (0.1, 0), {}, "total_steps"),
        (sch.one_cycle, (0.1, 100), {"pct_start": 1.0}, "pct_start"),
        (sch.one_cycle, (0.1, 3), {"pct_start": 0.3}, "pct_start"),
        (sch.one_cycle, (0.1, 100), {"pct_start": 0.6, "three_phase": True}, "pct_start"),
        (sch.one_cycle, (0.1, 100), {"anneal": "cosine"}, "anneal"),
        (sch.one_cycle, (0.1, 100), {"div_factor": 0}, "div_factor"),
        (sch.one_cycle_momentum, (100,), {"max_momentum": 1.2}, "max_momentum"),
        (sch.reduce_on_plateau, (0.0,), {}, "factor"),
        (sch.reduce_on_plateau, (0.5, -1), {}, "patience"),
        (sch.reduce_on_plateau, (0.5, 2), {"cooldown": 1.5}, "cooldown"),
        (sch.reduce_on_plateau, (0.5, 2), {"min_scale": 2.0}, "min_scale"),
        (sch.reduce_on_plateau, (0.5, 2), {"rtol": 1.0}, "rtol"),
        (sch.reduce_on_plateau, (0.5, 2), {"atol": -1.0}, "atol"),
    ],
)
def test_bad_arguments_name_the_argument(factory, args, kwargs, arg):
    with pytest.raises(ValueError, match=rf"^{factory.__name__}: `{arg}` must"):
        factory(*args, **kwargs)


def test_message_says_the_fix():
    with pytest.raises(ValueError, match=r"Did you swap `base_lr` and `max_lr`\?"):
        sch.cyclical(0.1, 0.01, 10)
    with pytest.raises(ValueError, match=r"Pick one of triangular, triangular2, exp_range"):
        sch.cyclical_momentum(0.85, 0.95, 10, mode="cosine")
