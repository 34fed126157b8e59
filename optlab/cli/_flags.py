"""The flags shared by several commands, defined once: the run-config flags of ``train``,
``doctor``, ``lr-find`` and ``sweep`` (read back by ``config_from_args``), ``--model-arg``,
and ``--optimizer``/``--allow-imports`` of the commands that read a run folder.

The security rule: a config file (``--config``) and a run folder's ``config.json`` are data.
An import path (``--optimizer package.module:function``) imports, and so runs, that module's
code; it is honoured when typed on the command line, and from a file only with
``--allow-imports``. A flag's value overrides the file's and is the user's own.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
from typing import Any

import optlab
from optlab import config as config_lib
from optlab.errors import ConfigError

# flag -> (section, field)
FIELDS = {
    "dataset": ("data", "dataset"),
    "data_dir": ("data", "data_dir"),
    "tokenizer": ("data", "tokenizer"),
    "vocab_size": ("data", "vocab_size"),
    "batch_size": ("data", "batch_size"),
    "val_fraction": ("data", "val_fraction"),
    "mode": ("data", "mode"),
    "model": ("model", "model"),
    "activation": ("model", "activation"),
    "init": ("model", "init"),
    "optimizer": ("optimizer", "optimizer"),
    "learning_rate": ("optimizer", "learning_rate"),
    "schedule": ("optimizer", "schedule"),
    "weight_decay": ("optimizer", "weight_decay"),
    "clip_norm": ("optimizer", "clip_norm"),
    "opt_state_dtype": ("optimizer", "state_dtype"),
    "epochs": ("train", "epochs"),
    "steps": ("train", "steps"),
    "seed": ("train", "seed"),
    "accumulate": ("train", "accumulate"),
    "log_every": ("train", "log_every"),
    "eval_every": ("train", "eval_every"),
    "checkpoint_every": ("train", "checkpoint_every"),
    "early_stopping": ("train", "early_stopping"),
    "monitor": ("train", "monitor"),
    "nonfinite": ("train", "nonfinite"),
    "precision": ("train", "precision"),
    "mesh": ("train", "mesh"),
    "strategy": ("train", "strategy"),
    "parallel": ("train", "parallel"),
    "remat": ("train", "remat"),
}

# config fields that several flags' values go into, or set by switches
OTHER_FIELDS = {
    "opt_arg": ("optimizer", "args"),
    "schedule_arg": ("optimizer", "schedule_args"),
    "model_arg": ("model", "options"),
    "augment": ("data", "augment"),
    "batch_growth": ("data", "batch_growth"),
    "tensorboard": ("train", "tensorboard"),
    "profile": ("train", "profile"),
}
FLAG_OF = {
    f"{section}.{field}": "--" + flag.replace("_", "-")
    for flag, (section, field) in {**FIELDS, **OTHER_FIELDS}.items()
}
_FIELD_NAME = re.compile(r"\b(?:data|model|optimizer|train)\.[a-z_]+\b")
# A message about a file's content begins with the file's name: "--config cfg.yaml: ..."
_ABOUT_A_FILE = re.compile(r"^(?:--config )?.*?\.(?:json|ya?ml): ", re.IGNORECASE)


def to_flags(message: str) -> str:
    """A message of the Python API, which names config fields (``data.batch_size``), as
    the command line says it: with the flags (``--batch-size``). A message about a config
    file's content (it begins with the file's name) keeps the field names: they are what
    the file says."""
    if _ABOUT_A_FILE.match(message):
        return message
    return _FIELD_NAME.sub(lambda m: FLAG_OF.get(m.group(0), m.group(0)), message)


def add_run_config_args(p: argparse.ArgumentParser) -> None:
    """The flags that fill a RunConfig (read back by ``config_from_args``); shared by
    ``train``, ``doctor``, ``lr-find`` and ``sweep``."""
    a = p.add_argument
    a("--config", help="a JSON or YAML run config (data only); flags override it")
    add_allow_imports(p)
    a("--out", help="run folder (default runs/default); run again to resume it")
    a(
        "--dataset",
        help="digits, mnist1d, mnist (needs --data-dir), mnist5k, synthetic_linear, "
        "synthetic_logistic, spirals; for --model gpt: pystdlib, text or tokens (--data-dir)",
    )
    a(
        "--data-dir",
        help="folder holding local MNIST files (IDX or mnist.npz); the text file or folder of "
        "--dataset text; the prepare-text folder of --dataset tokens",
    )
    a("--tokenizer", choices=["byte", "bpe"], help="token data from text: byte (256) or bpe")
    a("--vocab-size", type=int, help="the BPE vocabulary to train (default 1024)")
    a("--batch-size", type=int, help="examples per step (default 64)")
    a(
        "--batch-growth",
        metavar="STEP:SIZE,...",
        help="grow the batch in phases (lecture 04), e.g. 0:32,1000:256; each size compiles once",
    )
    a("--val-fraction", type=float, help="share of the training data held out (default 0.1)")
    a(
        "--mode",
        choices=["minibatch", "full", "online"],
        help="mini-batch SGD, full-batch GD, or online SGD with batch 1 (lectures 04, 05)",
    )
    a(
        "--augment",
        action="append",
        help="on-device augmentation op (repeatable): flip, crop, color_jitter, affine",
    )
    a("--model", help="mlp, cnn or transformer")
    a("--activation", help="sigmoid, tanh, relu, leaky_relu, prelu (lecture 03)")
    a("--init", help="constant, normal, xavier, xavier_simple, he (lecture 03)")
    add_model_arg(p)
    a(
        "--optimizer",
        help=f"{', '.join(optlab.optimizer_names())}, or your own as package.module:function "
        "(called with learning_rate=...; a module in the current directory is found after the "
        "installed packages)",
    )
    a("--learning-rate", type=float, help="the (peak) learning rate (default 1e-3)")
    a("--momentum", type=float, help="μ of momentum/nesterov, rmsprop's momentum")
    a("--momentum-form", help="momentum's form: heavy_ball, ema or velocity")
    a(
        "--opt-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other optimizer hyper-parameter, e.g. b2=0.99 (repeatable)",
    )
    a(
        "--schedule",
        help="the learning rate's schedule, named as in optlab.schedules; in parentheses the "
        f"--schedule-arg each needs: {optlab.schedules_help()}",
    )
    a(
        "--schedule-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a schedule argument, e.g. warmup_steps=100 (repeatable)",
    )
    a("--weight-decay", type=float, help="decoupled weight decay λ (AdamW's own for adamw)")
    a("--clip-norm", type=float, help="clip gradients to this global norm")
    a("--opt-state-dtype", help="store the optimizer state as float32, bfloat16 or float16")
    a("--epochs", type=int, help="passes over the training data (default 20)")
    a("--steps", type=int, help="updates to make (overrides --epochs)")
    a("--seed", type=int, help="the one seed: data order, init, dropout (default 0)")
    a("--accumulate", type=int, help="gradient accumulation: K micro-batches per update")
    a("--log-every", type=int, help="steps between metric pulls and log lines (default 50)")
    a("--eval-every", type=int, help="steps between validations (default: each epoch)")
    a("--checkpoint-every", type=int, help="steps between checkpoints (default: each epoch)")
    a(
        "--early-stopping",
        type=int,
        metavar="PATIENCE",
        help="stop after this many validations without improving --monitor",
    )
    a("--monitor", help="metric for early stopping and the best checkpoint (val_accuracy)")
    a(
        "--nonfinite",
        choices=["stop", "skip"],
        help="on a NaN/Inf gradient: stop (default) or skip that step",
    )
    a(
        "--precision",
        help="fp32 (default); bf16: bfloat16 compute with float32 master "
        "weights (the TPU habit); fp16: float16 compute with dynamic loss scaling (GPUs "
        "without bfloat16, e.g. Colab's T4)",
    )
    a("--profile", action="store_true", help="write a jax.profiler trace of a few steps")
    a("--mesh", help="device mesh, e.g. data=4,model=2 or data=-1 (default: one device)")
    a(
        "--strategy",
        help="dp (default), fsdp, tp, dp+tp, zero1 or krizhevsky: how params "
        "and optimizer state are laid out on the mesh",
    )
    a(
        "--parallel",
        help="jit (default): one program with shardings on the mesh; pmap: jax.pmap over the "
        "mesh's devices (replicated state, gradients averaged with lax.pmean; --strategy dp)",
    )
    a(
        "--remat",
        action="store_true",
        default=None,
        help="rematerialize: recompute each layer's activations in the backward pass instead "
        "of keeping them (less memory, one more forward pass; mlp, cnn, transformer)",
    )
    a(
        "--tensorboard",
        action="store_true",
        help="also write TensorBoard event files to OUT/tensorboard "
        "(pip install 'optlab[tensorboard]')",
    )


def add_allow_imports(parser: argparse.ArgumentParser, what: str = "--config") -> None:
    """``--allow-imports``: the opt-in that lets a file's import path import its module."""
    parser.add_argument(
        "--allow-imports",
        action="store_true",
        help=f"let {what} name an optimizer as package.module:function and import it, which "
        "runs that module's code: only for a file you trust (an import path typed as "
        "--optimizer needs no opt-in)",
    )


