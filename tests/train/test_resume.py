"""Kill a run at any moment (SIGKILL), resume it, and get exactly the uninterrupted result:
the same parameters bit for bit and the same metrics.jsonl records (every logged training
loss included, though checkpoints fall between log lines)."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from typing import NamedTuple

import jax
import numpy as np
import pytest

from optlab import cli
from optlab.cli._flags import config_from_args
from optlab.cli.train import PREEMPTED_EXIT
from optlab.train import loop

pytestmark = pytest.mark.slow  # trainer subprocesses killed at several moments

# log lines every 3 steps: most checkpoints (every 10) fall between two of them
FLAGS = [
    "--dataset", "digits", "--model-arg", "widths=[32]", "--model-arg", "dropout=0.1",
    "--batch-size", "32", "--steps", "60", "--checkpoint-every", "10", "--eval-every", "20",
    "--log-every", "3", "--no-progress",
]  # fmt: skip


def _cfg(out, extra=()):
    args = cli.parser().parse_args(["train", *FLAGS, "--out", str(out), *extra])
    return config_from_args(args)


class _Reference(NamedTuple):
    state: object
    summary: dict
    out: pathlib.Path


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run."""
    out = tmp_path_factory.mktemp("ref")
    result = loop.run(_cfg(out), progress=False)
    return _Reference(result.state, result.summary, out)


def _start(out, kill_at_save=0):
    return subprocess.Popen(
        [sys.executable, "-m", "tests.train.runner", str(kill_at_save), "--", *FLAGS,
         "--out", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _train_lines(out):
    path = out / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if '"train_loss"' in line]


def _records(out):
    """metrics.jsonl without the wall-clock field."""
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k != "steps_per_second"} for x in lines]


def _assert_same_as_reference(result, reference, out):
    for got, want in zip(
        jax.tree.leaves(result.state.params), jax.tree.leaves(reference.state.params), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))  # bit for bit
    steps = [r["step"] for r in _train_lines(out)]
    assert steps == sorted(set(steps)), f"duplicated or out-of-order metric lines: {steps}"
    assert steps[-1] == 60
    assert _records(out) == _records(reference.out)  # every logged loss equal, no extra line
    for key in ("train_loss", "test_loss", "val_loss", "test_accuracy"):
        assert result.summary[key] == reference.summary[key], key


def test_killed_during_an_in_flight_async_save(tmp_path, reference):
    proc = _start(tmp_path, kill_at_save=30)
    proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    result = loop.run(_cfg(tmp_path), progress=False)
    _assert_same_as_reference(result, reference, tmp_path)


@pytest.mark.parametrize("lines_before_kill", [0, 3, 9])
def test_killed_at_arbitrary_moments(tmp_path, reference, lines_before_kill):
    # 0: killed while still compiling (no checkpoint yet); 3, 9: mid-run, wherever the
    # polling lands relative to the saves every 10 steps.
    proc = _start(tmp_path)
    deadline = time.time() + 120
    while len(_train_lines(tmp_path)) < lines_before_kill and proc.poll() is None:
        assert time.time() < deadline
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    result = loop.run(_cfg(tmp_path), progress=False)
    _assert_same_as_reference(result, reference, tmp_path)


@pytest.mark.parametrize("seed", range(6))
def test_killed_at_random_moments(tmp_path, reference, seed):
    # A moment drawn per seed: after a random number of log lines (0: still compiling), then
    # a random fraction of a step, so kills land before, during and after saves and writes.
    rng = np.random.default_rng(seed)
    lines, delay = int(rng.integers(0, 20)), float(rng.uniform(0, 0.05))
    proc = _start(tmp_path)
    deadline = time.time() + 120
    while len(_train_lines(tmp_path)) < lines and proc.poll() is None:
        assert time.time() < deadline
        time.sleep(0.005)
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    result = loop.run(_cfg(tmp_path), progress=False)
    _assert_same_as_reference(result, reference, tmp_path)


def test_killed_right_after_a_checkpoint_between_log_lines(tmp_path, reference):
    # Step 10's checkpoint falls between the log lines of steps 9 and 12: the resumed run
    # must log step 12's mean over steps 10-12 as the uninterrupted run does.
    proc = _start(tmp_path, kill_at_save=-10)  # killed once step 10 is on disk
    proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    result = loop.run(_cfg(tmp_path), progress=False)
    _assert_same_as_reference(result, reference, tmp_path)


def test_sigterm_saves_and_exits_as_preempted(tmp_path, reference):
    proc = _start(tmp_path)
    deadline = time.time() + 120
    while len(_train_lines(tmp_path)) < 4 and proc.poll() is None:
        assert time.time() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    # 75 (EX_TEMPFAIL, "try again"): a scheduler tells a preempted run from a finished one
    assert proc.returncode == PREEMPTED_EXIT == 75, stderr
    assert "SIGTERM: saved step" in stderr
    result = loop.run(_cfg(tmp_path), progress=False)
    _assert_same_as_reference(result, reference, tmp_path)
