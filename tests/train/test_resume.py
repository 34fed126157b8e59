"""Kill a run at any moment (SIGKILL), resume it, and get exactly the uninterrupted result."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from optlab import cli
from optlab.cli._flags import config_from_args
from optlab.train import loop

pytestmark = pytest.mark.slow  # trainer subprocesses killed at several moments

FLAGS = [
    "--dataset", "digits", "--model-arg", "widths=[32]", "--model-arg", "dropout=0.1",
    "--batch-size", "32", "--steps", "60", "--checkpoint-every", "10", "--eval-every", "20",
    "--log-every", "5", "--no-progress",
]  # fmt: skip


def _cfg(out, extra=()):
    args = cli.parser().parse_args(["train", *FLAGS, "--out", str(out), *extra])
    return config_from_args(args)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run."""
    return loop.run(_cfg(tmp_path_factory.mktemp("ref")), progress=False)


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


def _assert_same_as_reference(result, reference, out):
    for got, want in zip(
        jax.tree.leaves(result.state.params), jax.tree.leaves(reference.state.params), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))  # bit for bit
    steps = [r["step"] for r in _train_lines(out)]
    assert steps == sorted(set(steps)), f"duplicated or out-of-order metric lines: {steps}"
    assert steps[-1] == 60


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


def test_sigterm_saves_and_exits_cleanly(tmp_path, reference):
    proc = _start(tmp_path)
    deadline = time.time() + 120
    while len(_train_lines(tmp_path)) < 4 and proc.poll() is None:
        assert time.time() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "SIGTERM: saved step" in stderr or "test_accuracy" not in stderr
    result = loop.run(_cfg(tmp_path), progress=False)
    _assert_same_as_reference(result, reference, tmp_path)