def add_model_arg(parser: argparse.ArgumentParser) -> None:
    """``--model-arg KEY=VALUE`` (repeatable), shared by train, summary and plan."""
    parser.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a model option, e.g. widths=[256,256] or dropout=0.2 (repeatable; several in "
        "one, comma-separated: n_layer=2,n_head=2)",
    )


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_PAIR_START = re.compile(r",(?=[A-Za-z_]\w*=)")  # "a=1,b=[2,3]" splits before b only


def split_pairs(pairs: list[str]) -> list[str]:
    """Values holding several pairs, ``n_layer=12,n_head=12``, as one pair each; a comma
    inside a value (``widths=[256,256]``, ``lr=1e-3,1e-2``) stays, since only a comma
    followed by ``NAME=`` starts a pair."""
    return [part for pair in pairs for part in _PAIR_START.split(pair)]


def parse_pairs(flag: str, pairs: list[str]) -> dict[str, Any]:
    """``["k=v", ...]`` (several per item too: `split_pairs`) as a dict, each value JSON
    when it parses (numbers, lists), a number when it reads as one (``.9``, ``5.``, ``+1``,
    which JSON lacks), else text."""
    out = {}
    for pair in split_pairs(pairs):
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag}: expected KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            text = raw.strip()
            if not _NUMBER.fullmatch(text):
                out[key] = raw
            else:
                out[key] = int(text) if text.lstrip("+-").isdigit() else float(text)
    return out


