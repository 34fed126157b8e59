"""The ``--local-processes`` launcher supervises its children: SIGTERM and SIGINT reach them
(each saves its step and stops as a preempted run, exit 75), a launcher killed even by
SIGKILL takes them down with it (Linux ``PR_SET_PDEATHSIG``), they never import code from the
working directory ahead of the installed packages (``python -P``), and its flags are checked
before anything starts.

Real processes: the launcher is ``optlab train --local-processes 2`` in a subprocess, killed
once both children are training (a checkpoint is on disk); the children are found in
``/proc`` and must be gone within a few seconds.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from optlab.cli import main
from optlab.cli.train import PREEMPTED_EXIT
from optlab.parallel import _launch
from optlab.parallel._distributed import PreemptedError, launch_local, local_env

# Long enough never to finish on its own: every test stops it.
RUN = ["--dataset", "digits", "--model-arg", "widths=[16]", "--batch-size", "32"]
RUN += ["--steps", "1000000", "--no-progress"]
GONE_WITHIN = 15  # seconds: a child saves its step (well under a second here) and exits


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a live process, None when it is gone (a zombie is gone)."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    state, ppid = stat.rsplit(")", 1)[1].split()[:2]
    return None if state in ("Z", "X") else (state, int(ppid))


def _children(pid: int) -> list[int]:
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None and stat[1] == pid:
                found.append(int(entry.name))
    return sorted(found)


def _start_launcher(tmp_path: pathlib.Path) -> tuple[subprocess.Popen, list[int], pathlib.Path]:
    """``optlab train --local-processes 2``; returns once both children are training."""
    out = tmp_path / "run"
    cli = [sys.executable, "-P", "-m", "optlab", "train", *RUN, "--out", str(out)]
    launcher = subprocess.Popen(
        [*cli, "--local-processes", "2", "--init-timeout", "60"],
        env=local_env(1),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (out / "checkpoints").is_dir() or not any((out / "checkpoints").iterdir()):
        assert launcher.poll() is None, launcher.communicate()
        assert time.monotonic() < deadline, "the run never reached its first checkpoint"
        time.sleep(0.05)
    children = _children(launcher.pid)
    assert len(children) == 2, children
    return launcher, children, out


def _wait_gone(pids: list[int], within: float) -> float:
    start = time.monotonic()
    while any(_proc_stat(p) is not None for p in pids):
        if time.monotonic() - start > within:
            for p in pids:  # do not leave them behind for the next test
                if _proc_stat(p) is not None:
                    os.kill(p, signal.SIGKILL)
            pytest.fail(f"children {pids} still running {within} s after the launcher's signal")
        time.sleep(0.05)
    return time.monotonic() - start


def _saved_steps(log_dir: pathlib.Path) -> list[str]:
    lines = []
    for log in sorted(log_dir.glob("process_*.log")):
        lines += [line for line in log.read_text().splitlines() if "SIGTERM: saved step" in line]
    return lines


@pytest.mark.slow  # three processes
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_the_launcher_preempts_every_child(tmp_path, sig):
    launcher, children, out = _start_launcher(tmp_path)
    launcher.send_signal(sig)
    took = _wait_gone(children, GONE_WITHIN)
    _, stderr = launcher.communicate(timeout=GONE_WITHIN)
    assert launcher.returncode == PREEMPTED_EXIT == 75, stderr
    line = [x for x in stderr.splitlines() if x.startswith("optlab: ")]
    assert len(line) == 1 and f"{sig.name} (sent on to every process as SIGTERM)" in line[0]
    assert "run the same command again to resume" in line[0]
    log_dir = pathlib.Path(line[0].rsplit("Logs: ", 1)[1])
    saved = _saved_steps(log_dir)
    assert len(saved) == 2, saved  # both children saved, as preempted runs
    assert saved[0] == saved[1]  # the same step
    step = int(saved[0].split("saved step ")[1].split()[0])
    assert str(step) in {p.name for p in (out / "checkpoints").iterdir()}
    print(f"{sig.name}: both children stopped {took:.1f} s after the signal, at step {step}")


@pytest.mark.slow  # three processes
def test_a_launcher_killed_by_sigkill_takes_its_children_down(tmp_path):
    launcher, children, _ = _start_launcher(tmp_path)
    launcher.kill()  # no handler runs: only the kernel's PR_SET_PDEATHSIG can stop them
    launcher.communicate(timeout=10)
    took = _wait_gone(children, GONE_WITHIN)
    print(f"SIGKILL: both children stopped {took:.1f} s after the launcher died")


@pytest.mark.slow  # two processes
def test_children_do_not_import_from_the_working_directory(tmp_path, monkeypatch):
    # An `optlab` package in the working directory would shadow the installed one with
    # `python -m optlab` (the working directory comes first); `python -P` ignores it, and a
    # user's own --optimizer module there is still found (appended last).
    shadow = tmp_path / "optlab"
    shadow.mkdir()
    marker = tmp_path / "shadow_ran"
    (shadow / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (shadow / "__main__.py").write_text("raise SystemExit(99)\n")
    (tmp_path / "my_opts.py").write_text(
        textwrap.dedent(
            """
            import optlab

            def fast_sgd(learning_rate):
                return optlab.sgd(learning_rate)
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    argv = ["--dataset", "digits", "--model-arg", "widths=[8]", "--batch-size", "32"]
    argv += ["--steps", "3", "--no-progress", "--optimizer", "my_opts:fast_sgd"]
    logs = launch_local(2, [*argv, "--out", str(tmp_path / "run")], timeout=120)
    assert not marker.exists()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["steps"] == 3
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["optimizer"]["optimizer"] == "my_opts:fast_sgd"
    assert len(logs) == 2


