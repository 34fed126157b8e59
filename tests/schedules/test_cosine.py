"""cosine_decay (with warm-up) and sgdr (warm restarts)."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from optlab import schedules as sch
from tests.schedules.oracles import assert_close64, assert_closed_form, torch_values, values64


def ref_cosine(t, init, steps, alpha=0.0, warmup_steps=0, warmup_init=0.0):
    out = []
    for s in t:
        if s < warmup_steps:
            out.append(warmup_init + (init - warmup_init) * s / warmup_steps)
        else:
            u = min(s - warmup_steps, steps - warmup_steps) / (steps - warmup_steps)
            out.append(init * (alpha + (1 - alpha) * (1 + math.cos(math.pi * u)) / 2))
    return np.array(out)


def ref_sgdr(t, init, first_period, mult=1, min_value=0.0, decay=1.0):
    """Walks the restarts one period at a time."""
    out = []
    for s in t:
        start, period, i = 0, first_period, 0
        while s >= start + period:
            start, period, i = start + period, period * mult, i + 1
        cos = (1 + math.cos(math.pi * (s - start) / period)) / 2
        out.append(min_value + (init - min_value) * decay**i * cos)
    return np.array(out)


@pytest.mark.parametrize(
    ("schedule", "formula"),
    [
        pytest.param(sch.cosine_decay(0.1, 250), lambda t: ref_cosine(t, 0.1, 250), id="cos"),
        pytest.param(
            sch.cosine_decay(0.1, 250, alpha=0.1),
            lambda t: ref_cosine(t, 0.1, 250, 0.1),
            id="cos-alpha",
        ),
        pytest.param(
            sch.cosine_decay(1.0, 280, alpha=0.05, warmup_steps=30, warmup_init=0.1),
            lambda t: ref_cosine(t, 1.0, 280, 0.05, 30, 0.1),
            id="cos-warmup",
        ),
        pytest.param(sch.sgdr(0.1, 20), lambda t: ref_sgdr(t, 0.1, 20), id="sgdr"),
        pytest.param(
            sch.sgdr(0.1, 7, period_mult=2), lambda t: ref_sgdr(t, 0.1, 7, 2), id="sgdr-mult"
        ),
        pytest.param(
            sch.sgdr(1.0, 3, period_mult=3, min_value=0.1),
            lambda t: ref_sgdr(t, 1.0, 3, 3, 0.1),
            id="sgdr-mult-min",
        ),
        pytest.param(
            sch.sgdr(1.0, 10, min_value=0.1, decay=0.7),
            lambda t: ref_sgdr(t, 1.0, 10, 1, 0.1, 0.7),
            id="sgdr-decay",
        ),
    ],
)
def test_closed_form(schedule, formula):
    assert_closed_form(schedule, formula)


def test_cosine_stays_at_alpha():
    steps = np.array([300, 1000, 10**6])
    np.testing.assert_allclose(values64(sch.cosine_decay(1.0, 300, alpha=0.1), steps), 0.1)


def test_sgdr_restarts_far_out():
    # Periods of T_0 = 5, m = 2 start at 5·(2^i − 1): the closed form must land exactly.
    starts = 5 * (2 ** np.arange(1, 18) - 1)
    schedule = sch.sgdr(1.0, 5, period_mult=2)
    np.testing.assert_allclose(values64(schedule, starts), 1.0)
    np.testing.assert_allclose(
        values64(schedule, starts - 1), ref_sgdr(starts - 1, 1.0, 5, 2), rtol=1e-9
    )
    np.testing.assert_allclose(schedule(jnp.asarray(starts, jnp.int32)), 1.0, rtol=1e-5)


def test_parity_torch_cosine_annealing_lr(torch):
    want, _ = torch_values(
        torch, lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=300, eta_min=0.01)
    )
    assert_close64(sch.cosine_decay(1.0, 300, alpha=0.01), want)


@pytest.mark.parametrize(("first_period", "mult", "eta_min"), [(10, 1, 0.05), (4, 3, 0.01)])
def test_parity_torch_warm_restarts(torch, first_period, mult, eta_min):
    want, _ = torch_values(
        torch,
        lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
            o, T_0=first_period, T_mult=mult, eta_min=eta_min
        ),
    )
    assert_close64(sch.sgdr(1.0, first_period, period_mult=mult, min_value=eta_min), want)
