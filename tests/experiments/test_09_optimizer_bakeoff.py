"""Smoke test of experiments/09_optimizer_bakeoff.py at --quick size, and its table and
verdicts on planted numbers: the verdicts follow the numbers, every registered optimizer
gets a row, one that cannot run gets its reason."""

import math

import numpy as np
import pytest

import optlab
from tests.experiments.conftest import check_files, read_csv

pytestmark = pytest.mark.slow  # the experiment scripts' smoke runs

NAME = "09_optimizer_bakeoff"
FILES = {
    "table.md",
    "results.csv",
    "tuning.csv",
    "curves.csv",
    "val_loss_vs_steps.png",
    "val_loss_vs_seconds.png",
    "tuning.png",
}


def _row(name, mean, std, steps=None, seconds=None, status="ok"):
    return {
        "optimizer": name,
        "status": status,
        "reason": "" if status == "ok" else "planted",
        "learning_rate": 1e-3,
        "at_grid_edge": False,
        "tuned_by": "sweep",
        "seeds": 3,
        "final_mean": mean,
        "final_std": std,
        "best_mean": mean,
        "best_std": std,
        "step_ms": 1.0,
        "reached": 3 if steps is not None else 0,
        "steps_to_target": steps,
        "seconds_to_target": seconds,
    }


def _table_names(table: str) -> list[str]:
    return [line.split("|")[2].strip() for line in table.splitlines()[2:] if line.startswith("| ")]


def test_verdicts_are_computed_from_the_numbers(experiment, capsys):
    rows = [
        _row("a", 0.30, 0.01, steps=400, seconds=9.0),
        _row("b", 0.31, 0.01, steps=300, seconds=12.0),
        _row("c", 0.50, 0.01, steps=None),
        _row("adam", 0.60, 0.01, steps=500, seconds=3.0),
        _row("d", math.nan, math.nan, status="diverged"),  # never the winner
    ]
    v = experiment.verdicts(rows)
    assert (v["winner"], v["ties"]) == ("a", ["b"])  # 0.01 ≤ 2·√2·0.01; 0.20 is not
    assert (v["fastest_steps"], v["fastest_seconds"]) == ("b", "adam")
    assert not v["reference_ties"] and v["lines"][-1].startswith("VERDICT: NOT SUPPORTED")
    printed = capsys.readouterr().out
    assert all(line in printed for line in v["lines"])

    # plant other numbers: the verdicts move with them
    rows[1]["final_mean"] = 0.29  # b now wins, a is within noise of it
    rows[3]["final_std"] = 0.2  # adam's spread now covers the gap
    rows[0]["steps_to_target"] = 100
    v = experiment.verdicts(rows)
    assert (v["winner"], v["ties"]) == ("b", ["a", "adam"])
    assert v["fastest_steps"] == "a" and v["reference_ties"]
    assert v["lines"][-1].startswith("VERDICT: SUPPORTED")
    assert "lowest mean final validation loss: b" in v["lines"][0]
    capsys.readouterr()


def test_target_and_steps_to_it_come_from_the_curves(experiment):
    rows = [_row("a", 0.3, 0.0), _row("b", 0.5, 0.0), _row("c", 0.9, 0.0), _row("x", 0.1, 0.0)]
    rows[3]["status"] = "failed"  # not counted in the median
    assert experiment.target_loss(rows) == pytest.approx(0.5)
    curve = [(0, 0.0, 2.3), (50, 1.0, 0.7), (100, 2.0, 0.45), (150, 3.0, 0.5)]
    assert experiment.reach(curve, 0.5) == (100, 2.0)
    assert experiment.reach(curve, 0.4) is None
    slow = [(0, 0.0, 2.3), (50, 1.5, 0.6), (100, 3.0, 0.49)]
    row = experiment.with_target(rows[0], [{"curve": curve}, {"curve": slow}], 0.5)
    assert (row["steps_to_target"], row["seconds_to_target"], row["reached"]) == (100, 2.5, 2)
    row = experiment.with_target(rows[0], [{"curve": curve}, {"curve": slow}], 0.46)
    assert row["steps_to_target"] is None and row["reached"] == 1  # one seed short: no mean


