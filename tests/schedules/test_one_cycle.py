"""one_cycle and one_cycle_momentum: the phase table, and PyTorch's OneCycleLR."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optlab
from optlab import schedules as sch
from tests.schedules.oracles import assert_close64, assert_closed_form, torch_values, values64


def ref_one_cycle(t, endpoints, ends, anneal):
    """Phase i runs from the previous phase's end to ``ends[i]``, endpoints[i] = (from, to)."""
    out = []
    for s in t:
        begin = 0.0
        for i, end in enumerate(ends):
            if s <= end or i == len(ends) - 1:
                p = min((s - begin) / (end - begin), 1.0)
                a, b = endpoints[i]
                if anneal == "cos":
                    out.append(b + (a - b) * (1 + math.cos(math.pi * p)) / 2)
                else:
                    out.append(a + (b - a) * p)
                break
            begin = end
    return np.array(out)


@pytest.mark.parametrize(
    ("schedule", "formula"),
    [
        pytest.param(
            sch.one_cycle(0.1, 300),  # η_0 = 0.1/25, η_min = η_0/1e4, peak at 0.3·300 − 1
            lambda t: ref_one_cycle(t, [(0.004, 0.1), (0.1, 4e-7)], [89, 299], "cos"),
            id="two-phase-cos",
        ),
        pytest.param(
            sch.one_cycle(
                1.0, 301, pct_start=0.25, div_factor=10, anneal="linear", three_phase=True
            ),
            lambda t: ref_one_cycle(
                t, [(0.1, 1.0), (1.0, 0.1), (0.1, 1e-5)], [74.25, 148.5, 300], "linear"
            ),
            id="three-phase-linear",
        ),
        pytest.param(
            sch.one_cycle_momentum(300, pct_start=0.4),
            lambda t: ref_one_cycle(t, [(0.95, 0.85), (0.85, 0.95)], [119, 299], "cos"),
            id="momentum",
        ),
        pytest.param(
            sch.one_cycle_momentum(301, pct_start=0.25, three_phase=True),
            lambda t: ref_one_cycle(
                t, [(0.95, 0.85), (0.85, 0.95), (0.95, 0.95)], [74.25, 148.5, 300], "cos"
            ),
            id="momentum-three-phase",
        ),
    ],
)
def test_closed_form(schedule, formula):
    assert_closed_form(schedule, formula)


def test_holds_the_final_value_after_total_steps():
    steps = np.array([299, 300, 1000])
    np.testing.assert_allclose(values64(sch.one_cycle(1.0, 300), steps), 1 / 25 / 1e4)
    np.testing.assert_allclose(values64(sch.one_cycle_momentum(300), steps), 0.95)


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"pct_start": 0.45, "anneal": "linear", "div_factor": 10.0, "final_div_factor": 100.0},
        {"pct_start": 0.2, "three_phase": True},
        {"pct_start": 0.3, "three_phase": True, "anneal": "linear"},
    ],
)
def test_parity_torch(torch, kw):
    kw_torch = {("anneal_strategy" if k == "anneal" else k): v for k, v in kw.items()}
    want, _ = torch_values(
        torch, lambda o: torch.optim.lr_scheduler.OneCycleLR(o, 0.5, 301, **kw_torch)
    )
    assert_close64(sch.one_cycle(0.5, 301, **kw), want)


@pytest.mark.parametrize("three_phase", [False, True])
def test_momentum_parity_torch(torch, three_phase):
    _, want = torch_values(
        torch,
        lambda o: torch.optim.lr_scheduler.OneCycleLR(
            o, 0.1, 301, pct_start=0.35, base_momentum=0.8, three_phase=three_phase
        ),
        momentum=0.9,
    )
    schedule = sch.one_cycle_momentum(
        301, base_momentum=0.8, pct_start=0.35, three_phase=three_phase
    )
    assert_close64(schedule, want)


def test_momentum_as_adams_b1_through_inject_hyperparams():
    tx = optax.inject_hyperparams(optlab.adam)(
        learning_rate=sch.one_cycle(0.01, 10), b1=sch.one_cycle_momentum(10)
    )
    update = jax.jit(tx.update)
    state = tx.init(jnp.zeros(2))
    b1s = []
    for _ in range(10):
        _, state = update(jnp.ones(2), state)
        b1s.append(float(state.hyperparams["b1"]))  # the value the update just used
    np.testing.assert_allclose(b1s, values64(sch.one_cycle_momentum(10), np.arange(10)), rtol=1e-6)
