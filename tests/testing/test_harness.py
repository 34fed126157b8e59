"""The conformance harness itself: it must catch what it claims to catch."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
import pytest

import optlab
from optlab import testing


def test_reference_reports_first_diverging_step_and_leaf():
    alpha = 0.1

    def ref_step(params, grads, t):
        t += 1
        new = jax.tree.map(lambda p, g: p - alpha * g, params, grads)
        if t >= 4:  # a reference that departs from the optimizer at step 4, in one leaf
            new["dense"]["bias"] = new["dense"]["bias"] + 1e-6
        return new, t

    with pytest.raises(AssertionError, match=r"at step 4, leaf \['dense'\]\['bias'\]") as err:
        testing.assert_matches_reference(
            optlab.sgd(alpha), ref_step, ref_init=lambda p: 0, per_leaf=False, rtol=1e-12, atol=0
        )
    assert "|diff| = 1.000e-06" in str(err.value)


def test_reference_passes_and_reports_error_size():
    report = testing.assert_matches_reference(
        optlab.sgd(0.1), lambda p, g, s: (p - 0.1 * g, s), num_steps=3, rtol=1e-12, atol=0
    )
    assert report.steps == 3 and report.max_abs_error < 1e-12


class _CountState(NamedTuple):
    count: jax.Array


def _drifting_state_optimizer(learning_rate):
    """Its count changes dtype after the first update, so jit retraces."""

    def init(params):
        return _CountState(jnp.zeros([], jnp.int32))

    def update(updates, state, params=None):
        return jax.tree.map(lambda g: -learning_rate * g, updates), _CountState(
            state.count.astype(jnp.float32) + 1
        )

    return optax.GradientTransformation(init, update)


def _upcasting_optimizer(learning_rate):
    """Multiplies by a float32 array: bfloat16 updates come back as float32."""

    def update(updates, state, params=None, **extra):
        return jax.tree.map(lambda g: -jnp.float32(learning_rate) * g, updates), state

    return optax.GradientTransformationExtraArgs(lambda p: optax.EmptyState(), update)


def _lazy_optimizer(learning_rate):
    return optlab.sgd(learning_rate * 1e-6)


@pytest.mark.parametrize(
    ("make", "check", "message"),
    [
        (_drifting_state_optimizer, testing.check_no_recompile, "traced 2 times"),
        (_upcasting_optimizer, testing.check_dtypes, "bfloat16 update is float32"),
        (_lazy_optimizer, testing.check_parabola, "did not reach the minimum"),
        (_drifting_state_optimizer, testing.check_extra_args, "value"),
    ],
)
def test_contract_catches_broken_optimizers(make, check, message):
    spec = testing.OptimizerSpec("broken", make, learning_rate=0.1, steps=200)
    with pytest.raises((AssertionError, TypeError), match=message):
        check(spec)


def test_contract_suite_rejects_unknown_checks():
    with pytest.raises(ValueError, match="unknown contract checks"):
        testing.contract_suite([], checks=["parabola", "speed"])


def test_rollout_report_prints_one_short_line():
    report = testing.assert_matches_reference(
        optlab.nesterov(0.1), lambda p, g, s: (p, s), num_steps=1, rtol=0.0, atol=10.0
    )  # a tolerance wide enough for the step: the largest difference is reported
    text = str(report)
    assert text == repr(report) and "\n" not in text and len(text) < 250
    assert text.startswith("RolloutReport(matches the reference: 1 steps, max |diff| = ")
    w = report.worst
    assert report.passed and w.diff == report.max_abs_error > 0
    assert f"at step 1, leaf {w.leaf}, index {w.index}; atol=10.0, rtol=0.0)" in text
    exact = testing.assert_matches_reference(
        optlab.sgd(0.1), lambda p, g, s: (p - 0.1 * g, s), num_steps=50, rtol=1e-12, atol=0
    )
    assert str(exact) == (
        "RolloutReport(matches the reference: 50 steps, max |diff| = 0.000e+00 (exact); "
        "atol=0, rtol=1e-12)"
    )  # 50 steps of trajectories, none of them printed


def test_diverging_rollout_report_names_the_first_divergence():
    def ref_step(params, grads, t):  # departs from SGD at step 2 in the scalar leaf
        new = jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)
        return {**new, "scale": new["scale"] + (0.5 if t + 1 >= 2 else 0.0)}, t + 1

    with pytest.raises(AssertionError) as err:
        testing.assert_matches_reference(
            optlab.sgd(0.1), ref_step, ref_init=lambda p: 0, per_leaf=False, num_steps=30,
            rtol=1e-12, atol=1e-9,
        )  # fmt: skip
    report = err.value.report
    d = report.divergence
    assert not report.passed and (d.step, d.leaf, d.index) == (2, "['scale']", ())
    assert d.reference - d.got == pytest.approx(0.5) and d.diff == pytest.approx(0.5)
    assert len(report.jax_params) == 2 and report.steps == 30
    text = str(report)
    assert "\n" not in text and len(text) < 300
    assert text.startswith("RolloutReport(DIVERGES from the reference at step 2, leaf ['scale'],")
    assert f"index (): got {d.got!r}, reference {d.reference!r}, |diff| = 5.000e-01" in text
    assert text.endswith("; atol=1e-09, rtol=1e-12; 2 of 30 steps run)")