def test_every_registered_optimizer_gets_a_row(experiment):
    names = tuple(optlab.OPTIMIZERS)
    _, _, chosen = experiment.parse([])
    assert chosen == names  # the default run iterates the whole registry
    rows = [_row(n, 0.3 + 0.01 * i, 0.01) for i, n in enumerate(names[:-1])]
    rows.append(experiment.failed_row(names[-1], "cannot run here: planted"))
    table = experiment.markdown_table(rows, 0.35)
    assert sorted(_table_names(table)) == sorted(names)
    assert f"| {names[-1]} | — |" in table and "failed: cannot run here: planted" in table
    assert _table_names(table)[:3] == list(names[:3])  # ranked by mean final loss


def test_tune_falls_back_to_the_trainer_then_records_why(experiment, monkeypatch):
    budget = experiment.BUDGETS["quick"]
    workload = experiment.WORKLOADS["mnist1d_cnn"]

    def broken_sweep(*args, **kwargs):
        raise ValueError("planted sweep failure")

    losses = {1e-3: 0.9, 1e-2: 0.4}
    monkeypatch.setattr(experiment, "sweep", broken_sweep)
    monkeypatch.setattr(
        experiment,
        "train_run",
        lambda w, n, rate, *a, **k: {"curve": [(8, 0.1, losses[rate])], "diverged_at": None},
    )
    rate, rows = experiment.tune(workload, "sgd", budget, None, True)
    assert rate == 1e-2 and {r["tuned_by"] for r in rows} == {"loop"}
    assert "planted sweep failure" in rows[0]["note"]

    def broken_run(*args, **kwargs):
        raise RuntimeError("planted trainer failure")

    monkeypatch.setattr(experiment, "train_run", broken_run)
    with pytest.raises(experiment.Unrunnable, match=r"sweep failure.*planted trainer failure"):
        experiment.tune(workload, "sgd", budget, None, True)

    monkeypatch.setattr(  # every rate diverged
        experiment,
        "train_run",
        lambda *a, **k: {"curve": [(8, 0.1, math.nan)], "diverged_at": 3},
    )
    with pytest.raises(experiment.Unrunnable, match="every rate of the grid diverged"):
        experiment.tune(workload, "sgd", budget, None, True)


def test_an_optimizer_that_cannot_run_is_reported_not_skipped(experiment, monkeypatch, tmp_path):
    real = experiment.calibrate

    def calibrate(workload, name, *args):
        if name == "adam":
            raise ValueError("planted: adam cannot run here")
        return real(workload, name, *args)

    monkeypatch.setattr(experiment, "calibrate", calibrate)
    result = experiment.main(["--quick", "--optimizers", "sgd,adam", "--out", str(tmp_path)])
    rows = {r["optimizer"]: r for r in result["rows"]}
    assert set(rows) == {"sgd", "adam"}
    assert rows["adam"]["status"] == "failed" and "planted" in rows["adam"]["reason"]
    assert result["verdicts"]["winner"] == "sgd"
    assert "planted: adam cannot run here" in (tmp_path / "table.md").read_text()


def test_quick_run_writes_consistent_files(quick, experiment):
    result, out, printed = quick
    check_files(out, FILES)
    rows = read_csv(out / "results.csv")
    assert [r["optimizer"] for r in rows] == list(experiment.QUICK_OPTIMIZERS)
    tuning = read_csv(out / "tuning.csv")
    grid = experiment.BUDGETS["quick"].grid
    assert len(tuning) == len(grid) * len(rows)
    curves = read_csv(out / "curves.csv")
    for row, returned in zip(rows, result["rows"], strict=True):
        name = row["optimizer"]
        assert row["status"] == "ok" and float(row["final_mean"]) == returned["final_mean"]
        # the tuned rate is the lowest final validation loss of the grid
        tried = [r for r in tuning if r["optimizer"] == name]
        assert float(row["learning_rate"]) == float(
            min(tried, key=lambda r: float(r["val_loss"]))["learning_rate"]
        )
        # the final loss is the mean of the seeds' last measured points
        finals = [
            float(c["val_loss"])
            for c in curves
            if c["optimizer"] == name and int(c["step"]) == experiment.BUDGETS["quick"].steps
        ]
        assert len(finals) == experiment.BUDGETS["quick"].seeds
        assert float(row["final_mean"]) == pytest.approx(np.mean(finals), rel=1e-12)
    finals = [r["final_mean"] for r in result["rows"]]
    assert result["target"] == pytest.approx(np.median(finals))
    assert (
        result["verdicts"]["winner"]
        == min(result["rows"], key=lambda r: r["final_mean"])["optimizer"]
    )
    table = (out / "table.md").read_text()
    assert all(line in printed and line in table for line in result["verdicts"]["lines"])
    assert "estimated time" in printed and "budget:" in printed
