"""``optlab lr-find`` and ``optlab sweep``: tables, files, and one-line errors."""

import csv
import os

import pytest

from optlab.cli import main

TINY = ["--model-arg", "widths=[8]", "--batch-size", "32"]


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_lr_find_prints_the_suggestion_and_writes_csv_and_png(tmp_path, capsys):
    out = tmp_path / "lr"
    argv = ["lr-find", *TINY, "--optimizer", "sgd", "--steps", "40", "--max-lr", "100"]
    assert main([*argv, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    line = next(x for x in text.splitlines() if x.startswith("suggested learning rate: "))
    suggestion = float(line.split()[3])
    rows = read_csv(out / "lr_find.csv")
    assert 2 <= len(rows) <= 40 and float(rows[0]["learning_rate"]) == pytest.approx(1e-7)
    smooth = [float(r["smoothed_loss"]) for r in rows]
    best_rate = float(rows[smooth.index(min(smooth))]["learning_rate"])
    assert suggestion == pytest.approx(best_rate / 10, rel=5e-3)  # printed to 3 digits
    assert (out / "lr_find.png").read_bytes()[:4] == b"\x89PNG"


def test_the_issue_example_sweeps_lecture_03s_coarse_grid(tmp_path, capsys):
    rates = "0.1,0.05,0.03,0.01,0.003,0.001,0.0005,0.0001"
    # the issue's command on the default digits MLP, shortened to one epoch for the suite
    assert main(["sweep", "--learning-rate", rates, "--epochs", "1", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out.splitlines()
    rows = read_csv(tmp_path / "sweep.csv")
    assert [float(r["learning_rate"]) for r in rows] == [float(v) for v in rates.split(",")]
    best = max(rows, key=lambda r: float(r["val_accuracy"]))
    marked = [x for x in text if x.startswith("* ")]
    assert marked[0].split()[1] == best["learning_rate"]
    assert float(best["val_accuracy"]) > 0.8  # one epoch of the right rate already learns
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert len(read_csv(tmp_path / "sweep_summary.csv")) == 8


def test_sweep_seeds_folds_and_refine(tmp_path, capsys):
    argv = ["sweep", *TINY, "--optimizer", "momentum", "--learning-rate", "0.3,0.03"]
    argv += ["--momentum", "0.9", "--seeds", "2", "--folds", "2", "--steps", "4", "--refine"]
    assert main([*argv, "--refine-points", "3", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "refined grid around the best: learning_rate:" in text
    rows = read_csv(tmp_path / "sweep.csv")
    assert len(rows) == 2 * 2 * 2  # rates × seeds × folds
    assert {(r["seed"], r["fold"]) for r in rows} == {(s, f) for s in "01" for f in "01"}
    assert "mu" not in rows[0]  # a single --momentum value sets the base run, not the grid
    summary = read_csv(tmp_path / "sweep_summary.csv")
    assert [r["runs"] for r in summary] == ["4", "4"] and "val_accuracy_std" in summary[0]
    fine = read_csv(tmp_path / "sweep_refined_summary.csv")
    assert len(fine) == 3
    best = max(summary, key=lambda r: float(r["val_accuracy"]))["learning_rate"]
    values = sorted(float(r["learning_rate"]) for r in fine)
    assert values[0] < float(best) < values[-1] and float(best) in values


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sweep", "--learning-rate", "0.1,abc"], "--learning-rate: expected numbers"),
        (["sweep", "--grid", "b3=0.9,0.99"], "'b3' is not a numeric hyper-parameter"),
        (["sweep", "--momentum", "0.9,0.99"], "Adam's β1 is b1"),
        (["sweep", "--seeds", "0"], "--seeds"),
        (["sweep", "--folds", "1"], "--folds"),
        (["lr-find", "--min-lr", "0"], "`min_lr`"),
        (["lr-find", "--max-lr", "1e-9"], "`max_lr`"),
        (["sweep", "--host-devices", "0"], "--host-devices must be >= 1"),
        # the test session's CPU backend already runs 8 devices: too late to split it in two
        (
            ["sweep", "--host-devices", "2"],
            "set XLA_FLAGS=--xla_force_host_platform_device_count=2",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, capsys, monkeypatch):
    # --host-devices rewrites XLA_FLAGS: restored after the test for later subprocesses
    monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))
    assert main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("optlab: error: ") and message in err
    assert len(err.strip().splitlines()) == 1, err


def test_one_cpu_device_hints_at_host_devices(capsys, monkeypatch):
    from optlab.cli.sweep import _hint_host_devices

    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    _hint_host_devices(1)
    assert "--host-devices 4 spreads the runs over 4 cores" in capsys.readouterr().out
    _hint_host_devices(8)  # already spread over several devices: nothing to say
    assert capsys.readouterr().out == ""
