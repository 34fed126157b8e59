"""optlab.lab.doctor and ``optlab doctor`` (lecture 03's sanity checks): all pass on the default
digits MLP, and each one fails on a setup broken in the way it is meant to catch."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optlab.cli import main
from optlab.config import ConfigError, RunConfig
from optlab.lab import Check, DoctorReport, doctor
from optlab.lab._doctor import CHECKS, FD_TOLERANCE
from optlab.lab._gradient_check import FD_RESOLUTION, _relative_errors
from optlab.models import from_apply


@pytest.fixture(scope="module")
def report():
    return doctor(RunConfig())  # the default run: an MLP with Adam on digits


def test_default_digits_mlp_passes_every_check(report):
    assert [check.name for check in report.checks] == list(CHECKS)
    assert report.passed, str(report)

    initial = report["initial_loss"].numbers
    assert initial["expected"] == pytest.approx(math.log(10))  # −log(1/C), C = 10
    assert initial["tolerance"] == pytest.approx(max(0.25 * math.log(10), 0.3))
    assert abs(initial["loss"] - initial["expected"]) <= initial["tolerance"]

    overfit = report["overfit_subset"].numbers
    assert overfit["examples"] == 32 and overfit["accuracy"] >= 0.99
    assert overfit["loss"] <= 0.1 * overfit["start_loss"]

    regularization = report["regularization_raises_loss"].numbers
    assert regularization["loss"] == overfit["loss"]  # the same unregularized run
    assert regularization["l2_loss"] > 1.05 * regularization["loss"]
    assert regularization["penalized_loss"] > regularization["loss"]

    gradient = report["gradient_check"].numbers
    assert gradient["coordinates"] == 4 * 6  # 4 per array: 3 kernels and 3 biases
    assert gradient["max_rel_error"] <= FD_TOLERANCE == gradient["tolerance"]


def test_report_prints_pass_or_fail_with_numbers(report):
    lines = str(report).splitlines()
    assert lines[0].startswith("PASS initial_loss: loss=")
    assert sum(line.startswith("PASS ") for line in lines) == len(CHECKS)
    assert lines[-1] == "all 4 checks passed"
    failed = DoctorReport((Check("a", True, {"x": 1.0}, "fine"), Check("b", False, {}, "bad")))
    assert not failed.passed and str(failed).splitlines()[2] == "FAIL b: "
    assert str(failed).splitlines()[-1] == "1 of 2 checks failed"
    with pytest.raises(KeyError, match="no check 'c'"):
        failed["c"]


def _mlp_params():
    rng = np.random.default_rng(0)
    return {
        "w0": jnp.asarray(rng.normal(size=(64, 32)) / 8, jnp.float32),  # N(0, 1/fan_in)
        "b0": jnp.zeros(32),
        "w1": jnp.asarray(rng.normal(size=(32, 10)) / math.sqrt(32), jnp.float32),
        "b1": jnp.zeros(10),
    }


def _mlp(params, x, activation=jax.nn.relu):
    h = activation(x.reshape(x.shape[0], -1) @ params["w0"] + params["b0"])
    return h @ params["w1"] + params["b1"]


def test_logits_scaled_by_100_fail_the_initial_loss():
    model = from_apply(lambda p, x: 100.0 * _mlp(p, x), _mlp_params())
    check = doctor(RunConfig(), model=model, checks=["initial_loss"])["initial_loss"]
    assert not check.passed
    assert check.numbers["loss"] > check.numbers["expected"] + check.numbers["tolerance"]
    assert "too large" in check.explanation


@jax.custom_vjp
def relu_with_wrong_gradient(x):
    return jnp.maximum(x, 0.0)


relu_with_wrong_gradient.defvjp(
    lambda x: (jnp.maximum(x, 0.0), x),
    lambda x, g: (1.5 * g * (x > 0),),  # the true gradient is g·1[x > 0]: 50% too large
)


def test_a_wrong_custom_gradient_fails_the_finite_difference_check():
    model = from_apply(lambda p, x: _mlp(p, x, relu_with_wrong_gradient), _mlp_params())
    check = doctor(RunConfig(), model=model, checks=["gradient_check"])["gradient_check"]
    assert not check.passed
    # Coordinates of the first layer are off by 1.5×: relative error (1.5 − 1)/1.5 = 1/3.
    assert check.numbers["max_rel_error"] == pytest.approx(1 / 3, rel=1e-3)


def test_constant_init_passes_the_gradient_check(capsys):
    # `optlab doctor --init constant`: the symmetric layers' gradients are ~1e-8 by autodiff
    # and exactly 0 by differences (below what a float32 loss resolves): agreement, not 0/0.
    assert main(["doctor", "--init", "constant", "--check", "gradient_check"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("PASS gradient_check: coordinates=24, max_rel_error=")
    assert out.rstrip().endswith("all 1 checks passed")


def test_relative_errors_treat_equal_and_unresolvable_gradients_as_agreement():
    analytic = np.array([0.0, 2e-8, 1.5, -1.0, 1e-3, np.nan])
    closest = np.array([0.0, 0.0, 1.0, 1.0, 1e-3, 1.0])
    floor = np.full(6, FD_RESOLUTION * math.log(10))  # the floor of a loss of log 10
    errors = _relative_errors(analytic, closest, floor)
    assert errors[0] == 0.0  # both exactly 0: no 0/0
    assert errors[1] < 0.1 * FD_TOLERANCE  # both below the differences' resolution
    assert errors[2] == pytest.approx(1 / 3) and errors[3] == pytest.approx(2.0)  # ×1.5, sign
    assert errors[4] == 0.0 and np.isnan(errors[5])
    assert FD_RESOLUTION == pytest.approx(np.finfo(np.float32).eps / 2e-2)


def test_tiny_learning_rate_fails_overfitting_and_regularization_via_the_cli(capsys):
    code = main(
        [
            "doctor",
            "--learning-rate",
            "1e-9",
            "--model-arg",
            "widths=[16]",
            "--overfit-steps",
            "50",
            "--check",
            "overfit_subset",
            "--check",
            "regularization_raises_loss",
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert out.startswith("FAIL overfit_subset: examples=32, steps=50,")
    assert "\nFAIL regularization_raises_loss: " in out
    assert out.rstrip().endswith("2 of 2 checks failed")


def test_cli_passes_with_exit_0(capsys):
    assert main(["doctor", "--check", "initial_loss"]) == 0
    assert capsys.readouterr().out.startswith("PASS initial_loss: loss=")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--batch-size", "0"], "optlab: error: --batch-size must be a positive integer, got 0"),
        (["--check", "speed"], "optlab: error: doctor: `checks` (--check) must be names from"),
        (["--subset", "0"], "optlab: error: doctor: `subset` (--subset) must be a positive"),
        (["--l2", "-1"], "optlab: error: doctor: `l2` (--l2) must be a number > 0"),
    ],
)
def test_cli_bad_flags_exit_2_with_one_line(capsys, flags, message):
    assert main(["doctor", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


def test_cli_unknown_flag_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["doctor", "--bogus"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_python_api_rejects_bad_arguments():
    with pytest.raises(
        ConfigError, match=r"`overfit_steps` \(--overfit-steps\) must be a positive integer"
    ):
        doctor(RunConfig(), overfit_steps=0)
    with pytest.raises(ConfigError, match="`checks`"):
        doctor(RunConfig(), checks="initial_loss")  # a string, not a list of names
