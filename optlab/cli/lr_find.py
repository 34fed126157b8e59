"""``optlab lr-find``: Leslie Smith's learning-rate range test from the command line."""

from __future__ import annotations

import argparse
from typing import Any

from optlab.errors import ConfigError


def add_parser(commands: Any) -> None:
    from optlab.cli._flags import add_run_config_args

    p = commands.add_parser(
        "lr-find",
        help="Leslie Smith's learning-rate range test",
        description="One short run whose learning rate grows exponentially from --min-lr to "
        "--max-lr, stopped when the smoothed loss diverges. Prints the suggested rate "
        "(the rate at the smoothed loss's minimum / 10) and writes lr_find.csv and "
        "lr_find.png into --out. The run's own --learning-rate and --schedule are ignored.",
        conflict_handler="resolve",  # --steps below replaces the train flag's help
    )
    add_run_config_args(p)
    a = p.add_argument
    a("--out", help="folder for lr_find.csv and lr_find.png (default runs/lr_find)")
    a("--min-lr", type=float, default=1e-7, help="the first rate (default 1e-7)")
    a("--max-lr", type=float, default=10.0, help="the last rate (default 10)")
    a("--steps", type=int, help="updates in the test (default 100)")
    a("--smoothing", type=float, default=0.98, help="β of the loss's moving average (0.98)")
    a(
        "--diverge-factor",
        type=float,
        default=4.0,
        help="stop once the smoothed loss exceeds this multiple of its best (default 4)",
    )


def run(args: argparse.Namespace) -> int:
    from optlab.cli._flags import config_from_args, make_folder, output_folder
    from optlab.lab import lr_find, plot_lr_find

    cfg = config_from_args(args)
    out = output_folder(args.out, "runs/lr_find")
    try:
        result = lr_find(
            cfg,
            min_lr=args.min_lr,
            max_lr=args.max_lr,
            steps=100 if args.steps is None else args.steps,
            smoothing=args.smoothing,
            diverge_factor=args.diverge_factor,
        )
    except ConfigError:
        raise
    except ValueError as err:  # the test's own arguments: --min-lr, --max-lr, ...
        raise ConfigError(str(err)) from err
    make_folder(out)
    result.to_csv(out / "lr_find.csv")
    plot_lr_find(result, out / "lr_find.png")
    lrs = result.learning_rates
    if result.diverged:
        how = f"stopped: the smoothed loss passed {args.diverge_factor:g}× its best"
    else:
        how = "never diverged: the best rate may lie above --max-lr"
    print(f"lr-find: {len(lrs)} steps from {lrs[0]:.3g} to {lrs[-1]:.3g} ({how})")
    print(
        f"lowest smoothed loss {result.smoothed_losses.min():.4f} at α = {result.min_loss_lr:.3g}"
    )
    print(f"steepest descent at α = {result.steepest_lr:.3g}")
    print(f"suggested learning rate: {result.suggestion:.3g}  (the minimum's rate / 10)")
    print(f"wrote {out}/lr_find.csv and {out}/lr_find.png")
    return 0
