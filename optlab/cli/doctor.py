"""``optlab doctor``: lecture 03's sanity checks on the run a config describes."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "doctor",
        help="lecture 03's sanity checks before a long run",
        description="Lecture 03's sanity checks on the run the flags describe (the same flags "
        "as `optlab train`): the initial loss against -log(1/C), overfitting a tiny subset, "
        "regularization raising the loss, and the gradient against finite differences. "
        "Prints PASS/FAIL with the numbers; exits 0 when all pass, 1 when one fails.",
    )
    from optlab.cli._flags import add_run_config_args

    add_run_config_args(p)
    d = p.add_argument_group("doctor").add_argument
    d(
        "--check",
        action="append",
        metavar="NAME",
        help="run only this check (repeatable): initial_loss, overfit_subset, "
        "regularization_raises_loss, gradient_check",
    )
    d("--subset", type=int, default=32, help="examples to overfit (default 32)")
    d("--overfit-steps", type=int, default=300, help="full-batch steps to overfit (default 300)")
    d("--l2", type=float, default=1e-2, help="λ of the L2 penalty λ‖θ‖² (default 0.01)")


def run(args: argparse.Namespace) -> int:
    from optlab.cli._flags import config_from_args
    from optlab.lab import doctor
    from optlab.lab._doctor import CHECKS

    cfg = config_from_args(args)
    report = doctor(
        cfg,
        subset=args.subset,
        overfit_steps=args.overfit_steps,
        l2=args.l2,
        checks=tuple(args.check) if args.check else CHECKS,
    )
    print(report)
    return 0 if report.passed else 1
