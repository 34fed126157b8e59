"""The one factory that turns the optimizer section of a run config into its parts: the
learning rate (a float or a schedule) and the transformation (clipping, the optimizer,
decoupled weight decay, the state dtype)."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import jax
import optax

import optlab
from optlab import schedules
from optlab.config._sections import OptimizerConfig, optimizer_name
from optlab.errors import ConfigError

# Optimizers by name (``optlab.OPTIMIZERS``, the one registry); a user's own by
# "package.module:function" or, from Python, the factory itself.
OPTIMIZERS = optlab.OPTIMIZERS
# Schedules by name: each is its function's name in optlab.schedules ("constant": the rate).
SCHEDULES = schedules.SCHEDULES


_NUMBERS = {"int", "float"}


def _takes(param: inspect.Parameter) -> str | None:
    """ "number" or "bool" when the parameter's default (or, without one, its annotation:
    ``float``, ``int | None``) says it takes one; None when it does not say."""
    default = param.default
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int | float):
        return "number"
    if default is not inspect.Parameter.empty and default is not None:
        return None
    note = param.annotation
    text = note if isinstance(note, str) else getattr(note, "__name__", str(note))
    parts = {part.strip() for part in text.split("|")} - {"None"}
    return "number" if parts and parts <= _NUMBERS else None


def _check_types(owner: str, flag: str, params: dict, extra: dict) -> None:
    """Refuses text (or true/false) where the factory's parameter takes a number, and text
    where it takes true/false: ``--opt-arg b1=abc`` is a mistake to name now, not a string
    to hand to the optimizer, which would fail at the first step (or never)."""
    for key, value in extra.items():
        if key not in params:
            continue
        takes = _takes(params[key])
        if takes == "number" and isinstance(value, str | bool):
            default = params[key].default
            example = default if isinstance(default, int | float) else 1
            what = "text" if isinstance(value, str) else "true/false"
            raise ConfigError(
                f"{flag}: {owner}'s {key} takes a number, got {value!r} ({what}); e.g. "
                f"{key}={example}"
            )
        if takes == "bool" and isinstance(value, str):
            raise ConfigError(
                f"{flag}: {owner}'s {key} takes true or false, got {value!r} (text); e.g. "
                f"{key}={str(params[key].default).lower()}"
            )


def _call_with(owner: str, flag: str, fn, positional: dict, extra: dict):
    """``fn(**positional, **extra)``, the user's ``extra`` checked against ``fn``'s
    signature first: unknown names and text where a number is due are ``ConfigError``s
    naming ``flag`` (a config field, shown as its flag on the command line) and the key."""
    params = inspect.signature(fn).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = [k for k in extra if k not in params and not accepts_any]
    if unknown:
        known = [k for k in params if k not in positional]
        raise ConfigError(f"{flag}: {owner} has no argument(s) {unknown}; it takes {known}")
    _check_types(owner, flag, params, extra)
    try:
        return fn(**positional, **extra)
    except TypeError as err:
        raise ConfigError(f"{flag}: {owner}: {err}") from err


def build_schedule(cfg: OptimizerConfig, total_steps: int):
    """The learning rate: a float (``constant``) or a schedule from ``optlab.schedules``."""
    if cfg.learning_rate is None or not cfg.learning_rate > 0:
        raise ConfigError(
            f"optimizer.learning_rate must be > 0, got {cfg.learning_rate!r}. Use e.g. 1e-3."
        )
    try:
        fn = schedules.get_schedule(cfg.schedule)
    except ValueError:
        raise ConfigError(
            f"optimizer.schedule: unknown {cfg.schedule!r}; choose from "
            f"{schedules.schedules_help()} (in parentheses: the optimizer.schedule_args each needs)"
        ) from None
    if fn is schedules.constant:
        if cfg.schedule_args:
            raise ConfigError("optimizer.schedule_args: the constant schedule takes no arguments")
        return cfg.learning_rate
    first = next(iter(inspect.signature(fn).parameters))
    positional = {first: cfg.learning_rate}
    args = dict(cfg.schedule_args)
    # Schedules with a horizon default to the run's length.
    for horizon in schedules.HORIZONS:
        if horizon in inspect.signature(fn).parameters and horizon not in args:
            args[horizon] = total_steps
    missing = [a for a in schedules.required_arguments(cfg.schedule) if a not in args]
    if missing:
        example = " ".join(f"optimizer.schedule_args {a}=..." for a in missing)
        raise ConfigError(
            f"optimizer.schedule {cfg.schedule} needs {', '.join(missing)}: {example}"
        )
    try:
        return _call_with(cfg.schedule, "optimizer.schedule_args", fn, positional, args)
    except ConfigError:
        raise
    except ValueError as err:
        raise ConfigError(f"optimizer.schedule {cfg.schedule}: {err}") from err


def resolve_optimizer(name: Any) -> Any:
    """The factory a config's ``optimizer`` names: a registered name, ``module:function``
    (imported), or the factory itself.

    This is the one place a config imports code. It trusts ``name``: a config read from disk
    reaches it only through ``RunConfig.from_file``/``from_run_folder``, which refuse an
    import path unless the user allowed it (``--allow-imports``) or gave it again on the
    command line."""
    if callable(name):
        return name
    if name in OPTIMIZERS:
        return OPTIMIZERS[name].factory
    if isinstance(name, str) and ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            return getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as err:
            raise ConfigError(
                f"optimizer.optimizer: cannot import {name!r} ({err}); give it as "
                "package.module:function, importable from the current directory or the "
                "installed packages"
            ) from err
    raise ConfigError(
        f"optimizer.optimizer: unknown {name!r}; choose from {', '.join(OPTIMIZERS)} "
        "or give your own as package.module:function"
    )


def assemble(
    cfg: OptimizerConfig, tx: Any, learning_rate: Any, weight_decay: Any, decay_mask: Any = None
) -> optax.GradientTransformationExtraArgs:
    """The trainer's chain around the optimizer ``tx``: clipping, then ``tx``, then
    decoupled weight decay at the same α_t (unless the optimizer is AdamW, which decays
    itself), the whole stored in ``cfg.state_dtype``. ``weight_decay`` may be an array
    (a sweep's value); the checks of concrete values are ``build_optimizer``'s."""
    # A transformation written the usual way, update(grads, state, params=None), is called
    # by the trainer with extra arguments (value=loss): optax's adapter drops those.
    parts = [optax.with_extra_args_support(tx)]
    if cfg.clip_norm is not None:
        parts.insert(0, optlab.clip_by_global_norm(cfg.clip_norm))
    if cfg.optimizer != "adamw" and (
        not isinstance(weight_decay, int | float) or weight_decay != 0
    ):
        parts.append(
            optlab.decoupled_weight_decay(
                weight_decay, learning_rate=learning_rate, mask=decay_mask
            )
        )
    tx = parts[0] if len(parts) == 1 else optax.chain(*parts)
    return tx if cfg.state_dtype is None else optlab.with_state_dtype(tx, cfg.state_dtype)


MATRIX_ARGUMENT = "muon_weight_dimension_numbers"


def matrix_dimension_numbers(axes: Any) -> Any:
    """A model's ``matrix_axes`` tree as Muon's ``MuonDimensionNumbers`` (None stays)."""
    return jax.tree.map(
        lambda a: None if a is None else optlab.MuonDimensionNumbers(*a),
        axes,
        is_leaf=lambda a: a is None or (isinstance(a, tuple) and len(a) == 2),
    )


def build_optimizer(
    cfg: OptimizerConfig, total_steps: int, *, matrices: Any = None, decay_mask: Any = None
) -> tuple[Any, Any]:
    """(transformation, learning_rate) from the config: clipping, then the optimizer with
    its schedule, then weight decay (AdamW's own, else decoupled after the step).

    ``matrices``: the model's ``optlab.models.matrix_axes`` tree, given to an optimizer
    that takes ``muon_weight_dimension_numbers`` (Muon) unless ``optimizer.args`` sets it.
    ``decay_mask``: which parameters weight decay applies to (a pytree of bools or a
    function of the params; the language models' excludes LayerNorm scales, biases and
    embeddings), unless ``optimizer.args`` gives AdamW its own ``mask``."""
    learning_rate = build_schedule(cfg, total_steps)
    factory = resolve_optimizer(cfg.optimizer)
    shown = optimizer_name(cfg.optimizer)
    args = dict(cfg.args)
    if matrices is not None and MATRIX_ARGUMENT not in args:
        if MATRIX_ARGUMENT in inspect.signature(factory).parameters:
            args[MATRIX_ARGUMENT] = matrix_dimension_numbers(matrices)
    if cfg.weight_decay and cfg.optimizer == "adamw":
        args["weight_decay"] = cfg.weight_decay
        if decay_mask is not None:
            args.setdefault("mask", decay_mask)
    try:
        tx = _call_with(shown, "optimizer.args", factory, {"learning_rate": learning_rate}, args)
    except ConfigError:
        raise
    except ValueError as err:
        raise ConfigError(f"optimizer.optimizer {shown}: {err}") from err
    if not isinstance(tx, optax.GradientTransformation):
        raise ConfigError(f"optimizer.optimizer: {shown} did not return a GradientTransformation")
    if cfg.clip_norm is not None and not cfg.clip_norm > 0:
        raise ConfigError(f"optimizer.clip_norm must be > 0, got {cfg.clip_norm!r}")
    if cfg.weight_decay < 0:
        raise ConfigError(f"optimizer.weight_decay must be >= 0, got {cfg.weight_decay!r}")
    if cfg.state_dtype not in (None, "float32", "bfloat16", "float16"):
        raise ConfigError(
            f"optimizer.state_dtype: unknown {cfg.state_dtype!r}; use float32, bfloat16 or float16"
        )
    return assemble(cfg, tx, learning_rate, cfg.weight_decay, decay_mask), learning_rate
