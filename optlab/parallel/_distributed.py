"""Several processes, one run: ``jax.distributed`` set-up and a supervised local launcher.

``initialize()`` joins this process to a multi-process JAX run. It must run before any other
JAX call in the process (``optlab train`` calls it first when ``--coordinator`` or the
environment asks for it). Its arguments fall back to environment variables:

* ``JAX_COORDINATOR_ADDRESS`` (``HOST:PORT`` of process 0; JAX itself reads this one too),
* ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` (read by optlab; JAX reads them only through
  its cluster detection, e.g. SLURM or Open MPI variables),
* ``OPTLAB_INIT_TIMEOUT`` (seconds; default 60).

Failure is not a Python exception: if a peer never reaches the coordinator within
``initialization_timeout`` seconds, or stops sending heartbeats for ``heartbeat_timeout``
seconds, JAX logs a fatal line and ABORTS the process (SIGABRT, exit status 134 from a
shell). Nothing in Python can turn that into a message, so run the processes under a
supervisor: ``launch_local`` (``optlab train --local-processes N``) starts N processes on
loopback, waits for them with a wall-clock timeout, stops the others as soon as one fails,
and raises ``DistributedError`` with one line naming the process and the likely cause.
On a real cluster use your scheduler's equivalent (``srun --kill-on-bad-exit=1``,
``timeout``, a Kubernetes Job's ``backoffLimit``/``activeDeadlineSeconds``).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

DEFAULT_INIT_TIMEOUT = 60  # JAX's own default is 300 s
DEFAULT_HEARTBEAT_TIMEOUT = 100  # JAX's default: a peer silent this long aborts the others


class DistributedError(RuntimeError):
    """A multi-process run failed: a peer never arrived, died, or the run timed out."""


def _env_int(name: str) -> int | None:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError:
        from optlab.errors import ConfigError

        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    initialization_timeout: int | None = None,
    heartbeat_timeout: int = DEFAULT_HEARTBEAT_TIMEOUT,
) -> bool:
    """Calls ``jax.distributed.initialize`` when a multi-process run is asked for.

    Args fall back to ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``
    and ``OPTLAB_INIT_TIMEOUT``. With none of them set, or ``num_processes == 1``, this is a
    no-op (single-process run). Calling it again after a successful initialization is a no-op.

    Args:
      coordinator: ``HOST:PORT`` of process 0 (which serves it); the same for every process.
      num_processes: how many processes take part.
      process_id: this process's index, ``0 <= process_id < num_processes``.
      initialization_timeout: seconds to wait for every process to connect (default 60);
        after that JAX aborts the process (see the module docstring).
      heartbeat_timeout: seconds without a heartbeat after which a peer counts as dead and
        the surviving processes abort (JAX's default, 100).

    Returns:
      True if ``jax.distributed.initialize`` was called (or had been already), else False.

    Raises:
      ConfigError: an incomplete or inconsistent set of arguments, or JAX already started.
    """
    import jax

    from optlab.errors import ConfigError

    if jax.distributed.is_initialized():
        return True
    coordinator = coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS") or None
    num_processes = num_processes if num_processes is not None else _env_int("JAX_NUM_PROCESSES")
    process_id = process_id if process_id is not None else _env_int("JAX_PROCESS_ID")
    if initialization_timeout is None:
        initialization_timeout = _env_int("OPTLAB_INIT_TIMEOUT") or DEFAULT_INIT_TIMEOUT
    if coordinator is None and num_processes is None and process_id is None:
        return False
    if num_processes == 1:
        return False
    missing = [
        name
        for name, value in (
            ("--coordinator (JAX_COORDINATOR_ADDRESS)", coordinator),
            ("--num-processes (JAX_NUM_PROCESSES)", num_processes),
            ("--process-id (JAX_PROCESS_ID)", process_id),
        )
        if value is None
    ]
    if missing:
        raise ConfigError(
            f"a multi-process run needs {', '.join(missing)} as well; give all three, e.g. "
            "--coordinator 10.0.0.1:1234 --num-processes 2 --process-id 0"
        )
    host, sep, port = coordinator.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"--coordinator: expected HOST:PORT, got {coordinator!r}")
    if num_processes < 1 or not 0 <= process_id < num_processes:
        raise ConfigError(
            f"--process-id {process_id} must lie in [0, {num_processes}) "
            f"(--num-processes {num_processes})"
        )
    for name, value in (
        ("--init-timeout", initialization_timeout),
        ("--heartbeat-timeout", heartbeat_timeout),
    ):
        if value < 1:
            raise ConfigError(f"{name} must be a positive number of seconds, got {value}")
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        raise ConfigError(
            "distributed initialization must come before any other JAX call in the process; "
            "call optlab.parallel.initialize() first"
        )
    print(
        f"optlab: process {process_id} of {num_processes}: waiting up to "
        f"{initialization_timeout} s for all processes at {coordinator} "
        "(a missing peer aborts the process after that)",
        file=sys.stderr,
        flush=True,
    )
    jax.distributed.initialize(
        coordinator_address=coordinator,
        num_processes=num_processes,
        process_id=process_id,
        initialization_timeout=int(initialization_timeout),
        heartbeat_timeout_seconds=int(heartbeat_timeout),
    )
    return True


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
        return last[-1] if last else "a configuration error (exit 2)"
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
) -> list[str]:
    """Runs ``optlab train ARGV`` as ``num_processes`` processes on loopback, supervised.

    Each process runs on ``devices_per_process`` simulated CPU devices (``local_env``), with
    ``--coordinator 127.0.0.1:PORT --num-processes N --process-id I --init-timeout ...``
    appended. The launcher waits at most ``timeout`` seconds in all; as soon as one process
    fails the others are stopped (SIGTERM, then SIGKILL), so a dead or missing peer never
    leaves the run hanging.

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
      python: the interpreter (default ``sys.executable``).
      env: the base environment (default ``os.environ``).

    Returns:
      The paths of the per-process logs (stdout and stderr together).

    Raises:
      DistributedError: one line naming the failed process, its exit and the likely cause,
        and pointing at its log.
    """
    port = port or free_port()
    coordinator = f"127.0.0.1:{port}"
    log_dir = log_dir or tempfile.mkdtemp(prefix="optlab-launch-")
    os.makedirs(log_dir, exist_ok=True)
    ids = list(range(num_processes)) if process_ids is None else list(process_ids)
    child_env = local_env(devices_per_process, env)
    procs: dict[int, subprocess.Popen] = {}
    logs: dict[int, str] = {}
    try:
        for i in ids:
            cmd = [
                python or sys.executable,
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
                    cmd, env=child_env, stdout=log, stderr=subprocess.STDOUT
                )
        start = time.monotonic()
        failed: tuple[int, int] | None = None
        while True:
            running = [i for i, p in procs.items() if p.poll() is None]
            bad = [i for i, p in procs.items() if p.returncode not in (None, 0)]
            if bad:
                failed = (bad[0], procs[bad[0]].returncode)
                break
            if not running:
                break
            if time.monotonic() - start > timeout:
                raise DistributedError(
                    f"the {num_processes}-process run did not finish within {timeout:g} s "
                    f"(process(es) {running} still running, stopped now); a collective may be "
                    f"waiting for a dead peer. Logs: {log_dir}"
                )
            time.sleep(0.1)
        if failed is not None:
            i, code = failed
            cause = _cause(code, _tail(logs[i]), init_timeout, coordinator)
            shown = "SIGABRT" if code == -signal.SIGABRT else str(code)
            raise DistributedError(
                f"process {i} of {num_processes} failed (exit {shown}) after "
                f"{time.monotonic() - start:.0f} s: {cause}. Log: {logs[i]}"
            )
        return [logs[i] for i in ids]
    finally:
        _stop(procs.values())


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
