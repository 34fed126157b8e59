"""``optlab plan``: what each parallel strategy costs per device, from shapes only."""

from __future__ import annotations

import argparse
from typing import Any

from optlab import config as config_lib
from optlab.cli._flags import add_model_arg, import_from_cwd, parse_pairs
from optlab.errors import ConfigError, MissingExtraError
from optlab.parallel import STRATEGIES

_NEED_MODEL = ("tp", "dp+tp", "krizhevsky")  # their default rules split on "model"
_BLOCK_DEFAULT = 64  # optlab.train.lm.DEFAULT_BLOCK_SIZE, the LM recipe's (tested equal)
_VOCAB_DEFAULT = 256  # the byte tokenizer's vocabulary (tested equal)


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
    a("--model", default="mlp", help="mlp (default), cnn, transformer or gpt")
    a(
        "--dataset",
        help="gives a classifier's input shape and classes (default digits); a GPT reads no "
        "data (pystdlib, text or tokens name its recipe, which every token dataset shares)",
    )
    a("--data-dir", help="folder holding local MNIST files (IDX or mnist.npz)")
    add_model_arg(p)
    a(
        "--optimizer",
        help="as `optlab train --optimizer` (default adam, or the recipe's AdamW for --model "
        "gpt; package.module:function imports it)",
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
    a(
        "--batch-size",
        type=int,
        metavar="B",
        help="--model gpt: the global batch (sequences a step) whose activations are planned, "
        "split on the data axis (default: the data axis size, one sequence per device; "
        "activations grow linearly with it)",
    )
    p.epilog = (
        "--model gpt needs no data: --model-arg sets n_layer, n_head, d_model (default the "
        f"LM recipe's 4, 4, 128), block_size (default {_BLOCK_DEFAULT}) and vocab_size "
        f"(default {_VOCAB_DEFAULT}, the byte tokenizer's), e.g. GPT-2 small: --model-arg "
        "n_layer=12,n_head=12,d_model=768,block_size=1024,vocab_size=50304; "
        "dtype=bfloat16 plans bf16 activations."
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


def _positive(name: str, value: Any, example: str) -> int:
    if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        raise ConfigError(
            f"--model-arg {name}={value!r}: must be a positive integer, e.g. {name}={example}"
        )
    return value


def language_model(cfg: config_lib.RunConfig) -> Any:
    """The GPT of ``cfg.model.options`` (its recipe's values filled in), built as the
    trainer builds it but from no data: ``block_size`` [64] and ``vocab_size`` [256, the
    byte tokenizer's] come from the options."""
    from optlab.models import create_model

    options = dict(cfg.model.options)
    block = _positive("block_size", options.pop("block_size", _BLOCK_DEFAULT), "1024")
    vocab = _positive("vocab_size", options.pop("vocab_size", _VOCAB_DEFAULT), "50304")
    try:
        return create_model("gpt", num_classes=vocab, input_shape=(block,), **options)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"--model-arg: {err}") from err


def abstract_lm_params(model: Any) -> Any:
    """The GPT's params as ``jax.ShapeDtypeStruct`` (``jax.eval_shape`` of its init on
    int32 tokens): nothing is allocated, so a 1B model plans in seconds."""
    import jax
    import jax.numpy as jnp

    tokens = jax.ShapeDtypeStruct((1, model.block_size), jnp.int32)
    key = jax.random.key(0)
    return jax.eval_shape(lambda x: model.init({"params": key}, x, train=False), tokens)["params"]


def _describe(model: Any, params: Any) -> str:
    import math

    import jax

    count = sum(math.prod(x.shape) for x in jax.tree.leaves(params))
    fields = ("n_layer", "n_head", "d_model", "block_size", "vocab_size", "pos", "mlp")
    shape = ", ".join(f"{f}={getattr(model, f)}" for f in fields)
    tied = "tied" if model.tie_embeddings else "untied"
    return f"gpt ({count:,} params; {shape}, {tied} head)"


def _is_language(args: argparse.Namespace) -> bool:
    from optlab.train import lm

    token_data = lm.is_token_dataset(args.dataset)
    if args.model == "gpt" and args.dataset is not None and not token_data:
        raise ConfigError(
            f"--dataset {args.dataset}: --model gpt is a language model on token data; "
            f"use --dataset {' or '.join(lm.TOKEN_DATASETS)} (no data is read) or drop it"
        )
    if token_data and args.model != "gpt":
        raise ConfigError(
            f"--model {args.model}: --dataset {args.dataset} is token data for a language "
            "model; use --model gpt"
        )
    if args.model != "gpt" and args.batch_size is not None:
        raise ConfigError("--batch-size: activations are planned for --model gpt only; drop it")
    return args.model == "gpt"


def run(args: argparse.Namespace) -> int:
    from optlab.parallel import abstract_mesh, plan
    from optlab.parallel._plan import activation_plan

    language = _is_language(args)
    mesh = _mesh(abstract_mesh, args.mesh, args.devices)
    cfg = config_lib.RunConfig()
    cfg.model.model, cfg.data.data_dir = args.model, args.data_dir
    cfg.data.dataset = args.dataset or ("text" if language else "digits")
    cfg.model.options.update(parse_pairs("--model-arg", args.model_arg))
    if args.optimizer is not None:
        cfg.optimizer.optimizer = args.optimizer
    if config_lib.is_import_path(cfg.optimizer.optimizer):
        import_from_cwd()  # typed by the user: their own module may live here
    model = None
    if language:
        from optlab.train import lm

        cfg, sources = config_lib.resolve_recipe(cfg)  # the LM recipe: its shape and AdamW
        if sources["optimizer.args"] != "given" and args.optimizer is not None:
            cfg.optimizer.args = {}  # AdamW's b2 is no argument of another optimizer
        model = language_model(cfg)
        params = abstract_lm_params(model)
        tx, _ = config_lib.build_optimizer(
            cfg.optimizer, total_steps=cfg.train.steps or 1, decay_mask=lm.decay_mask
        )
    else:
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
    activations = None
    if model is not None:
        data = dict(mesh.shape).get("data", 1)
        batch = data if args.batch_size is None else args.batch_size
        if batch < 1 or batch % data:
            raise ConfigError(
                f"--batch-size {batch}: the global batch must be a positive multiple of the "
                f"mesh's data axis ({data}), e.g. --batch-size {data}"
            )
        activations = activation_plan(model, batch, mesh, table)
        print(f"{_describe(model, params)}, {cfg.optimizer.optimizer}")
    else:
        print(f"{cfg.model.model} on {cfg.data.dataset}, {cfg.optimizer.optimizer}")
    print(table)
    if activations is not None:
        print(activations)
    if note:
        print(note)
    return 0
