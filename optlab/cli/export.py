"""``optlab export``: a trained run as a serialized ``jax.export`` artifact.

A run folder may come from anyone: its ``config.json`` is data. A run made with
``--optimizer package.module:function`` is exported only when that flag is given again (the
same value) or ``--allow-imports``; otherwise one line, exit 2, nothing imported.
"""

from __future__ import annotations

import argparse
from typing import Any

from optlab.cli._flags import add_allow_imports, import_from_cwd

_LOADING = """\
The artifact takes RAW dataset rows and applies the whole preprocessing of training itself
(reshape, the source's scaling: digits /16, MNIST /255, and the standardization with the
training split's mean and std): do not scale or standardize inputs yourself. model.json's
"input" says what the rows are (shape, "b" = any batch size; dtype float32; their raw
scale) and lists every step applied, with the statistics; "output" is float32 logits.

Loading it (any JAX program; no optlab needed), e.g. a digits run:

  import jax, numpy as np
  from sklearn.datasets import load_digits
  blob = open("runs/default/export/model.jaxexport", "rb").read()
  exported = jax.export.deserialize(bytearray(blob))
  rows = load_digits().data[:5].astype(np.float32)  # raw: (5, 64), values 0..16
  logits = exported.call(rows)                      # (5, 10) float32
  probabilities = jax.nn.softmax(logits, axis=-1)

or optlab.train.export.load_exported(path)(rows), which converts rows to float32.
"""


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "export",
        help="export a trained run for inference as a serialized jax.export artifact",
        description="Write <dest>/model.jaxexport (jax.export, weights baked in) and\n"
        "model.json from a run's newest good checkpoint. Lowering for cuda and tpu works\n"
        "on a CPU-only machine; running there needs those devices. ONNX/TFLite: out of\n"
        "scope.",
        epilog=_LOADING,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    p.add_argument(
        "--optimizer",
        metavar="MODULE:FUNCTION",
        help="a run made with --optimizer package.module:function: that value again, to "
        "import it (checked against the run's config.json)",
    )
    add_allow_imports(p, "the run's config.json")


def run(args: argparse.Namespace) -> int:
    from optlab.config import RunConfig, is_import_path
    from optlab.train.export import export_run

    # Refuses an import path the user did not vouch for, before anything imports it.
    RunConfig.from_run_folder(args.run, allow_imports=args.allow_imports, optimizer=args.optimizer)
    if is_import_path(args.optimizer):
        import_from_cwd()
    path = export_run(
        args.run,
        dest=args.dest,
        dtype=args.dtype,
        platforms=args.platforms,
        batch=args.batch,
        allow_imports=args.allow_imports,
        optimizer=args.optimizer,
    )
    print(f"optlab: exported {args.run} ({args.dtype}, {args.platforms}) to {path}")
    print(f"optlab: metadata in {path.parent / 'model.json'}")
    return 0
