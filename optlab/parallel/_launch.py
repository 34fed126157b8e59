"""The supervised local launcher: ``optlab train --local-processes N`` on one machine.

``launch_local`` runs N ``optlab train`` processes on loopback (each with its own simulated
CPU devices), waits for them with a wall-clock timeout and stops the others as soon as one
fails, so a missing or dead peer (which makes JAX abort, see ``optlab.parallel._distributed``)
is one line, not a hang. It also supervises the children:

* **No code from the working directory.** A child runs ``python -P -m optlab`` (Python
  >= 3.11): the working directory is not put ahead of the installed packages, so a file
  there named like optlab or one of its dependencies is never imported instead.
  ``--optimizer mymodule:fn`` still finds ``mymodule.py`` there:
  ``optlab.cli._flags.import_from_cwd`` appends the working directory *last*.
* **Signals are forwarded.** SIGTERM or SIGINT to the launcher is sent on to every child as
  SIGTERM: each saves its step and stops as a preempted run (exit ``PREEMPTED_EXIT``, 75),
  and the launcher waits up to ``grace`` seconds for them, then kills what is left. A
  second SIGINT kills them at once. The children run in their own process group, so a
  terminal's Ctrl-C reaches only the launcher, which turns it into that orderly SIGTERM. A
  child preempted on its own (a scheduler signalled it) preempts the others too.
* **No orphans.** On Linux each child asks the kernel for SIGTERM when the launcher dies
  (``stop_with_launcher``: ``prctl(PR_SET_PDEATHSIG)``), even when the launcher is killed
  by SIGKILL, so no child trains on unsupervised: it saves its step and stops. The kernel
  sends it when the launcher's *thread* that started the child ends: call ``launch_local``
  from a thread that lives as long as the run. Other systems have no such call; there a
  killed launcher leaves its children running (each in its own process group: stop them
  with ``kill -TERM -PGID``).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence

DEFAULT_INIT_TIMEOUT = 60  # each process's --init-timeout; JAX's own default is 300 s
DEFAULT_GRACE = 60  # seconds preempted children get to save before SIGKILL
PREEMPTED_EXIT = 75  # EX_TEMPFAIL: a preempted run's exit status (optlab.cli.train's too)
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
LAUNCHER_PID_VARIABLE = "OPTLAB_LAUNCHER_PID"  # set in each child's environment


class DistributedError(RuntimeError):
    """A multi-process run failed: a peer never arrived, died, or the run timed out.

    ``returncode`` is the failed process's exit status where one process failed (2: a
    mistake in the command, which ``optlab train --local-processes`` passes on), else None.
    """

    def __init__(self, message: str, *, returncode: int | None = None):
        super().__init__(message)
        self.returncode = returncode


class PreemptedError(DistributedError):
    """A multi-process run was preempted (SIGTERM or SIGINT): every process saved its step
    and stopped; the same command resumes it. ``returncode`` is ``PREEMPTED_EXIT``."""


def free_port() -> int:
    """A TCP port free on loopback right now (bind to port 0 and read what the OS chose)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def local_env(devices_per_process: int, base: dict | None = None) -> dict:
    """The environment of one simulated CPU host: ``JAX_PLATFORMS=cpu`` and exactly
    ``devices_per_process`` CPU devices (a child would inherit the parent's count otherwise).
    The distributed variables are removed: the launcher passes flags."""
    env = dict(os.environ if base is None else base)
    flags = re.sub(r"--xla_force_host_platform_device_count=\S+", "", env.get("XLA_FLAGS", ""))
    env["XLA_FLAGS"] = (
        f"{flags.strip()} --xla_force_host_platform_device_count={devices_per_process}"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        env.pop(name, None)
    env.pop(LAUNCHER_PID_VARIABLE, None)  # the launcher sets its own
    return env


def _tail(path: str, lines: int = 40) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def _cause(code: int, log: str, init_timeout: int, coordinator: str) -> str:
    if code in (-signal.SIGABRT, 134):
        if re.search(r"(?i)barrier|heartbeat|connect|coordinat|deadline|unavailable", log):
            return (
                f"aborted by JAX's distributed runtime: a peer did not reach {coordinator} "
                f"within --init-timeout {init_timeout} s, or stopped answering heartbeats "
                "(did every process start, with the same --coordinator and --num-processes?)"
            )
        return "aborted (SIGABRT): a peer is likely missing or died; see its log"
    if code < 0:
        return f"killed by signal {signal.Signals(-code).name}"
    if code == 2:
        last = [line for line in log.splitlines() if line.startswith("optlab: error:")]
        return last[-1].removeprefix("optlab: error: ") if last else "a configuration error"
    return f"exit status {code}"


def launch_local(
    num_processes: int,
    argv: Sequence[str],
    *,
    devices_per_process: int = 1,
    timeout: float = 600,
    init_timeout: int = DEFAULT_INIT_TIMEOUT,
    heartbeat_timeout: int | None = None,
    port: int | None = None,
    process_ids: Sequence[int] | None = None,
    log_dir: str | None = None,
    python: str | None = None,
    env: dict | None = None,
    grace: float = DEFAULT_GRACE,
) -> list[str]:
    """Runs ``optlab train ARGV`` as ``num_processes`` processes on loopback, supervised.

    Each process runs on ``devices_per_process`` simulated CPU devices (``local_env``), with
    ``--coordinator 127.0.0.1:PORT --num-processes N --process-id I --init-timeout ...``
    appended. The launcher waits at most ``timeout`` seconds in all; as soon as one process
    fails the others are stopped (SIGTERM, then SIGKILL), so a dead or missing peer never
    leaves the run hanging.

    Supervision (see the module docstring): the children run ``python -P -m optlab`` in
    their own process group; SIGTERM or SIGINT to the launcher is forwarded to every child as
    SIGTERM (each saves its step and stops as a preempted run), and the launcher waits up to
    ``grace`` seconds for them (a second SIGINT stops them at once). A child that is itself
    preempted (exit 75) makes the launcher preempt the others. On Linux the children get
    SIGTERM when the launcher dies, even by SIGKILL.

    Args:
      num_processes: processes in the run.
      argv: ``optlab train`` arguments, without the distributed flags.
      devices_per_process: CPU devices each process simulates.
      timeout: wall-clock seconds for the whole run.
      init_timeout: each process's ``--init-timeout``.
      heartbeat_timeout: each process's ``--heartbeat-timeout`` (default: JAX's).
      port: the coordinator's port (default: a free one).
      process_ids: start only these process ids (default all; fewer simulates a missing
        peer).
      log_dir: where ``process_<i>.log`` go (default: a new temporary folder).
      python: the interpreter (default ``sys.executable``; Python >= 3.11 for ``-P``).
      env: the base environment (default ``os.environ``).
      grace: seconds the preempted children get to save and stop before SIGKILL.

    Returns:
      The paths of the per-process logs (stdout and stderr together).

    Raises:
      PreemptedError: the run was preempted (the launcher or a child got SIGTERM/SIGINT);
        each process saved its step, and the same command resumes it.
      DistributedError: one line naming the failed process, its exit and the likely cause,
        and pointing at its log; its ``returncode`` is that process's exit status.
    """
    for name, value in (
        ("num_processes", num_processes),
        ("devices_per_process", devices_per_process),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            from optlab.errors import ConfigError

            raise ConfigError(f"launch_local: {name} must be an integer >= 1, got {value!r}")
    port = port or free_port()
    coordinator = f"127.0.0.1:{port}"
    log_dir = log_dir or tempfile.mkdtemp(prefix="optlab-launch-")
    os.makedirs(log_dir, exist_ok=True)
    ids = list(range(num_processes)) if process_ids is None else list(process_ids)
    child_env = local_env(devices_per_process, env)
    child_env[LAUNCHER_PID_VARIABLE] = str(os.getpid())  # see stop_with_launcher
    procs: dict[int, subprocess.Popen] = {}
    logs: dict[int, str] = {}
    signals = _Forwarder(procs)
    try:
        signals.install()
        for i in ids:
            if signals.received is not None:  # stopped while starting: start no more
                break
            cmd = [
                python or sys.executable,
                "-P",  # the working directory is not put ahead of the installed packages
                "-m",
                "optlab",
                "train",
                *argv,
                "--coordinator",
                coordinator,
                "--num-processes",
                str(num_processes),
                "--process-id",
                str(i),
                "--init-timeout",
                str(init_timeout),
            ]
            if heartbeat_timeout is not None:
                cmd += ["--heartbeat-timeout", str(heartbeat_timeout)]
            logs[i] = os.path.join(log_dir, f"process_{i}.log")
            with open(logs[i], "w") as log:
                procs[i] = subprocess.Popen(
                    cmd,
                    env=child_env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    process_group=0,  # a terminal's Ctrl-C reaches the launcher only
                )
            if signals.received is not None:  # it came while Popen ran: this child too
                signals.forward()
        return _supervise(
            procs,
            logs,
            signals,
            ids=ids,
            num_processes=num_processes,
            log_dir=log_dir,
            timeout=timeout,
            grace=grace,
            init_timeout=init_timeout,
            coordinator=coordinator,
        )
    finally:
        signals.restore()
        _stop(procs.values())


def _supervise(
    procs, logs, signals, *, ids, num_processes, log_dir, timeout, grace, init_timeout, coordinator
):
    """Waits for the children; raises as ``launch_local`` documents."""
    start = time.monotonic()
    while True:
        running = [i for i, p in procs.items() if p.poll() is None]
        codes = {i: p.returncode for i, p in procs.items() if p.returncode is not None}
        preempted = signals.received is not None or PREEMPTED_EXIT in codes.values()
        stopped = (0, PREEMPTED_EXIT, -signal.SIGTERM) if preempted else (0,)
        bad = [i for i, c in codes.items() if c not in stopped]
        if bad:
            i, code = bad[0], codes[bad[0]]
            cause = _cause(code, _tail(logs[i]), init_timeout, coordinator)
            shown = "SIGABRT" if code == -signal.SIGABRT else str(code)
            raise DistributedError(
                f"process {i} of {num_processes} failed (exit {shown}) after "
                f"{time.monotonic() - start:.0f} s: {cause}. Log: {logs[i]}",
                returncode=code,
            )
        if preempted and signals.forwarded_at is None:
            signals.forward()  # one child was preempted, so the run is: the others save too
        if not running:
            break
        if signals.forwarded_at is not None and time.monotonic() > signals.forwarded_at + grace:
            raise DistributedError(
                f"the {num_processes}-process run was preempted but process(es) {running} did "
                f"not stop within {grace:g} s of SIGTERM (killed now); a collective may be "
                f"waiting for a peer that already stopped. Logs: {log_dir}"
            )
        if time.monotonic() - start > timeout:
            raise DistributedError(
                f"the {num_processes}-process run did not finish within {timeout:g} s "
                f"(process(es) {running} still running, stopped now); a collective may be "
                f"waiting for a dead peer. Logs: {log_dir}"
            )
        time.sleep(0.1)
    if preempted and (len(codes) < len(ids) or any(c != 0 for c in codes.values())):
        why = signals.name or "a process was preempted (SIGTERM)"
        raise PreemptedError(
            f"{why}: the {len(procs)} running process(es) saved their step and stopped; run "
            f"the same command again to resume. Logs: {log_dir}",
            returncode=PREEMPTED_EXIT,
        )
    return [logs[i] for i in ids]


class _Forwarder:
    """SIGTERM/SIGINT handlers of the launcher: forward SIGTERM to the children (once per
    signal received); a second SIGINT kills them. Main thread only (elsewhere Python allows
    no signal handlers, and the launcher then forwards nothing)."""

    def __init__(self, procs: dict[int, subprocess.Popen]):
        self.procs, self.previous = procs, {}
        self.received: int | None = None  # the launcher's first signal
        self.forwarded_at: float | None = None  # when SIGTERM first went to the children

    @property
    def name(self) -> str | None:
        if self.received is None:
            return None
        return f"{signal.Signals(self.received).name} (sent on to every process as SIGTERM)"

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous = {}

    def _handle(self, signum: int, _frame) -> None:
        again = self.received == signal.SIGINT and signum == signal.SIGINT
        self.received = signum
        if again:
            for p in self.procs.values():
                if p.poll() is None:
                    p.kill()
        else:
            self.forward()

    def forward(self) -> None:
        if self.forwarded_at is None:
            self.forwarded_at = time.monotonic()
        for p in self.procs.values():
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGTERM)


def stop_with_launcher(env: dict | None = None) -> bool:
    """In a child of ``launch_local`` (``OPTLAB_LAUNCHER_PID`` set): asks the kernel for
    SIGTERM when the launcher dies (Linux ``prctl(PR_SET_PDEATHSIG)``), and exits at once if
    it has died already. ``optlab train`` calls it first thing.

    The child asks, rather than the launcher through ``preexec_fn``, because code run between
    ``fork`` and ``exec`` in a process with threads (JAX's) may deadlock. The kernel sends
    the signal when the launcher's *thread* that started the child ends: call
    ``launch_local`` from a thread that lives as long as the run (the main one). Elsewhere
    than Linux there is no such call and this returns False: a killed launcher leaves its
    children running (stop them yourself; each runs in its own process group).

    Returns:
      True if the death signal is set.
    """
    raw = (os.environ if env is None else env).get(LAUNCHER_PID_VARIABLE)
    if not raw or not raw.isdigit() or not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return False
    if prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        return False
    if os.getppid() != int(raw):  # the launcher died before prctl took effect
        print("optlab: the --local-processes launcher has died; stopping", file=sys.stderr)
        os._exit(PREEMPTED_EXIT)
    return True


def _stop(procs) -> None:
    alive = [p for p in procs if p.poll() is None]
    for p in alive:
        p.terminate()
    deadline = time.monotonic() + 5
    for p in alive:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
