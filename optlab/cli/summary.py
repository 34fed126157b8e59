"""``optlab summary``: a model's per-layer parameters and FLOPs (lecture 04's table)."""

from __future__ import annotations

import argparse
from typing import Any

from optlab import config as config_lib
from optlab.cli._flags import add_allow_imports, add_model_arg, import_from_cwd, parse_pairs
from optlab.errors import ConfigError

_MODEL_FLAGS = ("model", "dataset", "data_dir", "activation", "init")


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "summary",
        help="print a model's per-layer parameters and FLOPs (lecture 04's table)",
        description="Build the model as `optlab train` would with these flags (or as a "
        "trained run's config.json says) and print its per-layer output shapes, parameters "
        "and FLOPs.",
    )
    a = p.add_argument
    a("--run", help="summarize this run folder's model (its config.json)")
    a(
        "--optimizer",
        metavar="MODULE:FUNCTION",
        help="with --run, for a run made with --optimizer package.module:function: that value "
        "again, to import it (checked against the run's config.json)",
    )
    add_allow_imports(p, "--run's config.json")
    a("--model", help="mlp (default), cnn or transformer")
    a("--dataset", help="gives the input shape and classes (default digits)")
    a("--data-dir", help="folder holding local MNIST files (IDX or mnist.npz)")
    a("--activation", help="sigmoid, tanh, relu, leaky_relu, prelu")
    a("--init", help="constant, normal, xavier, xavier_simple, he")
    add_model_arg(p)
    a("--batch", type=int, default=1, help="batch size the FLOPs are counted for (default 1)")
    a("--xla", action="store_true", help="also compile once and print XLA's FLOP count")


def summary_config(args: argparse.Namespace) -> config_lib.RunConfig:
    """The RunConfig whose model ``optlab summary`` prints."""

    if args.run is not None:
        given = [f"--{f.replace('_', '-')}" for f in _MODEL_FLAGS if getattr(args, f) is not None]
        if args.model_arg:
            given.append("--model-arg")
        if given:
            raise ConfigError(
                f"--run: cannot be combined with {', '.join(given)}; the run's config.json "
                "fixes the model (drop --run to try other settings)"
            )
        # The folder's config is data: an import path in it needs the user's word.
        cfg = config_lib.RunConfig.from_run_folder(
            args.run, allow_imports=args.allow_imports, optimizer=args.optimizer
        )
        if config_lib.is_import_path(args.optimizer):
            import_from_cwd()
        return cfg
    if args.optimizer is not None or args.allow_imports:
        raise ConfigError("--optimizer and --allow-imports go with --run (a run's optimizer)")
    cfg = config_lib.RunConfig()
    for flag in _MODEL_FLAGS:
        value = getattr(args, flag)
        if value is not None:
            section = cfg.data if flag in ("dataset", "data_dir") else cfg.model
            setattr(section, flag, value)
    cfg.model.options.update(parse_pairs("--model-arg", args.model_arg))
    return cfg


def run(args: argparse.Namespace) -> int:
    from optlab.models import summary
    from optlab.train.setup import build_setup

    if args.batch < 1:
        raise ConfigError(f"--batch must be a positive integer, got {args.batch}")
    cfg = summary_config(args)
    setup = build_setup(cfg)  # the model exactly as `optlab train` builds it, flags checked
    dataset = setup.dataset
    table = summary(setup.model, dataset.input_shape, batch=args.batch, xla=args.xla)
    classes = f"{dataset.num_classes} classes" if dataset.num_classes else "regression"
    print(f"{cfg.model.model} on {cfg.data.dataset} ({classes})")
    print(table)
    return 0
