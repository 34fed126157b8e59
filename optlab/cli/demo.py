"""``optlab demo``: every optimizer's path on lecture 02's quadratic 5x² + 2xy + 3y²."""

from __future__ import annotations

import argparse
from typing import Any

from optlab.errors import ConfigError


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "demo", help="print every optimizer's path on lecture 02's quadratic 5x² + 2xy + 3y²"
    )
    p.add_argument("--steps", type=int, default=50, help="updates per optimizer (default 50)")
    p.add_argument(
        "--learning-rate",
        type=float,
        default=None,
        help="one rate for all (default: per optimizer)",
    )
    p.add_argument(
        "--optimizer", action="append", default=None, help="restrict to this optimizer (repeatable)"
    )


def run(args: argparse.Namespace) -> int:
    from optlab._demo import run_demo

    if args.steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {args.steps}")
    try:
        run_demo(args.steps, args.learning_rate, args.optimizer)
    except ValueError as err:  # the optimizers' own checks of the rate
        raise ConfigError(str(err)) from err
    return 0
