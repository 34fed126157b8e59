"""``optlab train``: flags (or a JSON/YAML config file) into a RunConfig, then the run."""

from __future__ import annotations

import argparse
from typing import Any

from optlab.cli._flags import add_run_config_args, config_from_args, to_flags
from optlab.errors import ConfigError

# The exit status of a preempted run (SIGTERM: the step was saved, the same command resumes
# it): EX_TEMPFAIL of <sysexits.h>, "try again", so a scheduler can requeue it rather than
# count it as finished (0), failed (1) or refused (2).
PREEMPTED_EXIT = 75


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "train",
        help="train a model (with no flags: an MLP with Adam on scikit-learn's digits)",
        description="Train a model. Every flag overrides --config; the defaults train an MLP "
        "with Adam on digits to >95% test accuracy in well under a minute on a CPU. "
        "Exit status: 0 finished; 1 failed (a non-finite loss, a checkpoint that could not be "
        "written, a failed process); 2 a mistake in the command or config, refused before "
        f"anything is written (also when --out is in use by another run); {PREEMPTED_EXIT} "
        "preempted (SIGTERM, or SIGTERM/SIGINT to a --local-processes launcher): the step "
        "was saved, run the same command again to resume (EX_TEMPFAIL: requeue it).",
    )
    add_run_config_args(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    d = p.add_argument_group(
        "several processes",
        "a multi-process run (one process per host): each process runs the same command with "
        "its own --process-id; the flags fall back to JAX_COORDINATOR_ADDRESS, "
        "JAX_NUM_PROCESSES, JAX_PROCESS_ID and OPTLAB_INIT_TIMEOUT. A missing or dead peer "
        "makes JAX abort the process (exit 134) after the timeout: supervise the processes "
        "(--local-processes does on one machine). Without --mesh the mesh is data=-1 over "
        "all processes' devices.",
    ).add_argument
    d("--coordinator", metavar="HOST:PORT", help="process 0's address, the same for all")
    d("--num-processes", type=int, metavar="N", help="processes in the run")
    d("--process-id", type=int, metavar="I", help="this process's index, 0..N-1")
    d(
        "--init-timeout",
        type=int,
        metavar="SECONDS",
        help="wait this long for every process to connect (default 60)",
    )
    d(
        "--heartbeat-timeout",
        type=int,
        metavar="SECONDS",
        help="a peer silent this long counts as dead (default 100)",
    )
    d(
        "--local-processes",
        type=int,
        metavar="N",
        help="simulate N hosts on this machine (N >= 1): start N supervised processes on "
        "loopback (CPU devices), stop all and exit 1 with a one-line reason if one fails "
        "(2 if it refused the command); SIGTERM or Ctrl-C preempts all of them (each saves "
        f"its step; exit {PREEMPTED_EXIT}), and they stop if the launcher dies",
    )
    d(
        "--devices-per-process",
        type=int,
        default=1,
        metavar="K",
        help="CPU devices each --local-processes process simulates (K >= 1; default 1)",
    )
    d(
        "--launch-timeout",
        type=float,
        default=3600,
        metavar="SECONDS",
        help="--local-processes: wall-clock limit of the whole run (default 3600)",
    )


def run(args: argparse.Namespace) -> int:
    import sys

    from optlab.parallel._distributed import initialize
    from optlab.parallel._launch import stop_with_launcher

    stop_with_launcher()  # a --local-processes child: stop if the launcher dies
    _check_launcher_flags(args)  # before anything starts
    if args.local_processes:
        return _launch_local(args)
    cfg = config_from_args(args)
    initialize(  # before any other JAX call; a no-op for a single-process run
        args.coordinator,
        args.num_processes,
        args.process_id,
        initialization_timeout=args.init_timeout,
        **({"heartbeat_timeout": args.heartbeat_timeout} if args.heartbeat_timeout else {}),
    )
    from optlab.train.loop import NonFiniteError, train

    _warn_slow_precision(cfg.train.precision)
    try:
        summary = train(cfg, progress=not args.no_progress)
    except NonFiniteError as err:
        print(f"optlab: training stopped: {to_flags(str(err))}", file=sys.stderr)
        return 1
    if summary.get("preempted"):
        return PREEMPTED_EXIT  # the loop printed where the step was saved
    rows = [
        (k, summary[k])
        for k in (
            "test_accuracy",
            "test_loss",
            "val_accuracy",
            "val_loss",
            "train_loss",
            "steps",
            "wall_seconds",
        )
        if k in summary
    ]
    print(f"\n{'metric':<16}value")
    for key, value in rows:
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        print(f"{key:<16}{shown}")
    if summary.get("stopped_early"):
        print(
            f"stopped early at step {summary['steps']} (no improvement in "
            f"{cfg.train.monitor} for {cfg.train.early_stopping} evaluations)"
        )
    print(f"artifacts in {cfg.out}/: config.json metrics.jsonl summary.json checkpoints/ *.png")
    return 0


_HALF = {"bf16": "bfloat16", "fp16": "float16"}


def _warn_slow_precision(precision: str) -> None:
    """One stderr line when --precision bf16|fp16 would compute on a CPU (process 0 only)."""
    import sys

    import jax

    if precision not in _HALF or jax.process_index() != 0:
        return
    if jax.devices()[0].platform == "cpu":
        print(
            f"optlab: warning: --precision {precision}: {_HALF[precision]} compute on a CPU is "
            "several times slower than fp32 (CPUs lack fast half-precision arithmetic); it "
            "pays on GPUs/TPUs. Use --precision fp32 here.",
            file=sys.stderr,
        )


_LAUNCHER_FLAGS = ("--local-processes", "--devices-per-process", "--launch-timeout")


def _check_launcher_flags(args: argparse.Namespace) -> None:
    """``--local-processes``, ``--devices-per-process`` and ``--launch-timeout`` in range,
    or one line (exit 2): 0 processes would silently train in-process, and 0 devices makes a
    child crash in XLA."""
    for flag, value in (
        ("--local-processes", args.local_processes),
        ("--devices-per-process", args.devices_per_process),
    ):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be a positive integer (at least 1), got {value}")
    if not args.launch_timeout > 0:  # NaN too
        raise ConfigError(
            f"--launch-timeout must be a positive number of seconds, got {args.launch_timeout}"
        )


def _launch_local(args: argparse.Namespace) -> int:
    """``--local-processes N``: this command line, minus the launcher's flags, run as N
    supervised processes (``optlab.parallel.launch_local``); process 0's output printed."""
    import pathlib
    import sys

    from optlab.parallel._distributed import DistributedError, PreemptedError, launch_local

    if args.coordinator or args.num_processes or args.process_id is not None:
        raise ConfigError(
            "--local-processes picks --coordinator, --num-processes and --process-id itself"
        )
    raw = sys.argv[1:]
    if "train" not in raw or not any(a.split("=")[0] == "--local-processes" for a in raw):
        raise ConfigError(
            "--local-processes works from the command line; from Python call "
            "optlab.parallel.launch_local"
        )
    raw = raw[raw.index("train") + 1 :]
    argv: list[str] = []
    skip = False
    for item in raw:
        if skip:
            skip = False
            continue
        name = item.split("=")[0]
        if name in _LAUNCHER_FLAGS or name == "--init-timeout" or name == "--heartbeat-timeout":
            skip = "=" not in item
            continue
        argv.append(item)
    try:
        logs = launch_local(
            args.local_processes,
            argv,
            devices_per_process=args.devices_per_process,
            timeout=args.launch_timeout,
            init_timeout=args.init_timeout or 60,
            heartbeat_timeout=args.heartbeat_timeout,
        )
    except PreemptedError as err:
        print(f"optlab: {err}", file=sys.stderr)
        return PREEMPTED_EXIT
    except DistributedError as err:
        print(f"optlab: error: {err}", file=sys.stderr)
        return 2 if err.returncode == 2 else 1  # a refused command stays a refused command
    print(pathlib.Path(logs[0]).read_text(), end="")
    print(f"optlab: logs of all {args.local_processes} processes: {logs}", file=sys.stderr)
    return 0
