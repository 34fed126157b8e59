"""One writer per run folder (``optlab.train.lock``): a POSIX record lock on ``OUT/.lock``.

The holder is always a real other process (a POSIX lock never conflicts with its own
process): a ``python -c`` that takes the lock and sleeps. A second ``optlab train --out``
the same folder exits 2 at once with one line naming the holder's PID and touches nothing;
after ``kill -9`` of the holder the folder is free again. A multi-process run locks once and
every process gets the same answer.
"""

import errno
import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from optlab.errors import ConfigError
from optlab.parallel._distributed import free_port, local_env
from optlab.train import lock as lock_lib
from optlab.train.lock import LOCK_FILE, acquire_run_lock

HOLD = textwrap.dedent(
    """
    import pathlib, sys, time
    from optlab.train.lock import acquire_run_lock
    held = acquire_run_lock(pathlib.Path(sys.argv[1]))
    print("held", flush=True)
    time.sleep(600)
    """
)
# Whether another process can take the lock right now (exit 0) or not (exit 1); pure fcntl.
PROBE = textwrap.dedent(
    """
    import fcntl, os, sys
    fd = os.open(sys.argv[1], os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        sys.exit(1)
    """
)


def _read_elsewhere(path: pathlib.Path) -> str:
    return subprocess.run(["cat", str(path)], capture_output=True, text=True, check=True).stdout


def _free_for_others(path: pathlib.Path) -> bool:
    probe = subprocess.run([sys.executable, "-c", PROBE, str(path)], timeout=30)
    return probe.returncode == 0


@pytest.fixture
def holder(tmp_path):
    """A real process holding the lock of ``tmp_path / "run"``; killed at the end."""
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    yield proc, out
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def _listing(folder: pathlib.Path) -> dict:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


def test_the_lock_names_its_holder_and_is_released(tmp_path):
    out = tmp_path / "new" / "run"
    with acquire_run_lock(out) as held:
        assert held.locked and held.path == out / LOCK_FILE
        # Read by another process: opening and closing the file here would drop the lock.
        record = json.loads(_read_elsewhere(out / LOCK_FILE))
        assert record["pid"] == os.getpid() and record["host"] and record["started"]
        assert not _free_for_others(out / LOCK_FILE)
    assert (out / LOCK_FILE).read_text() == ""  # no stale holder named
    assert _free_for_others(out / LOCK_FILE)
    held.release()  # a second release is a no-op
    acquire_run_lock(out).release()  # and the folder can be locked again


def test_a_second_lock_in_the_same_process_is_refused_and_keeps_the_first(tmp_path):
    # POSIX locks never conflict within a process, and closing any descriptor of the file
    # would drop them: the module's own table must refuse, without opening the file.
    out = tmp_path / "run"
    with acquire_run_lock(out):
        with pytest.raises(ConfigError, match=r"in use by this process \(pid \d+\)") as err:
            acquire_run_lock(out)
        assert "\n" not in str(err.value) and "choose another --out" in str(err.value)
        assert not _free_for_others(out / LOCK_FILE)  # the first lock still holds
    assert _free_for_others(out / LOCK_FILE)


@pytest.mark.slow  # a holder process (JAX start-up, ~2 s)
def test_a_folder_held_by_another_process_is_refused_untouched(holder):
    proc, out = holder
    before = _listing(out)
    with pytest.raises(ConfigError) as err:
        acquire_run_lock(out)
    message = str(err.value)
    assert "\n" not in message
    assert f"--out {out} is in use by optlab pid {proc.pid} on host " in message
    assert "(started " in message and "wait for it to finish or choose another --out" in message
    assert _listing(out) == before  # the holder's record is not truncated