def output_folder(raw: str | None, default: str) -> pathlib.Path:
    """``--out`` of a command that writes tables and plots (sweep, lr-find), checked before
    the work (nothing written) as ``optlab train`` checks its own
    (``optlab.train.folder.check_out``), so that a bad folder is one line at once, not a
    traceback at the end."""
    from optlab.train import folder

    return folder.check_out(default if raw is None else raw, example=default)


def make_folder(out: pathlib.Path) -> None:
    """Creates ``output_folder``'s folder, or one line naming it and the cause."""
    from optlab.train import folder

    folder.create(out)


def import_from_cwd() -> None:
    """``--optimizer mymodule:fn``: let the import find ``mymodule.py`` in the current
    directory, after the installed packages (appended last to ``sys.path``). Only that
    flag, typed by the user, does this, or a config file loaded with ``--allow-imports``;
    an import path in any other file is refused before this."""
    import os
    import sys

    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)


def config_from_args(args: argparse.Namespace) -> config_lib.RunConfig:
    """The RunConfig the flags describe: ``--config``'s file, then each flag over it.

    The file is data: an import path in it is refused (one line, nothing imported) unless
    ``--allow-imports``, or ``--optimizer`` replaces it. Every value is type-checked."""
    if args.config:
        raw = config_lib.read_config_file(args.config)
        where = f"--config {args.config}"
        section = raw.get("optimizer")
        if args.optimizer is not None and isinstance(section, dict):
            raw = {**raw, "optimizer": {**section, "optimizer": args.optimizer}}  # the flag's
        allowed = getattr(args, "allow_imports", False)
        config_lib.check_imports(raw, where, allow_imports=allowed)
        cfg = config_lib.RunConfig.from_dict(raw, source=where)
    else:
        cfg = config_lib.RunConfig()
    if config_lib.is_import_path(args.optimizer or cfg.optimizer.optimizer):
        import_from_cwd()  # typed by the user, or a file they vouched for
    for flag, (section, field) in FIELDS.items():
        value = getattr(args, flag)
        if value is not None:
            setattr(getattr(cfg, section), field, value)
    if args.steps is not None and args.epochs is None:
        cfg.train.epochs = None
    if args.out is not None:
        cfg.out = args.out
    if args.augment:
        cfg.data.augment = list(args.augment)
    if args.batch_growth:
        try:
            cfg.data.batch_growth = [
                [int(a) for a in phase.split(":")] for phase in args.batch_growth.split(",")
            ]
        except ValueError as err:
            raise ConfigError(
                f"--batch-growth: expected STEP:SIZE,... such as 0:32,1000:256, "
                f"got {args.batch_growth!r}"
            ) from err
        if any(len(p) != 2 for p in cfg.data.batch_growth):
            raise ConfigError(
                f"--batch-growth: expected STEP:SIZE pairs, got {args.batch_growth!r}"
            )
    if args.profile:
        cfg.train.profile = True
    if args.tensorboard:
        cfg.train.tensorboard = True
    cfg.model.options.update(parse_pairs("--model-arg", args.model_arg))
    if args.schedule_arg:  # assigned, not updated in place: given, so a recipe's yields
        schedule_args = parse_pairs("--schedule-arg", args.schedule_arg)
        cfg.optimizer.schedule_args = {**cfg.optimizer.schedule_args, **schedule_args}
    opt_args = parse_pairs("--opt-arg", args.opt_arg)
    name = cfg.optimizer.optimizer
    if args.momentum is not None:
        key = {"momentum": "mu", "nesterov": "mu", "rmsprop": "momentum"}.get(name)
        if key is None:
            raise ConfigError(
                f"--momentum: the {name} optimizer has no momentum; use --optimizer momentum, "
                "nesterov or rmsprop (Adam's β1 is --opt-arg b1=...)"
            )
        opt_args[key] = args.momentum
    if args.momentum_form is not None:
        if name != "momentum":
            raise ConfigError("--momentum-form needs --optimizer momentum")
        opt_args["form"] = args.momentum_form
    if opt_args:
        cfg.optimizer.args = {**cfg.optimizer.args, **opt_args}
    cfg.validate()
    return cfg
