"""``optlab plan``: what each parallel strategy costs per device, from shapes only."""

from __future__ import annotations

import argparse
from typing import Any

from optlab import config as config_lib
from optlab.cli._flags import add_model_arg, import_from_cwd, parse_pairs
from optlab.errors import ConfigError, MissingExtraError
from optlab.parallel import STRATEGIES

_NEED_MODEL = ("tp", "dp+tp", "krizhevsky")  # their default rules split on "model"


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "plan",
        help="print per-device bytes of params, gradients and optimizer state per strategy",
        description="Build the model's and the optimizer's abstract state (shapes only, "
        "nothing compiled) and print, for each parallel strategy on the mesh, the bytes one "
        "device holds, and the arrays that fall back to replication. The mesh is abstract "
        "(axis sizes, no devices): any mesh can be planned on any machine, e.g. --mesh "
        "data=4,model=2 on a laptop with one device.",
    )
    a = p.add_argument
    a("--model", default="mlp", help="mlp (default), cnn or transformer")
    a("--dataset", default="digits", help="gives the input shape and classes (default digits)")
    a("--data-dir", help="folder holding local MNIST files (IDX or mnist.npz)")
    add_model_arg(p)
    a(
        "--optimizer",
        default="adam",
        help="as `optlab train --optimizer` (default adam; package.module:function imports it)",
    )
    a("--mesh", help="the mesh, e.g. data=4,model=2 or data=-1 (default: one device)")
    a(
        "--devices",
        type=int,
        metavar="N",
        help="the device count to plan for: fills in a -1 axis of --mesh, whose sizes must "
        "then divide N (default: this machine's device count for a -1 axis; otherwise the "
        "mesh is exactly the sizes given)",
    )
    a(
        "--strategy",
        action="append",
        choices=STRATEGIES,
        help="a strategy to plan (repeatable; default all)",
    )


def abstract_params(cfg: config_lib.RunConfig) -> Any:
    """The model's params as ``jax.ShapeDtypeStruct`` (``jax.eval_shape`` of its init)."""
    import jax
    import jax.numpy as jnp

    from optlab.data import load_dataset
    from optlab.models import create_model

    dc, mc = cfg.data, cfg.model
    try:
        dataset = load_dataset(dc.dataset, data_dir=dc.data_dir, val_fraction=dc.val_fraction)
    except (ValueError, MissingExtraError) as err:
        raise ConfigError(f"--dataset {dc.dataset}: {err}") from err
    classes = dataset.num_classes if dataset.task == "classification" else 1
    options = {"activation": mc.activation, "init": mc.init, **mc.options}
    try:
        model = create_model(
            mc.model, num_classes=classes, input_shape=dataset.input_shape, **options
        )
    except (ValueError, TypeError) as err:
        raise ConfigError(f"--model {mc.model}: {err}") from err
    sample = jax.ShapeDtypeStruct((1, *dataset.input_shape), jnp.float32)
    key = jax.random.key(0)
    variables = jax.eval_shape(lambda x: model.init({"params": key}, x, train=False), sample)
    return variables["params"]


def _mesh(abstract_mesh: Any, spec: str | None, devices: int | None) -> Any:
    """``abstract_mesh`` with its errors naming ``--devices`` instead of the argument."""
    import jax

    if devices is not None and devices < 1:
        raise ConfigError(f"--devices: the device count must be a positive integer, got {devices}")
    try:
        return abstract_mesh(spec, devices=devices)
    except ConfigError as err:
        if devices is not None or "-1" not in str(spec):
            raise
        n = jax.device_count()
        raise ConfigError(
            f"{err} (-1 took this machine's {n} device{'s' * (n != 1)}: set --devices N to "
            "plan for N)"
        ) from err


def run(args: argparse.Namespace) -> int:
    from optlab.parallel import abstract_mesh, plan

    mesh = _mesh(abstract_mesh, args.mesh, args.devices)
    cfg = config_lib.RunConfig()
    cfg.model.model, cfg.data.dataset, cfg.data.data_dir = args.model, args.dataset, args.data_dir
    cfg.model.options.update(parse_pairs("--model-arg", args.model_arg))
    cfg.optimizer.optimizer = args.optimizer
    if config_lib.is_import_path(args.optimizer):
        import_from_cwd()  # typed by the user: their own module may live here
    params = abstract_params(cfg)
    tx, _ = config_lib.build_optimizer(cfg.optimizer, total_steps=1)
    note = ""
    if args.strategy:
        strategies = tuple(dict.fromkeys(args.strategy))
    elif "model" in mesh.axis_names:
        strategies = STRATEGIES
    else:
        strategies = tuple(s for s in STRATEGIES if s not in _NEED_MODEL)
        note = f"({', '.join(_NEED_MODEL)} need a model axis: e.g. --mesh data=-1,model=2)"
    table = plan(params, tx, mesh, strategies)
    print(f"{cfg.model.model} on {cfg.data.dataset}, {cfg.optimizer.optimizer}")
    print(table)
    if note:
        print(note)
    return 0
