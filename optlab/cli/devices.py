"""``optlab devices``: the platform, devices, processes and the mesh a run would use."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "devices",
        help="print the platform, devices, processes and the mesh a run would use",
        description="Print jax's platform, device kinds and count, this process's index "
        "among the processes, and the mesh `optlab train --mesh SPEC` would build.",
    )
    p.add_argument("--mesh", help="a mesh to check, e.g. data=4,model=2 (default: one device)")


def run(args: argparse.Namespace) -> int:
    from optlab.parallel import describe_devices, make_mesh

    print(describe_devices(make_mesh(args.mesh)))
    return 0
