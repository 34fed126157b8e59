"""robbins_monro: lecture 04's table of the two conditions, and the report."""

import dataclasses
import math

import numpy as np
import pytest

from optlab import schedules as sch


@pytest.mark.parametrize(
    ("gamma", "limit_is_zero", "sum_diverges"),
    [
        pytest.param(lambda t: np.ones_like(t), False, True, id="1"),  # lecture 04: ✗ ✓
        pytest.param(lambda t: 1 / t, True, True, id="1/t"),  # lecture 04: ✓ ✓
        pytest.param(lambda t: np.exp(-t), True, False, id="exp(-t)"),  # lecture 04: ✓ ✗
        pytest.param(lambda t: 1 / t**2, True, False, id="1/t^2"),
        pytest.param(lambda t: 1 / np.sqrt(t), True, True, id="1/sqrt(t)"),
        pytest.param(lambda t: 1.0, False, True, id="scalar"),  # broadcast
    ],
)
def test_reproduces_lecture_04(gamma, limit_is_zero, sum_diverges):
    report = sch.robbins_monro(gamma)
    assert (report.limit_is_zero, report.sum_diverges) == (limit_is_zero, sum_diverges)
    assert report.both == (limit_is_zero and sum_diverges)


@pytest.mark.parametrize(
    ("schedule", "limit_is_zero", "sum_diverges"),
    [
        pytest.param(sch.constant(1.0), False, True, id="constant"),
        pytest.param(sch.inverse_time_decay(1.0, 1.0), True, True, id="inverse"),
        pytest.param(sch.inverse_time_decay(1.0, 1.0, power=0.5), True, True, id="sqrt"),
        pytest.param(sch.exponential_decay(math.e**-1, math.e**-1), True, False, id="exp"),
        pytest.param(sch.step_decay(1.0, 0.5, 1000), True, False, id="step"),
        pytest.param(sch.cosine_decay(1.0, 1000), True, False, id="cosine"),
        pytest.param(sch.cyclical(0.0, 1.0, 50), False, True, id="cyclical"),
    ],
)
def test_our_schedules(schedule, limit_is_zero, sum_diverges):
    report = sch.robbins_monro(schedule, first_step=0)
    assert (report.limit_is_zero, report.sum_diverges) == (limit_is_zero, sum_diverges)


def test_report():
    report = sch.robbins_monro(lambda t: 1 / t, horizon=1000)
    text = str(report)
    assert "(i)  lim γ = 0: ✓" in text and "(ii) Σ γ = ∞:   ✓" in text, text
    assert report.first_value == 1.0 and report.horizon == 1000
    np.testing.assert_allclose(report.partial_sum, np.sum(1 / np.arange(1, 1001)), rtol=1e-14)
    np.testing.assert_allclose(report.tail_sum, np.sum(1 / np.arange(501, 1001)), rtol=1e-14)
    assert report.sum_ratio == report.tail_sum / report.partial_sum
    assert report.limit_ratio == report.tail_peak / report.peak == 1 / 501
    assert "(ii) Σ γ = ∞:   ✗" in str(sch.robbins_monro(lambda t: np.exp(-t)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.limit_is_zero = False  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"schedule": 0.1}, "`schedule` must be a function"),
        ({"schedule": lambda t: -1 / t}, r"`schedule` must give .*, got γ\(1\) = -1.0"),
        ({"schedule": lambda t: np.where(t > 5, np.nan, 1.0)}, r"got γ\(6\) = nan"),
        ({"schedule": lambda t: 1 / t, "horizon": 3}, "`horizon` must be an integer >= 4"),
        ({"schedule": lambda t: 1 / t, "sum_rtol": 0}, "`sum_rtol` must be in"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=rf"^robbins_monro: .*{match}"):
        sch.robbins_monro(**kwargs)
