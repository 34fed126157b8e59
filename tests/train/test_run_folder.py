"""The run folder under careless use: where --out may point, which run a folder holds (its
config, its data, its checkpoints' identity), damaged files beside the checkpoints, and the
records a run writes (strict JSON; the summary of a finished run kept as it was)."""

import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

from optlab import cli
from optlab.cli._flags import config_from_args
from optlab.data import load_dataset
from optlab.train import loop
from optlab.train.hooks import NonFiniteError

TINY = ["--dataset", "digits", "--model-arg", "widths=[16]", "--batch-size", "64",
        "--no-progress", "--steps", "6", "--checkpoint-every", "3", "--log-every", "2"]  # fmt: skip


def _cfg(out, *extra):
    return config_from_args(cli.parser().parse_args(["train", *TINY, "--out", str(out), *extra]))


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("optlab: error:"), err
    return err[0]


def _strict_load(text: str):
    """json.loads that refuses the non-standard NaN/Infinity tokens."""

    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("where", ["empty", "a_file", "below_a_file"])
def test_out_that_cannot_be_a_folder_is_one_line_and_nothing_written(tmp_path, capsys, where):
    (tmp_path / "f").write_text("x")
    out = {"empty": "", "a_file": str(tmp_path / "f"), "below_a_file": str(tmp_path / "f/run")}
    before = sorted(tmp_path.rglob("*"))
    assert cli.main(["train", *TINY, "--out", out[where]]) == 2
    assert "--out" in _one_error_line(capsys)
    assert sorted(tmp_path.rglob("*")) == before
    assert (tmp_path / "f").read_text() == "x"


def _mount(path: pathlib.Path, options: str) -> bool:
    path.mkdir(exist_ok=True)
    return (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True
        ).returncode
        == 0
    )


def test_out_on_a_read_only_filesystem_is_one_line(tmp_path, capsys, monkeypatch):
    ro = tmp_path / "ro"
    mounted = _mount(ro, "size=1m,ro")
    try:
        if not mounted:  # not root, or no tmpfs: the same refusal from an injected EROFS
            print("read-only --out: injected (os.access reports a read-only folder)")
            ro.mkdir(exist_ok=True)
            monkeypatch.setattr(os, "access", lambda *a, **k: False)
        else:
            print("read-only --out: a real read-only tmpfs")
        assert cli.main(["train", *TINY, "--out", str(ro / "run")]) == 2
        line = _one_error_line(capsys)
        assert "cannot write to" in line and str(ro) in line
        if mounted:
            assert "Read-only file system" in line
    finally:
        if mounted:
            subprocess.run(["umount", str(ro)], check=True)


@pytest.mark.slow  # several trainer runs into one folder
def test_resume_on_other_data_is_refused(tmp_path):
    cfg = _cfg(tmp_path, "--dataset", "spirals")
    loop.run(cfg, dataset=load_dataset("spirals", seed=1), progress=False)
    with pytest.raises(cli.ConfigError, match="the data"):
        loop.run(_cfg(tmp_path, "--dataset", "spirals", "--steps", "9"),
                 dataset=load_dataset("spirals", seed=2), progress=False)  # fmt: skip
    # the same data resumes (and extends)
    result = loop.run(_cfg(tmp_path, "--dataset", "spirals", "--steps", "9"),
                      dataset=load_dataset("spirals", seed=1), progress=False)  # fmt: skip
    assert result.summary["steps"] == 9


@pytest.mark.slow  # several trainer runs into one folder
@pytest.mark.parametrize("damage", ["deleted", "garbage", "not_utf8"])
def test_a_lost_config_json_is_no_license_for_another_run(tmp_path, capsys, damage):
    loop.run(_cfg(tmp_path), progress=False)
    path = tmp_path / "config.json"
    {"deleted": path.unlink, "garbage": lambda: path.write_text("{not json"),
     "not_utf8": lambda: path.write_bytes(b"\xff\xfe{")}[damage]()  # fmt: skip
    with pytest.raises(cli.ConfigError, match="holds a different run"):
        loop.run(_cfg(tmp_path, "--optimizer", "sgd"), progress=False)
    # the same run continues: the checkpoints vouch for it, and config.json is rewritten
    result = loop.run(_cfg(tmp_path, "--steps", "9"), progress=False)
    assert result.summary["steps"] == 9
    assert "identity matches" in capsys.readouterr().err
    assert json.loads(path.read_text())["optimizer"]["optimizer"] == "adam"


