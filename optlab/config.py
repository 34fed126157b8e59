"""The run configuration (dataclasses) and the one factory that turns it into parts.

Nothing else in optlab reads the config: the CLI fills it from flags (or a JSON/YAML file,
which is data, never executed), ``build_*`` turn it into data, model and optimizer, and
the trainer receives those.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import pathlib
from typing import Any

import optax

import optlab
from optlab import schedules
from optlab.errors import ConfigError


@dataclasses.dataclass
class DataConfig:
    dataset: str = "digits"
    data_dir: str | None = None
    batch_size: int = 64
    val_fraction: float = 0.1
    mode: str = "minibatch"  # "full" (GD), "minibatch", "online" (batch 1)
    replacement: bool = False
    batch_growth: list | None = None  # [[step, batch_size], ...] phases (lecture 04)
    augment: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class ModelConfig:
    model: str = "mlp"
    activation: str = "relu"
    init: str = "he"
    options: dict[str, Any] = dataclasses.field(default_factory=dict)  # widths, dropout, ...


@dataclasses.dataclass
class OptimizerConfig:
    # A name from OPTIMIZERS, "package.module:function", or (from Python) the factory itself:
    # any callable ``factory(learning_rate=..., **args) -> GradientTransformation``.
    optimizer: Any = "adam"
    learning_rate: float = 1e-3
    schedule: str = "constant"
    schedule_args: dict[str, Any] = dataclasses.field(default_factory=dict)
    args: dict[str, Any] = dataclasses.field(default_factory=dict)  # b1, mu, form, ...
    weight_decay: float = 0.0
    clip_norm: float | None = None
    state_dtype: str | None = None  # e.g. "bfloat16": optimizer state stored smaller


@dataclasses.dataclass
class TrainConfig:
    epochs: int | None = 20
    steps: int | None = None
    seed: int = 0
    accumulate: int = 1
    log_every: int = 50
    eval_every: int | None = None  # steps; None = every epoch
    checkpoint_every: int | None = None  # steps; None = every epoch
    keep_checkpoints: int = 2
    early_stopping: int | None = None  # evaluations without improvement
    monitor: str = "val_accuracy"
    nonfinite: str = "stop"  # "stop" or "skip"
    precision: str = "fp32"
    profile: bool = False
    tensorboard: bool = False  # also write TensorBoard event files (needs tensorboardX)
    mesh: str | None = None  # e.g. "data=4,model=2"; None: one device
    strategy: str = "dp"  # dp, fsdp, tp, dp+tp, zero1, krizhevsky (optlab.parallel)
    parallel: str = "jit"  # "jit" (shardings on the mesh) or "pmap" (optlab.train.pmap_step)
    remat: bool = False  # recompute each layer's activations in the backward pass (mlp, cnn)


@dataclasses.dataclass
class RunConfig:
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    out: str = "runs/default"

    def to_dict(self) -> dict:
        """Plain data (config.json); a factory given as ``optimizer`` is written as
        ``"module:qualname"``, the form that imports it again on resume."""
        raw = dataclasses.asdict(self)
        if callable(self.optimizer.optimizer):
            raw["optimizer"]["optimizer"] = optimizer_name(self.optimizer.optimizer)
        return raw

    @classmethod
    def from_dict(cls, raw: dict) -> RunConfig:
        sections = {f.name: f.type for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in sections:
                raise ConfigError(f"config: unknown section {key!r}; known: {sorted(sections)}")
            if key == "out":
                kwargs[key] = str(value)
                continue
            section_cls = {
                "data": DataConfig,
                "model": ModelConfig,
                "optimizer": OptimizerConfig,
                "train": TrainConfig,
            }[key]
            known = {f.name for f in dataclasses.fields(section_cls)}
            unknown = set(value) - known
            if unknown:
                raise ConfigError(
                    f"config: unknown field(s) {sorted(unknown)} in [{key}]; known: {sorted(known)}"
                )
            kwargs[key] = section_cls(**value)
        return cls(**kwargs)

    @classmethod
    def from_file(cls, path: str) -> RunConfig:
        """Reads JSON or YAML (``yaml.safe_load``: data only, nothing executed)."""
        file = pathlib.Path(path)
        if not file.is_file():
            raise ConfigError(f"--config: no file {path!r}")
        text = file.read_text()
        if file.suffix in (".yaml", ".yml"):
            import yaml

            raw = yaml.safe_load(text)
        else:
            raw = json.loads(text)
        if not isinstance(raw, dict):
            raise ConfigError(f"--config: {path} must hold a mapping of sections")
        return cls.from_dict(raw)


# Optimizers reachable by name; a user's own by "package.module:function".
OPTIMIZERS = {
    "sgd": optlab.sgd,
    "momentum": optlab.momentum,
    "nesterov": optlab.nesterov,
    "adagrad": optlab.adagrad,
    "rmsprop": optlab.rmsprop,
    "adam": optlab.adam,
    "nadam": optlab.nadam,
    "adamw": optlab.adamw,
}
SCHEDULES = {
    "constant": None,
    "step": schedules.step_decay,
    "exponential": schedules.exponential_decay,
    "inverse_time": schedules.inverse_time_decay,
    "polynomial": schedules.polynomial,
    "cosine": schedules.cosine_decay,
    "cyclical": schedules.cyclical,
    "one_cycle": schedules.one_cycle,
    "sgdr": schedules.sgdr,
}


def _call_with(owner: str, flag: str, fn, positional: dict, extra: dict):
    params = inspect.signature(fn).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = [k for k in extra if k not in params and not accepts_any]
    if unknown:
        known = [k for k in params if k not in positional]
        raise ConfigError(f"{flag}: {owner} has no argument(s) {unknown}; it takes {known}")
    try:
        return fn(**positional, **extra)
    except TypeError as err:
        raise ConfigError(f"{flag}: {owner}: {err}") from err


def build_schedule(cfg: OptimizerConfig, total_steps: int):
    """The learning rate: a float (``constant``) or a schedule from ``optlab.schedules``."""
    if cfg.learning_rate is None or not cfg.learning_rate > 0:
        raise ConfigError(f"--learning-rate must be > 0, got {cfg.learning_rate!r}. Use e.g. 1e-3.")
    if cfg.schedule not in SCHEDULES:
        raise ConfigError(f"--schedule: unknown {cfg.schedule!r}; choose from {sorted(SCHEDULES)}")
    fn = SCHEDULES[cfg.schedule]
    if fn is None:
        if cfg.schedule_args:
            raise ConfigError("--schedule-arg: the constant schedule takes no arguments")
        return cfg.learning_rate
    first = next(iter(inspect.signature(fn).parameters))
    positional = {first: cfg.learning_rate}
    args = dict(cfg.schedule_args)
    # Schedules with a horizon default to the run's length.
    for horizon in ("steps", "total_steps"):
        if horizon in inspect.signature(fn).parameters and horizon not in args:
            args[horizon] = total_steps
    try:
        return _call_with(cfg.schedule, "--schedule-arg", fn, positional, args)
    except ValueError as err:
        raise ConfigError(f"--schedule {cfg.schedule}: {err}") from err


def optimizer_name(optimizer: Any) -> str:
    """A config's optimizer as text: its name, or ``module:qualname`` of a factory."""
    if callable(optimizer):
        module = getattr(optimizer, "__module__", None) or "__main__"
        return f"{module}:{getattr(optimizer, '__qualname__', repr(optimizer))}"
    return str(optimizer)


