"""``optlab export``: a trained run as a serialized ``jax.export`` artifact."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "export",
        help="export a trained run for inference as a serialized jax.export artifact",
        description="Write <dest>/model.jaxexport (jax.export, weights baked in) and "
        "model.json from a run's newest good checkpoint. Lowering for cuda and tpu works on "
        "a CPU-only machine; running there needs those devices. ONNX/TFLite: out of scope.",
    )
    p.add_argument("--run", required=True, help="the run folder (optlab train --out)")
    p.add_argument("--dest", help="folder to write (default <run>/export)")
    p.add_argument(
        "--dtype",
        default="float32",
        help="weights' and compute number format: float32 (default), float16, bfloat16",
    )
    p.add_argument(
        "--platforms",
        default="cpu,cuda,tpu",
        help="comma-separated platforms to lower for (default cpu,cuda,tpu; also rocm)",
    )
    p.add_argument(
        "--batch", type=int, help="a fixed batch size (default: symbolic, any batch size)"
    )


def run(args: argparse.Namespace) -> int:
    from optlab.train.export import export_run

    path = export_run(
        args.run, dest=args.dest, dtype=args.dtype, platforms=args.platforms, batch=args.batch
    )
    print(f"optlab: exported {args.run} ({args.dtype}, {args.platforms}) to {path}")
    print(f"optlab: metadata in {path.parent / 'model.json'}")
    return 0