@pytest.mark.slow  # several trainer runs into one folder
def test_a_run_that_never_checkpointed_is_not_protected(tmp_path):
    loop.run(_cfg(tmp_path), progress=False)
    for step in (tmp_path / "checkpoints").iterdir():  # as if it crashed before any save
        subprocess.run(["rm", "-rf", str(step)], check=True)
    result = loop.run(_cfg(tmp_path, "--optimizer", "sgd"), progress=False)
    assert result.summary["steps"] == 6
    assert json.loads((tmp_path / "config.json").read_text())["optimizer"]["optimizer"] == "sgd"


def test_metrics_log_that_is_a_folder_is_one_line(tmp_path, capsys):
    (tmp_path / "metrics.jsonl").mkdir(parents=True)
    assert cli.main(["train", *TINY, "--out", str(tmp_path)]) == 2
    assert "metrics.jsonl" in _one_error_line(capsys)


def test_metrics_log_with_invalid_bytes_keeps_every_valid_record(tmp_path):
    loop.run(_cfg(tmp_path), progress=False)
    log = tmp_path / "metrics.jsonl"
    want = log.read_bytes().splitlines()
    damaged = [want[0], b"\xff\xfe garbage \x00", *want[1:], b'{"step": 2, half']
    log.write_bytes(b"\n".join(damaged))
    loop.run(_cfg(tmp_path), progress=False)  # the finished run, run again
    assert log.read_bytes().splitlines() == want


def test_records_are_strict_json_with_the_reason_for_each_null(tmp_path):
    with pytest.raises(NonFiniteError):  # every step non-finite: the skip rule stops it
        loop.run(_cfg(tmp_path, "--optimizer", "sgd", "--learning-rate", "1e30",
                      "--nonfinite", "skip"), progress=False)  # fmt: skip
    records = [_strict_load(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if "train_loss" in r]
    assert train and all(r["train_loss"] is None for r in train)
    assert all("train_loss" in r["nonfinite"] for r in train)


def test_final_metrics_that_are_not_finite_are_no_result(tmp_path):
    ds = load_dataset("spirals", seed=1)
    ds.x_test[0] = np.nan  # one bad test row: the test loss is NaN
    with pytest.raises(NonFiniteError, match="test_loss"):
        loop.run(_cfg(tmp_path, "--dataset", "spirals"), dataset=ds, progress=False)
    summary = _strict_load((tmp_path / "summary.json").read_text())
    assert summary["test_loss"] is None and "test_loss" in summary["nonfinite"]


def test_a_run_that_skips_most_steps_stops(tmp_path):
    with pytest.raises(NonFiniteError, match=r"skipped \d+ of the last"):
        loop.run(_cfg(tmp_path, "--optimizer", "sgd", "--learning-rate", "1e30",
                      "--nonfinite", "skip"), progress=False)  # fmt: skip


def test_a_finished_run_run_again_keeps_its_summary(tmp_path):
    loop.run(_cfg(tmp_path), progress=False)
    first = (tmp_path / "summary.json").read_text()
    again = loop.run(_cfg(tmp_path), progress=False)
    assert (tmp_path / "summary.json").read_text() == first
    assert again.summary["train_loss"] == json.loads(first)["train_loss"] is not None


@pytest.mark.slow  # several trainer runs into one folder
def test_a_run_killed_before_its_summary_summarizes_as_the_uninterrupted(tmp_path):
    want = loop.run(_cfg(tmp_path), progress=False).summary
    (tmp_path / "summary.json").unlink()  # killed after the last checkpoint
    got = loop.run(_cfg(tmp_path), progress=False).summary
    for key in ("train_loss", "train_accuracy", "test_loss", "val_loss", "steps"):
        assert got[key] == want[key], key
