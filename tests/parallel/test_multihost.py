"""Several processes on loopback (jax.distributed, gloo CPU collectives) reproduce the
single-process run on the same global device count (two processes of two devices, four of
one); a missing peer is a clear error.

Every run is a subprocess with its own device count (``local_env``: the children would
inherit this session's 8 devices otherwise) under a wall-clock timeout.
"""

import json
import pathlib
import subprocess
import sys
import time

import numpy as np
import pytest

from optlab.parallel._distributed import DistributedError, launch_local, local_env

pytestmark = pytest.mark.slow  # several processes

HERE = pathlib.Path(__file__).parent
RUN = [
    "--dataset",
    "digits",
    "--model-arg",
    "widths=[16]",
    "--batch-size",
    "32",
    "--steps",
    "20",
    "--mesh",
    "data=4",
    "--no-progress",
]
# float32 with the gradient all-reduce split differently (gloo across processes vs in-process):
# the parameters agree to a few ulps; observed max abs difference ~3e-8.
RTOL, ATOL = 1e-5, 1e-6


def _params(run_dir: pathlib.Path, tmp: pathlib.Path) -> dict:
    """The newest checkpoint's parameters, restored in a 4-device subprocess."""
    out = tmp / f"{run_dir.name}.npz"
    subprocess.run(
        [sys.executable, str(HERE / "_dump_params.py"), str(run_dir), str(out)],
        env=local_env(4),
        check=True,
        timeout=60,
        capture_output=True,
    )
    with np.load(out) as data:
        return dict(data)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multihost")
    single = tmp / "single"
    subprocess.run(
        [sys.executable, "-m", "optlab", "train", *RUN, "--out", str(single)],
        env=local_env(4),
        check=True,
        timeout=120,
        capture_output=True,
    )
    multi = tmp / "multi"
    logs = launch_local(
        2,
        [*RUN, "--out", str(multi)],
        devices_per_process=2,
        timeout=120,
        init_timeout=30,
        log_dir=str(tmp / "logs"),
    )
    return tmp, single, multi, logs


def test_two_processes_match_one_process(runs):
    tmp, single, multi, _ = runs
    one = json.loads((single / "summary.json").read_text())
    two = json.loads((multi / "summary.json").read_text())
    assert two["devices"] == one["devices"] == 4
    assert two["mesh"] == one["mesh"] == {"data": 4}
    assert two["steps"] == one["steps"] == 20
    assert two["test_accuracy"] == one["test_accuracy"]
    assert two["val_accuracy"] == one["val_accuracy"]
    np.testing.assert_allclose(two["test_loss"], one["test_loss"], rtol=RTOL)
    np.testing.assert_allclose(two["train_loss"], one["train_loss"], rtol=RTOL)
    p1, p2 = _params(single, tmp), _params(multi, tmp)
    assert sorted(p1) == sorted(p2) and int(p1["__step__"]) == int(p2["__step__"]) == 20
    for key in p1:
        np.testing.assert_allclose(p2[key], p1[key], rtol=RTOL, atol=ATOL, err_msg=key)


def test_only_process_zero_writes_logs(runs):
    _, single, multi, logs = runs
    lines = (multi / "metrics.jsonl").read_text().splitlines()
    single_lines = (single / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len(single_lines)  # not doubled by process 1
    steps = [json.loads(line)["step"] for line in lines]
    assert steps == [json.loads(line)["step"] for line in single_lines]
    assert (multi / "summary.json").exists() and (multi / "config.json").exists()
    assert "test_accuracy" in pathlib.Path(logs[0]).read_text()  # process 0 printed the table


def test_missing_peer_is_a_clear_error_within_the_timeout(tmp_path):
    start = time.monotonic()
    with pytest.raises(DistributedError) as err:
        launch_local(
            2,
            [*RUN, "--out", str(tmp_path / "run")],
            devices_per_process=2,
            timeout=60,
            init_timeout=5,
            process_ids=[0],  # process 1 never starts
        )
    elapsed = time.monotonic() - start
    message = str(err.value)
    assert "process 0 of 2" in message and "\n" not in message
    assert "--init-timeout 5 s" in message and "SIGABRT" in message
    assert elapsed < 40, elapsed  # JAX waits about twice the init timeout, then aborts


def test_launcher_timeout_stops_the_processes(tmp_path):
    # Both processes start, but the whole run may take only 1 s: the launcher stops them.
    start = time.monotonic()
    with pytest.raises(DistributedError, match="did not finish within 1 s"):
        launch_local(
            2,
            [*RUN, "--out", str(tmp_path / "run")],
            devices_per_process=2,
            timeout=1,
            init_timeout=30,
        )
    assert time.monotonic() - start < 15


def test_cli_local_processes_reports_a_missing_flag_combination(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "optlab",
            "train",
            "--steps",
            "1",
            "--num-processes",
            "2",
            "--out",
            str(tmp_path / "run"),
        ],
        env=local_env(1),
        timeout=60,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "--coordinator (JAX_COORDINATOR_ADDRESS)" in proc.stderr


def test_four_processes_match_one_process_and_gather_every_score(tmp_path):
    # Four processes of one device each against one process of four devices. The binary
    # task's per-example positive scores are batch-sharded, so no process sees them all: the
    # ROC AUC must come from every process's (score, label) pairs. (Four processes, not two,
    # here: each process's share is one device's, the finest split; it costs ~13 CPU-seconds
    # more than two processes of two devices, measured.)
    args = ["--dataset", "synthetic_logistic", "--batch-size", "32", "--steps", "10"]
    args += ["--mesh", "data=4", "--no-progress"]
    subprocess.run(
        [sys.executable, "-m", "optlab", "train", *args, "--out", str(tmp_path / "one")],
        env=local_env(4),
        check=True,
        timeout=120,
        capture_output=True,
    )
    launch_local(4, [*args, "--out", str(tmp_path / "four")], devices_per_process=1, timeout=120)
    one = json.loads((tmp_path / "one" / "summary.json").read_text())
    four = json.loads((tmp_path / "four" / "summary.json").read_text())
    assert four["devices"] == one["devices"] == 4 and four["steps"] == one["steps"] == 10
    assert four["test_accuracy"] == one["test_accuracy"]
    for key in ("test_loss", "val_loss", "train_loss"):
        np.testing.assert_allclose(four[key], one[key], rtol=RTOL)
    for key in ("test_roc_auc", "val_roc_auc"):
        assert np.isfinite(one[key])
        np.testing.assert_allclose(four[key], one[key], rtol=1e-6)
