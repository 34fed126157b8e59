"""Smoke test of experiments/07_loss_vs_metric.py (lecture 03: loss vs metric, SGD vs
adaptive methods) at tiny size, and its window search on hand-made curves."""

import pytest

from tests.experiments.conftest import check_files, read_csv

pytestmark = pytest.mark.slow  # the experiment scripts' smoke runs

NAME = "07_loss_vs_metric"


def _curve(losses, accuracies):
    return [
        {"step": 10 * (i + 1), "val_loss": loss, "val_accuracy": acc}
        for i, (loss, acc) in enumerate(zip(losses, accuracies, strict=True))
    ]


def test_window_search_on_a_known_curve(experiment):
    # (0,3) gains most (+0.2) with Δloss = 0, but its loss dips to 0.8 on the way: not flat.
    # From index 1 the loss only rises: (1,3) gains +0.1 with the loss up 0.2.
    # Consecutive intervals with Δacc > 0 and Δloss >= 0: 1→2 and 2→3.
    w = experiment.loss_flat_accuracy_up(_curve([1.0, 0.8, 0.9, 1.0], [0.5, 0.6, 0.65, 0.7]))
    assert (w["start"], w["end"]) == (20, 40)
    assert w["gain"] == pytest.approx(0.1)
    assert w["loss_rise"] == pytest.approx(0.2)
    assert (w["intervals"], w["of_intervals"]) == (2, 3)


def test_window_search_finds_nothing_when_loss_follows_accuracy(experiment):
    w = experiment.loss_flat_accuracy_up(_curve([1.0, 0.8, 0.6], [0.5, 0.6, 0.7]))
    assert w["start"] is None and w["gain"] == 0.0 and w["intervals"] == 0


def test_matched_loss_takes_the_highest_lowest_loss(experiment):
    runs = {
        "a": {"curve": [{"step": 1, "train_loss": 2.0, "val_accuracy": 0.1},
                        {"step": 2, "train_loss": 0.5, "val_accuracy": 0.4}]},
        "b": {"curve": [{"step": 1, "train_loss": 0.4, "val_accuracy": 0.3},
                        {"step": 2, "train_loss": 0.1, "val_accuracy": 0.6}]},
    }  # fmt: skip
    target, at = experiment.matched_loss(runs)
    assert target == 0.5  # a's lowest; b is below it from its first record
    assert at == {"a": {"step": 2, "val_accuracy": 0.4}, "b": {"step": 1, "val_accuracy": 0.3}}


def test_writes_its_files(quick):
    _, out, _ = quick
    check_files(
        out,
        {"runs.csv", "curves.csv", "comparison.csv", "loss_vs_metric.png", "sgd_vs_adaptive.png"},
    )


def test_csv_holds_the_returned_numbers(quick):
    result, out, _ = quick
    rows = read_csv(out / "comparison.csv")
    assert [r["optimizer"] for r in rows] == [r["optimizer"] for r in result["comparison"]]
    for row, expected in zip(rows, result["comparison"], strict=True):
        for key in ("test_accuracy", "val_accuracy_at_matched_loss", "matched_train_loss"):
            assert float(row[key]) == pytest.approx(expected[key], rel=1e-12, abs=0), key
    runs = read_csv(out / "runs.csv")
    assert len(runs) == len(result["runs"])
    for row, expected in zip(runs, result["runs"], strict=True):
        assert float(row["window_accuracy_gain"]) == expected["window_accuracy_gain"]
        assert float(row["final_val_accuracy"]) == expected["final_val_accuracy"]
    # Every curve in curves.csv is some run's; the last row of each run is its final one.
    curves = read_csv(out / "curves.csv")
    finals = {}
    for row in curves:
        finals[row["optimizer"], row["learning_rate"]] = float(row["val_accuracy"])
    for r in runs:
        assert finals[r["optimizer"], r["learning_rate"]] == float(r["final_val_accuracy"])


def test_verdicts_are_printed_and_follow_the_numbers(quick):
    result, out, printed = quick
    for line in result["verdicts"].values():
        assert line.startswith("VERDICT: ") and line in printed
    rows = {r["optimizer"]: r for r in read_csv(out / "comparison.csv")}
    sgd = rows.pop("momentum")
    ahead = all(
        float(sgd["test_accuracy"]) > float(r["test_accuracy"])
        and float(sgd["val_accuracy_at_matched_loss"]) > float(r["val_accuracy_at_matched_loss"])
        for r in rows.values()
    )
    assert result["verdicts"]["sgd_vs_adaptive"].startswith("VERDICT: SUPPORTED") == ahead
    gain = max(float(r["window_accuracy_gain"]) for r in read_csv(out / "runs.csv"))
    assert result["verdicts"]["loss_vs_metric"].startswith("VERDICT: SUPPORTED") == (gain >= 0.02)
