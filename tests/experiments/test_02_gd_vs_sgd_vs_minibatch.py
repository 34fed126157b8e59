"""Smoke test of experiments/02_gd_vs_sgd_vs_minibatch.py at --quick size: the files it
writes, its CSV numbers against the dict it returns, and the verdicts against the numbers."""

import math

import numpy as np
import pytest

from optlab.data import load_dataset
from tests.experiments.conftest import check_files, read_csv

pytestmark = pytest.mark.slow  # the experiment scripts' smoke runs

NAME = "02_gd_vs_sgd_vs_minibatch"
MODES = ("full", "online", "minibatch")


def test_files_and_summary_match_the_returned_numbers(quick):
    result, out, _ = quick
    check_files(out, {"curves.csv", "summary.csv", "gd_vs_sgd_vs_minibatch.png"})
    assert sorted(result["files"]) == sorted(str(p) for p in out.iterdir())

    rows = {r["mode"]: r for r in read_csv(out / "summary.csv")}
    assert set(rows) == set(MODES) == set(result["modes"])
    n = len(load_dataset("mnist1d", num_samples=500).x_train)  # --quick's data
    expected_steps = {"full": 1, "online": n, "minibatch": math.ceil(n / 32)}
    for mode, row in rows.items():
        returned = result["modes"][mode]
        for key, value in returned.items():
            assert float(row[key]) == value, (mode, key)
        assert returned["steps_per_epoch"] == expected_steps[mode]
        assert 0.0 <= returned["test_accuracy"] <= 1.0
        assert returned["seconds_per_epoch"] > 0


def test_curves_start_from_one_state_and_end_at_the_summary(quick):
    result, out, _ = quick
    rows = read_csv(out / "curves.csv")
    assert len(rows) == len(result["curves"]) == 3 * 3  # 3 modes × (epoch 0 + 2 epochs)
    by_mode = {m: [r for r in rows if r["mode"] == m] for m in MODES}
    # the same initial weights for the three modes: the same loss before training
    assert len({r[0]["train_loss"] for r in by_mode.values()}) == 1
    for mode, curve in by_mode.items():
        spe = result["modes"][mode]["steps_per_epoch"]
        assert [int(r["epoch"]) for r in curve] == [0, 1, 2]
        assert [int(r["steps"]) for r in curve] == [0, spe, 2 * spe]
        wall = [float(r["wall_seconds"]) for r in curve]
        assert wall[0] == 0.0 and wall[1] > 0 and wall[2] > wall[1]
        assert float(curve[-1]["train_loss"]) == result["modes"][mode]["final_train_loss"]


def test_verdicts_follow_from_the_csv_numbers(quick):
    result, out, _ = quick
    rows = {r["mode"]: r for r in read_csv(out / "summary.csv")}
    loss = {m: float(rows[m]["final_train_loss"]) for m in MODES}
    cost = {m: float(rows[m]["seconds_per_epoch"]) for m in MODES}
    noise = {m: float(rows[m]["step_loss_diff_var"]) for m in MODES}
    expected = {
        "minibatch_beats_gd": loss["minibatch"] < loss["full"],
        "minibatch_epoch_cheaper": cost["minibatch"] < 0.5 * cost["online"],
        "online_noisiest": noise["online"] > noise["minibatch"] > noise["full"],
        "full_epoch_cheapest": cost["full"] < cost["minibatch"] < cost["online"],
    }
    assert result["claims"] == expected
    assert len(result["verdicts"]) == len(expected)
    for line, holds in zip(result["verdicts"], expected.values(), strict=True):
        assert line.startswith("VERDICT: SUPPORTED" if holds else "VERDICT: NOT SUPPORTED")


def test_loss_noise_is_the_variance_of_late_step_differences(experiment):
    losses = np.random.default_rng(0).normal(size=40)
    assert experiment.loss_noise(losses) == pytest.approx(np.var(np.diff(losses[20:])), 1e-12)
    assert experiment.loss_noise(np.arange(10.0)) == 0.0  # a straight line: no noise
    assert experiment.loss_noise(np.array([3.0, 1.0])) == 0.0  # one difference