def _resolve_optimizer(name: Any):
    if callable(name):
        return name
    if name in OPTIMIZERS:
        return OPTIMIZERS[name]
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            return getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as err:
            raise ConfigError(f"--optimizer: cannot import {name!r} ({err})") from err
    raise ConfigError(
        f"--optimizer: unknown {name!r}; choose from {sorted(OPTIMIZERS)} "
        "or give your own as package.module:function"
    )


def build_optimizer(cfg: OptimizerConfig, total_steps: int) -> tuple[Any, Any]:
    """(transformation, learning_rate) from the config: clipping, then the optimizer with
    its schedule, then weight decay (AdamW's own, else decoupled after the step)."""
    learning_rate = build_schedule(cfg, total_steps)
    factory = _resolve_optimizer(cfg.optimizer)
    shown = optimizer_name(cfg.optimizer)
    args = dict(cfg.args)
    if cfg.weight_decay and cfg.optimizer == "adamw":
        args["weight_decay"] = cfg.weight_decay
    try:
        tx = _call_with(shown, "--opt-arg", factory, {"learning_rate": learning_rate}, args)
    except ValueError as err:
        raise ConfigError(f"--optimizer {shown}: {err}") from err
    if not isinstance(tx, optax.GradientTransformation):
        raise ConfigError(f"--optimizer: {shown} did not return a GradientTransformation")
    parts = []
    if cfg.clip_norm is not None:
        if not cfg.clip_norm > 0:
            raise ConfigError(f"--clip-norm must be > 0, got {cfg.clip_norm!r}")
        parts.append(optlab.clip_by_global_norm(cfg.clip_norm))
    parts.append(tx)
    if cfg.weight_decay and cfg.optimizer != "adamw":
        if cfg.weight_decay < 0:
            raise ConfigError(f"--weight-decay must be >= 0, got {cfg.weight_decay!r}")
        parts.append(optlab.decoupled_weight_decay(cfg.weight_decay, learning_rate=learning_rate))
    tx = parts[0] if len(parts) == 1 else optax.chain(*parts)
    if cfg.state_dtype is not None:
        if cfg.state_dtype not in ("float32", "bfloat16", "float16"):
            raise ConfigError(
                f"--opt-state-dtype: unknown {cfg.state_dtype!r}; use float32, bfloat16 or float16"
            )
        tx = optlab.with_state_dtype(tx, cfg.state_dtype)
    return tx, learning_rate