def test_the_refusal_names_the_recorded_holder(tmp_path, monkeypatch):
    # The quick tier's version of the test above: the conflict is injected (EAGAIN).
    out = tmp_path / "run"
    out.mkdir()
    record = '{"pid": 4242, "host": "node-7", "started": "2026-01-02T03:04:05+00:00"}\n'
    (out / LOCK_FILE).write_text(record)
    monkeypatch.setattr(lock_lib.fcntl, "lockf", _raise(errno.EAGAIN))
    with pytest.raises(ConfigError) as err:
        acquire_run_lock(out)
    assert str(err.value) == (
        f"--out {out} is in use by optlab pid 4242 on host node-7 (started "
        "2026-01-02T03:04:05+00:00); wait for it to finish or choose another --out"
    )
    assert (out / LOCK_FILE).read_text() == record  # untouched


def test_a_holder_that_has_not_written_its_pid_yet(tmp_path, monkeypatch):
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK_FILE).write_text("")
    monkeypatch.setattr(lock_lib.fcntl, "lockf", _raise(errno.EAGAIN))
    start = time.monotonic()
    with pytest.raises(ConfigError, match=r"another optlab process \(it has not written its PID"):
        acquire_run_lock(out)
    assert 0.4 < time.monotonic() - start < 5  # retried for the record, briefly


def _raise(code: int):
    def fail(*_):
        raise OSError(code, os.strerror(code))

    return fail


@pytest.mark.parametrize("code", [errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS])
def test_a_filesystem_without_locks_warns_and_goes_on(tmp_path, monkeypatch, capsys, code):
    # e.g. NFSv3 without lockd: fcntl fails with ENOLCK (injected here).
    monkeypatch.setattr(lock_lib.fcntl, "lockf", _raise(code))
    with acquire_run_lock(tmp_path / "run") as held:
        assert not held.locked
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("optlab: warning: --out "), err
    assert "supports no file locks" in err[0] and os.strerror(code) in err[0]


def test_an_unexpected_lock_failure_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(lock_lib.fcntl, "lockf", _raise(errno.EIO))
    with pytest.raises(ConfigError, match=r"--out: cannot lock .*\.lock \(Input/output error\)"):
        acquire_run_lock(tmp_path / "run")


