"""The ``optlab`` command. User errors print one line and exit with status 2."""

from __future__ import annotations

import argparse
import sys

import optlab


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="optlab", description="Optimizers written as the lectures write them."
    )
    parser.add_argument("--version", action="version", version=f"optlab {optlab.__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="print every optimizer's path on lecture 02's quadratic 5x² + 2xy + 3y²"
    )
    demo.add_argument("--steps", type=int, default=50, help="updates per optimizer (default 50)")
    demo.add_argument(
        "--learning-rate",
        type=float,
        default=None,
        help="one rate for all (default: per optimizer)",
    )
    demo.add_argument(
        "--optimizer", action="append", default=None, help="restrict to this optimizer (repeatable)"
    )
    from optlab._cli_parallel import add_devices_parser, add_plan_parser
    from optlab._cli_tools import add_export_parser, add_summary_parser
    from optlab._cli_train import add_train_parser

    add_train_parser(commands)
    add_export_parser(commands)
    add_summary_parser(commands)
    add_devices_parser(commands)
    add_plan_parser(commands)
    from optlab._cli_doctor import add_doctor_parser
    from optlab._cli_sweep import add_lr_find_parser, add_sweep_parser

    add_doctor_parser(commands)
    add_lr_find_parser(commands)
    add_sweep_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in (
        "train",
        "export",
        "summary",
        "devices",
        "plan",
        "doctor",
        "lr-find",
        "sweep",
    ):
        from optlab import _cli_doctor, _cli_parallel, _cli_sweep, _cli_tools, _cli_train
        from optlab.config import ConfigError

        command = {
            "train": _cli_train.run_train,
            "export": _cli_tools.run_export,
            "summary": _cli_tools.run_summary,
            "devices": _cli_parallel.run_devices,
            "plan": _cli_parallel.run_plan,
            "doctor": _cli_doctor.run_doctor,
            "lr-find": _cli_sweep.run_lr_find,
            "sweep": _cli_sweep.run_sweep,
        }[args.command]
        try:
            return command(args)
        except ConfigError as err:  # the user's mistakes: one line, exit 2; bugs: a traceback
            print(f"optlab: error: {err}", file=sys.stderr)
            return 2
    try:
        if args.steps < 1:
            raise ValueError(f"--steps must be >= 1, got {args.steps}")
        from optlab._demo import run_demo

        run_demo(args.steps, args.learning_rate, args.optimizer)
    except ValueError as err:
        print(f"optlab: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
