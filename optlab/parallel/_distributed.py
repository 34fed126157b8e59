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
and raises ``DistributedError`` with one line naming the process and the likely cause
(``optlab.parallel._launch``, re-exported here; it also forwards SIGTERM/SIGINT to the
processes and stops them if it dies). On a real cluster use your scheduler's equivalent
(``srun --kill-on-bad-exit=1``, ``timeout``, a Kubernetes Job's
``backoffLimit``/``activeDeadlineSeconds``).
"""

from __future__ import annotations

import os
import sys

from optlab.parallel._launch import (
    DEFAULT_INIT_TIMEOUT,
    PREEMPTED_EXIT,
    DistributedError,
    PreemptedError,
    free_port,
    launch_local,
    local_env,
)

DEFAULT_HEARTBEAT_TIMEOUT = 100  # JAX's default: a peer silent this long aborts the others

__all__ = [
    "DEFAULT_HEARTBEAT_TIMEOUT",
    "DEFAULT_INIT_TIMEOUT",
    "PREEMPTED_EXIT",
    "DistributedError",
    "PreemptedError",
    "free_port",
    "initialize",
    "launch_local",
    "local_env",
]


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