def _read_only_folder(tmp_path, monkeypatch, way: str) -> tuple[pathlib.Path, str]:
    """A folder on a read-only tmpfs where this machine allows mounting (root) and ``way``
    asks for it, else an injected ``OSError(EROFS)`` from ``os.open``; returns it and which
    way it ran."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if way == "tmpfs-if-root":
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(folder)],
            capture_output=True,
        )
        if mounted.returncode == 0:
            return folder, "tmpfs"
    real_open = os.open

    def read_only(path, *args, **kwargs):
        if str(path).startswith(str(folder)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(lock_lib.os, "open", read_only)
    return folder, "injected"


@pytest.mark.parametrize("way", ["tmpfs-if-root", "injected"])
def test_a_read_only_folder_is_one_line(tmp_path, monkeypatch, way):
    folder, how = _read_only_folder(tmp_path, monkeypatch, way)
    try:
        with pytest.raises(ConfigError) as err:
            acquire_run_lock(folder)
        print(f"read-only folder: {how}")
        message = str(err.value)
        assert message.startswith(f"--out: cannot create the lock file {folder / LOCK_FILE} (")
        assert "Read-only file system" in message and "\n" not in message
    finally:
        if how == "tmpfs":
            subprocess.run(["umount", str(folder)], check=True)


def test_process_zero_locks_and_broadcasts_its_answer(tmp_path, monkeypatch):
    # Process 1 of 2 never touches the disk: it raises process 0's message.
    sent = []
    monkeypatch.setattr(lock_lib, "_process_index_and_count", lambda: (1, 2))
    monkeypatch.setattr(lock_lib, "_broadcast", lambda m: sent.append(m) or "--out x is in use")
    with pytest.raises(ConfigError, match="--out x is in use"):
        acquire_run_lock(tmp_path / "run")
    assert sent == [""] and not (tmp_path / "run").exists()
    # Process 0 of 2 locks and sends "" (all is well) to the others.
    monkeypatch.setattr(lock_lib, "_process_index_and_count", lambda: (0, 2))
    monkeypatch.setattr(lock_lib, "_broadcast", lambda m: sent.append(m) or m)
    with acquire_run_lock(tmp_path / "run") as held:
        assert held.locked and sent == ["", ""]


@pytest.mark.slow  # three processes
def test_a_second_optlab_train_exits_2_at_once_and_a_killed_holder_frees_the_folder(holder):
    proc, out = holder
    before = _listing(out)
    start = time.monotonic()
    second = subprocess.run(
        [sys.executable, "-m", "optlab", "train", "--steps", "2", "--no-progress", "--out", out],
        env=local_env(1),
        capture_output=True,
        text=True,
        timeout=120,
    )
    took = time.monotonic() - start
    assert second.returncode == 2, second.stderr
    err = second.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("optlab: error: --out "), err
    assert f"in use by optlab pid {proc.pid} on host " in err[0]
    assert _listing(out) == before  # no config.json, metrics.jsonl or checkpoints/
    assert took < 60, took  # no wait for the holder (a JAX start-up, nothing more)
    proc.send_signal(signal.SIGKILL)  # dies holding the lock: the OS drops it
    proc.wait(timeout=10)
    assert _free_for_others(out / LOCK_FILE)
    with acquire_run_lock(out) as held:
        assert held.locked
    print(f"the refused run took {took:.1f} s (JAX start-up included)")


@pytest.mark.slow  # two optlab train processes on one fresh folder
def test_two_runs_on_one_fresh_folder_one_trains_the_other_is_refused(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "optlab", "train", "--dataset", "digits", "--batch-size", "32"]
    cmd += ["--steps", "800", "--log-every", "50", "--no-progress", "--out", str(out)]
    first = subprocess.Popen(
        cmd, env=local_env(1), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while not (out / LOCK_FILE).is_file() or not (out / LOCK_FILE).read_text():
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    second = subprocess.run(cmd, env=local_env(1), capture_output=True, text=True, timeout=120)
    assert first.poll() is None  # the two overlapped: the first was training all along
    _, first_err = first.communicate(timeout=300)
    assert second.returncode == 2 and f"optlab pid {first.pid} " in second.stderr
    assert first.returncode == 0, first_err
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r["step"] for r in records if "train_loss" in r]
    assert train == sorted(set(train)) and train[-1] == 800  # one writer: no duplicates
    assert json.loads((out / "summary.json").read_text())["steps"] == 800


_TWO_PROCESS = textwrap.dedent(
    """
    import pathlib, sys
    from optlab.parallel import initialize
    initialize(sys.argv[1], 2, int(sys.argv[2]))
    from optlab.errors import ConfigError
    from optlab.train.lock import acquire_run_lock
    try:
        held = acquire_run_lock(pathlib.Path(sys.argv[3]))
    except ConfigError as err:
        print("refused:", err, flush=True)
        sys.exit(2)
    print("locked" if held.locked else "follower", flush=True)
    """
)


def _two_processes(out: pathlib.Path) -> list[subprocess.CompletedProcess]:
    coordinator = f"127.0.0.1:{free_port()}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _TWO_PROCESS, coordinator, str(i), str(out)],
            env=local_env(1),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        return [
            subprocess.CompletedProcess(p.args, p.wait(60), *p.communicate(timeout=5))
            for p in procs
        ]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


@pytest.mark.slow  # four processes under jax.distributed
def test_a_multi_process_run_locks_once_and_every_process_gets_the_answer(holder):
    held_by, out = holder
    refused = _two_processes(out)  # the folder is held: both refuse, neither hangs
    for r in refused:
        assert r.returncode == 2, r.stderr
    lines = [_said(r) for r in refused]
    assert lines[0] == lines[1] and f"in use by optlab pid {held_by.pid} " in lines[0][0]
    held_by.kill()
    held_by.wait(10)
    free = _two_processes(out)
    assert [_said(r) for r in free] == [["locked"], ["follower"]], [r.stderr for r in free]


def _said(result: subprocess.CompletedProcess) -> list[str]:
    """The script's own lines (JAX's gloo prints to stdout too)."""
    words = ("refused:", "locked", "follower")
    return [line for line in result.stdout.splitlines() if line.startswith(words)]
