"""Smoke test of experiments/06_conditioning.py (lecture 04, conditioning) at tiny size."""

import math

import pytest

from tests.experiments.conftest import check_files, read_csv

pytestmark = pytest.mark.slow  # the experiment scripts' smoke runs

NAME = "06_conditioning"


def _number(text):
    return None if text == "" else float(text)


def test_writes_its_files(quick):
    _, out, _ = quick
    check_files(
        out, {"quadratics.csv", "data_remedies.csv", "architecture.csv", "conditioning.png"}
    )


def test_csv_holds_the_returned_numbers(quick):
    result, out, _ = quick
    for name, key, fields in (
        ("quadratics.csv", "quadratics", ("kappa", "steps", "predicted_steps")),
        ("data_remedies.csv", "data_remedies", ("kappa", "lambda_min", "lambda_max")),
        ("architecture.csv", "architecture", ("loss", "lambda_min", "lambda_max")),
    ):
        rows = read_csv(out / name)
        assert len(rows) == len(result[key]), name
        for row, expected in zip(rows, result[key], strict=True):
            for field in fields:
                if expected[field] is None:
                    assert row[field] == ""
                else:
                    assert _number(row[field]) == pytest.approx(expected[field], rel=1e-12)


def test_quadratic_steps_respect_theory(quick):
    """GD at α = 2/(λmax + λmin) contracts f by at least ρ² = ((κ−1)/(κ+1))² a step, so it
    can never need more steps than the bound; heavy ball beats GD at κ = 100."""
    result, _, _ = quick
    rows = {(r["optimizer"], r["kappa"], r["hessian"]): r for r in result["quadratics"]}
    for kappa in (10.0, 100.0):
        gd = rows["gd", kappa, "rotated"]
        rho = (kappa - 1) / (kappa + 1)
        assert gd["predicted_steps"] == math.ceil(math.log(1e6) / (2 * math.log(1 / rho)))
        assert gd["steps"] <= gd["predicted_steps"]
        assert gd["learning_rate"] == pytest.approx(2 / (kappa + 1))
    assert rows["heavy_ball", 100.0, "rotated"]["steps"] < rows["gd", 100.0, "rotated"]["steps"]


def test_whitening_gives_kappa_one_and_the_hessian_is_the_formula(quick):
    result, _, _ = quick
    data = {r["features"]: r for r in result["data_remedies"]}
    assert list(data) == ["raw", "centered", "standardized", "whitened"]
    assert data["whitened"]["kappa"] == pytest.approx(1.0, abs=1e-9)
    assert data["whitened"]["gd_steps"] == 1  # α = 1 on H = I: one exact step
    assert data["raw"]["kappa"] > data["centered"]["kappa"] > data["standardized"]["kappa"]
    for row in data.values():
        assert row["hessian_vs_formula"] <= 1e-10
        assert row["kappa"] == pytest.approx(row["lambda_max"] / row["lambda_min"])


def test_architecture_rows_are_consistent(quick):
    result, _, _ = quick
    for row in result["architecture"]:
        assert row["lambda_min"] <= row["lambda_max"]
        if row["lambda_min"] <= 0:  # not a minimum: the lecture's κ is undefined
            assert row["kappa"] == math.inf
        assert row["abs_min_over_max"] == pytest.approx(abs(row["lambda_min"]) / row["lambda_max"])
    phases = {(r["variant"], r["phase"]) for r in result["architecture"]}
    assert ("plain", "init") in phases and ("batchnorm+shortcut", "trained") in phases


def test_verdict_is_printed_and_matches_the_checks(quick):
    result, _, printed = quick
    assert result["verdict"] in printed
    supported = result["verdict"].startswith("VERDICT: SUPPORTED")
    assert supported == all(result["checks"].values())
