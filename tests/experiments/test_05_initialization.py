"""Smoke test of experiments/05_initialization.py (lecture 03, initialization) at tiny size."""

import numpy as np
import pytest

from tests.experiments.conftest import check_files, read_csv

pytestmark = pytest.mark.slow  # the experiment scripts' smoke runs

NAME = "05_initialization"


def test_writes_its_files(quick):
    _, out, _ = quick
    check_files(
        out,
        {
            "init_stats.csv",
            "summary.csv",
            "training_curves.csv",
            "init_statistics.png",
            "training.png",
        },
    )


def test_csv_holds_the_returned_numbers(quick):
    result, out, _ = quick
    rows = read_csv(out / "summary.csv")
    assert len(rows) == len(result["summary"]) == 4  # --quick: ReLU × 4 initializations
    for row, expected in zip(rows, result["summary"], strict=True):
        assert (row["activation"], row["init"]) == (expected["activation"], expected["init"])
        for key in ("std_ratio", "unit_spread_init", "unit_spread_trained", "mean_train_loss"):
            assert float(row[key]) == pytest.approx(expected[key], rel=1e-12, abs=0), key
    stats = read_csv(out / "init_stats.csv")
    assert len(stats) == len(result["init_stats"])
    for row, expected in zip(stats, result["init_stats"], strict=True):
        assert float(row["act_std"]) == pytest.approx(expected["act_std"], rel=1e-12, abs=0)


def test_symmetry_and_vanishing_hold_even_at_tiny_size(quick):
    # Structural facts that do not need training: constant init gives identical units
    # (before and after training), N(0, 0.01) shrinks the activations with depth.
    result, _, _ = quick
    assert set(result["checks"]) == {
        "constant_symmetric",
        "normal_vanishes",
        "he_keeps_relu",
        "training_ranks",
    }
    assert result["checks"]["constant_symmetric"]
    assert result["checks"]["normal_vanishes"]
    by = {(r["activation"], r["init"]): r for r in result["summary"]}
    assert by["relu", "constant"]["unit_spread_trained"] <= 1e-5
    assert by["relu", "he"]["unit_spread_trained"] > 0.1


def test_ratio_is_last_over_first_layer_std(quick):
    result, _, _ = quick
    for r in result["summary"]:
        layers = [
            s
            for s in result["init_stats"]
            if (s["activation"], s["init"]) == (r["activation"], r["init"])
        ]
        assert r["std_ratio"] == pytest.approx(layers[-1]["act_std"] / layers[0]["act_std"])


def test_unit_spread_is_zero_only_for_copies(experiment):
    copies = np.tile(np.array([[1.0], [-2.0], [3.0]], np.float32), (1, 5))
    assert float(experiment._unit_spread(copies)) == 0.0
    distinct = np.array([[1.0, -1.0]], np.float32)  # std over units 1, mean |a| 1
    assert float(experiment._unit_spread(distinct)) == pytest.approx(1.0)


def test_verdict_is_printed_and_matches_the_checks(quick):
    result, _, printed = quick
    assert result["verdict"] in printed
    assert result["verdict"].startswith("VERDICT: ")
    supported = result["verdict"].startswith("VERDICT: SUPPORTED")
    assert supported == all(result["checks"].values())
