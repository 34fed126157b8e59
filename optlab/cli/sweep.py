"""``optlab sweep``: vectorized hyper-parameter sweeps (lecture 03's coarse-then-fine
search) from the command line.
"""

from __future__ import annotations

import argparse
import math
import pathlib
from typing import Any

from optlab.errors import ConfigError

# Lecture 03's coarse grid: what `optlab sweep` tries when no grid flag is given.
COARSE_RATES = "0.1,0.05,0.03,0.01,0.003,0.001,0.0005,0.0001"

LIST_FLAGS = ("learning_rate", "momentum", "weight_decay")  # flags that take comma lists


def add_parser(commands: Any) -> None:
    from optlab.cli._flags import add_run_config_args

    p = commands.add_parser(
        "sweep",
        help="train a grid of hyper-parameters at once (vmap)",
        description="Train every configuration of a grid (× seeds × folds) at once in one "
        "vmapped program, spread over all devices; print the table (best marked) and write "
        "sweep.csv, sweep_summary.csv and sweep.png into --out. Without a grid flag: lecture "
        f"03's coarse grid of learning rates {COARSE_RATES}. Any train flag sets the base run.",
        conflict_handler="resolve",  # the list flags below replace the train flags
    )
    add_run_config_args(p)
    a = p.add_argument
    a("--out", help="folder for the tables and the plot (default runs/sweep)")
    a("--learning-rate", metavar="A,B,...", help=f"rates to try (default {COARSE_RATES})")
    a("--momentum", metavar="A,B,...", help="momentum μ values (momentum, nesterov, rmsprop)")
    a("--weight-decay", metavar="A,B,...", help="decoupled weight decay λ values")
    a(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=A,B,...",
        help="any other numeric optimizer argument, e.g. b1=0.8,0.9 (repeatable)",
    )
    a("--seeds", default="1", help="N seeds from --seed on, or a list such as 0,5,7 (default 1)")
    a("--folds", type=int, help="k-fold cross-validation on the training split (lecture 03)")
    a("--refine", action="store_true", help="then sweep a finer grid around the best")
    a("--refine-points", type=int, default=5, help="values per refined parameter (5)")
    a("--refine-factor", type=float, default=3.0, help="reach beyond a grid end (3)")
    a(
        "--host-devices",
        type=int,
        metavar="N",
        help="on a machine without an accelerator, split the CPU into N devices so that the "
        "runs spread over its cores (XLA's host device count; e.g. the number of cores)",
    )


def _hint_host_devices(devices: int) -> None:
    """One CPU device on a machine with several cores: say how to use them all."""
    import os

    import jax

    cores = os.cpu_count() or 1
    if devices == 1 and cores > 1 and jax.devices()[0].platform == "cpu":
        print(f"(one CPU device: --host-devices {cores} spreads the runs over {cores} cores)")


def _split_host(n: int) -> None:
    """``--host-devices N``: N CPU devices, set before JAX starts its CPU backend."""
    import os

    import jax

    if n < 1:
        raise ConfigError(f"--host-devices must be >= 1, got {n}")
    flag = "--xla_force_host_platform_device_count"
    kept = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith(flag)]
    os.environ["XLA_FLAGS"] = " ".join([*kept, f"{flag}={n}"])
    if len(jax.devices("cpu")) != n:
        raise ConfigError(
            f"--host-devices: JAX's CPU backend had started before the flag was read; set "
            f"XLA_FLAGS={flag}={n} before starting Python instead"
        )


def _numbers(flag: str, raw: str) -> list[float]:
    try:
        values = [float(v) for v in str(raw).split(",") if v.strip()]
    except ValueError as err:
        raise ConfigError(
            f"{flag}: expected numbers separated by commas, such as 0.1,0.01, got {raw!r}"
        ) from err
    if not values or not all(math.isfinite(v) for v in values):
        raise ConfigError(f"{flag}: expected finite numbers, got {raw!r}")
    return values


def _seeds(raw: str) -> int | list[int]:
    try:
        values = [int(v) for v in str(raw).split(",") if v.strip()]
    except ValueError as err:
        raise ConfigError(
            f"--seeds: expected a count such as 3 or a list such as 0,5,7, got {raw!r}"
        ) from err
    if not values or min(values) < 0 or (len(values) == 1 and values[0] < 1):
        raise ConfigError(f"--seeds: expected a count >= 1 or seeds >= 0, got {raw!r}")
    return values[0] if len(values) == 1 and "," not in str(raw) else values


def _grid(args: argparse.Namespace) -> dict[str, list[float]]:
    """The grid from the list flags; a single value is left in ``args`` for the base run."""
    from optlab.cli._flags import parse_pairs

    grid: dict[str, list[float]] = {}
    for flag in LIST_FLAGS:
        raw = getattr(args, flag)
        if raw is None:
            continue
        values = _numbers("--" + flag.replace("_", "-"), raw)
        if len(values) == 1:
            setattr(args, flag, values[0])
        else:
            grid[flag] = values
            setattr(args, flag, None)
    for key, raw in parse_pairs("--grid", args.grid).items():
        text = ",".join(map(str, raw)) if isinstance(raw, list) else str(raw)
        grid[key] = _numbers(f"--grid {key}", text)
    if not grid and args.learning_rate is None:
        grid["learning_rate"] = _numbers("--learning-rate", COARSE_RATES)
    return grid


def _write(result: Any, out: pathlib.Path, name: str) -> None:
    from optlab.lab import plot_sweep

    result.to_csv(out / f"{name}.csv")
    result.to_csv(out / f"{name}_summary.csv", summary=True)
    plot_sweep(result, out / f"{name}.png")
    print(f"wrote {out}/{name}.csv, {name}_summary.csv and {name}.png")


def run(args: argparse.Namespace) -> int:
    from optlab.cli._flags import config_from_args, make_folder, output_folder
    from optlab.lab import refine, sweep

    if args.host_devices is not None:
        _split_host(args.host_devices)
    grid = _grid(args)
    seeds = _seeds(args.seeds)
    cfg = config_from_args(args)
    if args.refine and (args.refine_points < 1 or not args.refine_factor > 1):
        raise ConfigError("--refine-points must be >= 1 and --refine-factor > 1")
    out = output_folder(args.out, "runs/sweep")
    result = sweep(cfg, grid, seeds=seeds, folds=args.folds)
    print(result.format())
    print(f"({result.seconds:.1f} s on {result.devices} device(s))")
    _hint_host_devices(result.devices)
    make_folder(out)
    _write(result, out, "sweep")
    if args.refine:
        try:
            fine_grid = refine(result, args.refine_factor, args.refine_points)
        except ValueError as err:
            raise ConfigError(f"--refine: {err}") from err
        shown = ", ".join(f"{k}: {', '.join(f'{v:g}' for v in vs)}" for k, vs in fine_grid.items())
        print(f"\nrefined grid around the best: {shown}")
        fine = sweep(cfg, fine_grid, seeds=seeds, folds=args.folds)
        print(fine.format())
        _write(fine, out, "sweep_refined")
    return 0
