"""Smoke test of experiments/03_batch_size.py at --quick size: the files it writes, its CSV
numbers against the dict it returns, the runs' lengths and rates, and the verdicts."""

import math

import pytest

from optlab.data import load_dataset
from tests.experiments.conftest import check_files, read_csv

pytestmark = pytest.mark.slow  # the experiment scripts' smoke runs

NAME = "03_batch_size"
SIZES = (32, 128)  # --quick's batch sizes; the reference batch is 128, α = 0.1
EPOCHS = 2


@pytest.fixture(scope="module")
def n_train():
    return len(load_dataset("mnist1d", num_samples=500).x_train)  # --quick's data


def test_files_and_summary_match_the_returned_numbers(quick, n_train):
    result, out, _ = quick
    check_files(out, {"curves.csv", "summary.csv", "batch_size.png"})

    rows = {r["run"]: r for r in read_csv(out / "summary.csv")}
    names = {f"{rule}_B{b}" for rule in ("fixed", "scaled") for b in SIZES} | {"growing"}
    assert set(rows) == names == set(result["runs"])
    for name, row in rows.items():
        for key, value in result["runs"][name].items():
            assert row[key] == str(value), (name, key)
    for b in SIZES:
        fixed, scaled = result["runs"][f"fixed_B{b}"], result["runs"][f"scaled_B{b}"]
        assert fixed["steps"] == scaled["steps"] == EPOCHS * math.ceil(n_train / b)
        assert fixed["learning_rate"] == 0.1
        assert scaled["learning_rate"] == pytest.approx(0.1 * b / 128, rel=1e-12)
    # at the reference batch both rules are one and the same run
    same = ("final_train_loss", "test_accuracy", "steps")
    assert [result["runs"]["scaled_B128"][k] for k in same] == [
        result["runs"]["fixed_B128"][k] for k in same
    ]


def test_growing_batch_covers_the_epochs_in_phases(quick, n_train):
    result, out, _ = quick
    schedule = result["growth_schedule"]
    assert [size for _, size in schedule] == list(SIZES)
    starts = [step for step, _ in schedule] + [result["runs"]["growing"]["steps"]]
    assert starts[0] == 0
    for (start, size), end in zip(schedule, starts[1:], strict=True):
        examples = (end - start) * size  # each phase: its share of the epochs, ± one batch
        assert abs(examples - EPOCHS * n_train / len(SIZES)) <= size
    curve = [r for r in read_csv(out / "curves.csv") if r["run"] == "growing"]
    assert {int(r["batch_size"]) for r in curve} == set(SIZES)
    assert int(curve[-1]["steps"]) == result["runs"]["growing"]["steps"]
    assert float(curve[-1]["epoch"]) == pytest.approx(EPOCHS, abs=max(SIZES) / n_train)


def test_verdicts_follow_from_the_csv_numbers(quick):
    result, out, _ = quick
    rows = {r["run"]: r for r in read_csv(out / "summary.csv")}
    fixed = {b: float(rows[f"fixed_B{b}"]["final_train_loss"]) for b in SIZES}
    scaled = {b: float(rows[f"scaled_B{b}"]["final_train_loss"]) for b in SIZES}
    spreads = {
        "fixed": max(fixed.values()) / min(fixed.values()),
        "scaled": max(scaled.values()) / min(scaled.values()),
    }
    assert result["spread"] == pytest.approx(spreads, rel=1e-12)
    curves = read_csv(out / "curves.csv")
    small = [r for r in curves if r["run"] == f"fixed_B{SIZES[0]}"]
    growing = float(rows["growing"]["final_train_loss"])
    steps = int(rows["growing"]["steps"])
    small_at = [(int(r["steps"]), float(r["train_loss"])) for r in small]
    lower = max(p for p in small_at if p[0] <= steps)  # interpolate between the two points
    upper = min(p for p in small_at if p[0] >= steps)
    if upper[0] == lower[0]:
        small_same_steps = lower[1]
    else:
        w = (steps - lower[0]) / (upper[0] - lower[0])
        small_same_steps = lower[1] + w * (upper[1] - lower[1])
    assert result["growing"]["small_loss_at_growing_steps"] == pytest.approx(small_same_steps)
    expected = {
        "smallest_batch_best": min(fixed, key=fixed.get) == SIZES[0],
        "linear_scaling_closer": spreads["scaled"] < spreads["fixed"],
        "growing_batch_efficient": growing < fixed[SIZES[-1]] and growing < small_same_steps,
    }
    assert result["claims"] == expected
    for line, holds in zip(result["verdicts"], expected.values(), strict=True):
        assert line.startswith("VERDICT: SUPPORTED" if holds else "VERDICT: NOT SUPPORTED")


def test_growth_schedule_and_interpolation_helpers(experiment):
    schedule, total = experiment.growth_schedule((32, 64, 128), epochs=3, n=640)
    assert schedule == [[0, 32], [20, 64], [30, 128]] and total == 35
    curve = [{"steps": 0, "train_loss": 3.0}, {"steps": 10, "train_loss": 1.0}]
    assert experiment.loss_at_steps(curve, 5) == pytest.approx(2.0)
    assert experiment.spread([0.5, 1.0, 2.0]) == 4.0
