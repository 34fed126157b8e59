"""Smoke test of experiments/01_optimizer_comparison.py at --quick size: the files it
writes, and its CSV numbers against the dict it returns and the verdicts it prints."""

import math

import pytest
from PIL import Image

from tests.experiments.conftest import read_csv

pytestmark = pytest.mark.slow  # the experiment scripts' smoke runs

NAME = "01_optimizer_comparison"


def _steps(cell: str) -> float:
    return math.inf if cell == "" else int(cell)


def test_quick_run_writes_consistent_files(quick):
    result, out, printed = quick

    for name in result["files"]:
        if name.endswith(".csv"):
            continue
        with Image.open(name) as image:  # a valid image, animated if a GIF
            assert image.format == name.rsplit(".", 1)[1].upper() and image.size[0] > 100
            assert image.format == "PNG" or image.n_frames > 1
    names = {p.name for p in out.iterdir()}
    assert {"surfaces.csv", "mnist1d.csv", "mnist1d_loss.png"} <= names
    assert {"trajectories_elongated_bowl.png", "trajectories_elongated_bowl.gif"} <= names

    # surfaces.csv == the returned numbers, row by row
    rows = read_csv(out / "surfaces.csv")
    assert len(rows) == sum(len(table) for table in result["surfaces"].values())
    for row in rows:
        expected = result["surfaces"][row["surface"]][row["optimizer"]]
        assert _steps(row["steps_to_target"]) == (
            math.inf if expected["steps_to_target"] is None else expected["steps_to_target"]
        )
        assert float(row["final_gap"]) == expected["final_gap"]
        assert float(row["final_gap"]) >= 0.0 or math.isnan(float(row["final_gap"]))
    bowl = {r["optimizer"]: r for r in rows if r["surface"] == "elongated_bowl"}
    gd = _steps(bowl["sgd"]["steps_to_target"])
    momentum_wins = all(
        _steps(bowl[n]["steps_to_target"]) < gd for n in ("heavy_ball", "nesterov") if n in bowl
    )
    assert result["claims"]["momentum_on_bowl"] == momentum_wins
    assert bowl["lbfgs"]["learning_rate"] == "line search"

    # mnist1d.csv: one row per rate; the rows marked best are the returned ones
    rows = read_csv(out / "mnist1d.csv")
    best = {r["optimizer"]: r for r in rows if r["best"] == "True"}
    assert set(best) == set(result["mnist1d"]["best"])
    for name, row in best.items():
        returned = result["mnist1d"]["best"][name]
        assert float(row["final_train_loss"]) == returned["final_train_loss"]
        assert 0.0 <= float(row["test_accuracy"]) <= 1.0
        # no other rate of the same optimizer reached the target earlier
        others = [_steps(r["steps_to_target"]) for r in rows if r["optimizer"] == name]
        assert _steps(row["steps_to_target"]) == min(others)
    sgd, adam = (_steps(best[n]["steps_to_target"]) for n in ("sgd", "adam"))
    assert result["claims"]["adaptive_on_mnist1d"] == (adam < sgd)
    for line, holds in zip(result["verdicts"], result["claims"].values(), strict=True):
        assert line.startswith("VERDICT: SUPPORTED" if holds else "VERDICT: NOT SUPPORTED")
        assert line in printed