def test_children_run_with_safe_path_and_die_with_the_launcher(tmp_path, monkeypatch):
    # The command line and the Popen options, without starting JAX: a fake Popen records them.
    seen = []

    class FakePopen:
        def __init__(self, cmd, **kwargs):
            seen.append((cmd, kwargs))
            self.returncode = 0

        def poll(self):
            return self.returncode

    monkeypatch.setattr(_launch.subprocess, "Popen", FakePopen)
    logs = launch_local(2, ["--steps", "1"], log_dir=str(tmp_path), python="/py")
    assert [pathlib.Path(p).name for p in logs] == ["process_0.log", "process_1.log"]
    for i, (cmd, kwargs) in enumerate(seen):
        assert cmd[:5] == ["/py", "-P", "-m", "optlab", "train"]
        assert cmd[cmd.index("--process-id") + 1] == str(i)
        assert kwargs["process_group"] == 0 and kwargs["stdin"] == subprocess.DEVNULL
        assert "preexec_fn" not in kwargs  # no Python between fork and exec (JAX's threads)
        assert kwargs["env"][_launch.LAUNCHER_PID_VARIABLE] == str(os.getpid())


_ASK = textwrap.dedent(
    """
    import ctypes, sys
    from optlab.parallel._launch import stop_with_launcher
    print(stop_with_launcher(), flush=True)
    got = ctypes.c_int()
    ctypes.CDLL(None).prctl(2, ctypes.byref(got), 0, 0, 0)  # PR_GET_PDEATHSIG
    print(got.value)
    """
)


@pytest.mark.slow  # two subprocesses
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_child_asks_for_sigterm_when_its_launcher_dies(tmp_path):
    def child(launcher_pid: int) -> subprocess.CompletedProcess:
        env = {**local_env(1), _launch.LAUNCHER_PID_VARIABLE: str(launcher_pid)}
        return subprocess.run(
            [sys.executable, "-c", _ASK], env=env, capture_output=True, text=True, timeout=60
        )

    ours = child(os.getpid())  # this process is its launcher
    assert ours.returncode == 0 and ours.stdout.split() == ["True", str(int(signal.SIGTERM))]
    orphan = child(1)  # its launcher is gone already (the parent is not that PID)
    assert orphan.returncode == PREEMPTED_EXIT and orphan.stdout == ""
    assert "launcher has died; stopping" in orphan.stderr


def test_a_preempted_child_makes_the_launcher_preempt_the_others(tmp_path, monkeypatch):
    # Process 1 exits 75 on its own (its scheduler signalled it): process 0 gets SIGTERM
    # from the launcher, and the launcher raises PreemptedError once both have stopped.
    signalled = []

    class FakePopen:
        def __init__(self, cmd, **_):
            self.i = int(cmd[cmd.index("--process-id") + 1])
            self.returncode = PREEMPTED_EXIT if self.i == 1 else None

        def poll(self):
            return self.returncode

        def send_signal(self, sig):
            signalled.append((self.i, sig))
            self.returncode = PREEMPTED_EXIT

    monkeypatch.setattr(_launch.subprocess, "Popen", FakePopen)
    with pytest.raises(PreemptedError, match="saved their step") as err:
        launch_local(2, ["--steps", "1"], log_dir=str(tmp_path))
    assert signalled == [(0, signal.SIGTERM)]
    assert err.value.returncode == PREEMPTED_EXIT
    assert _launch.PREEMPTED_EXIT == PREEMPTED_EXIT  # the launcher's and the CLI's agree


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--local-processes", "0"], "--local-processes must be a positive integer"),
        (["--local-processes", "-1"], "--local-processes must be a positive integer"),
        (["--local-processes", "2", "--devices-per-process", "0"], "--devices-per-process"),
        (["--local-processes", "2", "--devices-per-process", "-4"], "--devices-per-process"),
        (["--devices-per-process", "0"], "--devices-per-process must be a positive integer"),
        (["--local-processes", "2", "--launch-timeout", "0"], "--launch-timeout must be"),
        (["--local-processes", "2", "--launch-timeout", "nan"], "--launch-timeout must be"),
    ],
)
def test_bad_launcher_flags_are_one_line_before_anything_starts(
    tmp_path, monkeypatch, capsys, flags, words
):
    def never(*a, **k):
        raise AssertionError("a process was started")

    monkeypatch.setattr(_launch.subprocess, "Popen", never)
    out = tmp_path / "run"
    argv = ["train", "--steps", "1", "--out", str(out), *flags]
    monkeypatch.setattr(sys, "argv", ["optlab", *argv])  # what --local-processes reads
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("optlab: error: ") and words in err[0], err
    assert not out.exists()  # nothing written


def test_launch_local_refuses_a_bad_count_from_python(tmp_path):
    from optlab.errors import ConfigError

    for bad in (0, -1, True, 1.5):
        with pytest.raises(ConfigError, match="num_processes must be an integer >= 1"):
            launch_local(bad, [], log_dir=str(tmp_path))
        with pytest.raises(ConfigError, match="devices_per_process must be an integer >= 1"):
            launch_local(2, [], devices_per_process=bad, log_dir=str(tmp_path))
