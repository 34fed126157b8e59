"""constant, step_decay, exponential_decay, inverse_time_decay, polynomial."""

import math

import numpy as np
import pytest

from optlab import schedules as sch
from tests.schedules.oracles import assert_close64, assert_closed_form, torch_values, values64


@pytest.mark.parametrize(
    ("schedule", "formula"),
    [
        pytest.param(sch.constant(0.3), lambda t: np.full(t.shape, 0.3), id="constant"),
        pytest.param(
            sch.step_decay(0.5, 0.1, every=30), lambda t: 0.5 * 0.1 ** (t // 30), id="step"
        ),
        pytest.param(sch.step_decay(1.0, 0.5, every=7), lambda t: 0.5 ** (t // 7), id="step-7"),
        pytest.param(sch.exponential_decay(0.2, 0.99), lambda t: 0.2 * 0.99**t, id="exp"),
        pytest.param(
            sch.exponential_decay(0.2, 0.5, every=25),
            lambda t: 0.2 * 0.5 ** (t / 25),
            id="exp-every",
        ),
        pytest.param(
            sch.exponential_decay(0.2, 0.5, every=25, staircase=True),
            lambda t: 0.2 * 0.5 ** (t // 25),
            id="exp-staircase",
        ),
        pytest.param(
            # lecture 04's γ^{(t)} = e^{−t}, its t = ours + 1
            sch.exponential_decay(math.e**-1, math.e**-1),
            lambda t: np.exp(-(t + 1.0)),
            id="exp-lecture-04",
        ),
        pytest.param(
            # lecture 04's γ^{(t)} = 1/t, its t = ours + 1
            sch.inverse_time_decay(1.0, 1.0),
            lambda t: 1 / (t + 1.0),
            id="inverse-lecture-04",
        ),
        pytest.param(
            sch.inverse_time_decay(0.1, 0.01, power=0.5),
            lambda t: 0.1 / np.sqrt(1 + 0.01 * t),
            id="inverse-sqrt",
        ),
        pytest.param(
            sch.polynomial(1.0, 0.01, 2.0, 200),
            lambda t: 0.99 * (1 - np.minimum(t, 200) / 200) ** 2 + 0.01,
            id="polynomial",
        ),
        pytest.param(sch.polynomial(0.5, 0.0, 1, 300), lambda t: 0.5 * (1 - t / 300), id="linear"),
    ],
)
def test_closed_form(schedule, formula):
    assert_closed_form(schedule, formula)


def test_polynomial_stays_at_end():
    steps = np.array([200, 201, 1000, 10**6])
    np.testing.assert_allclose(values64(sch.polynomial(1.0, 0.2, 2, 200), steps), 0.2)


def test_parity_torch_step_lr(torch):
    want, _ = torch_values(torch, lambda o: torch.optim.lr_scheduler.StepLR(o, 17, gamma=0.5))
    assert_close64(sch.step_decay(1.0, 0.5, every=17), want)


def test_parity_torch_exponential_lr(torch):
    want, _ = torch_values(torch, lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.98))
    assert_close64(sch.exponential_decay(1.0, 0.98), want)
