"""The run configuration: one dataclass a section, each field documented.

Every section remembers which fields were *given* (passed to its constructor, assigned
afterwards, read from a config file or set by a flag): those win over the recipe of the
run's dataset and model (``optlab.config.RECIPES``); the others take the recipe's value,
else the default written here. ``config.json`` records the resolved values and where each
came from.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import pathlib
from typing import Any

from optlab.errors import ConfigError


class _Section:
    """Tracks the fields given by the user (see the module docstring)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "_given", set(self.__dict__.pop("_init_given", ())))

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if "_given" in self.__dict__ and not name.startswith("_"):
            self._given.add(name)

    def given(self) -> frozenset[str]:
        """The names of the fields the user gave."""
        return frozenset(self.__dict__.get("_given", ()))

    def set_default(self, name: str, value: Any) -> None:
        """Sets a field without counting it as given (a recipe's value)."""
        object.__setattr__(self, name, value)


def section(cls):
    """``dataclasses.dataclass`` that also records which fields the constructor was given."""
    cls = dataclasses.dataclass(cls)
    init = cls.__init__
    names = [f.name for f in dataclasses.fields(cls)]

    def __init__(self, *args, **kwargs):
        object.__setattr__(self, "_init_given", set(names[: len(args)]) | set(kwargs))
        init(self, *args, **kwargs)

    __init__.__doc__ = init.__doc__
    __init__.__signature__ = inspect.signature(init)
    cls.__init__ = __init__
    return cls


@section
class DataConfig(_Section):
    """Which data, and how it is batched."""

    dataset: str = "digits"
    """A built-in dataset: digits, mnist1d, mnist (needs ``data_dir``), mnist5k (needs the
    ``data`` extra), synthetic_linear, synthetic_logistic, spirals."""
    data_dir: str | None = None
    """Folder holding local MNIST files (IDX or ``mnist.npz``)."""
    batch_size: int = 64
    """Examples per update (per micro-batch with ``train.accumulate``)."""
    val_fraction: float = 0.1
    """Share of the training split held out for validation, in [0, 1)."""
    mode: str = "minibatch"
    """``"minibatch"`` (SGD on batches), ``"full"`` (gradient descent on the whole training
    split) or ``"online"`` (batch 1); lectures 04 and 05."""
    replacement: bool = False
    """Draw batches with replacement instead of epoch-wise permutations."""
    batch_growth: list | None = None
    """``[[step, batch_size], ...]``: grow the batch in phases (lecture 04)."""
    augment: list[str] = dataclasses.field(default_factory=list)
    """On-device augmentation ops applied in order: flip, crop, color_jitter, affine."""


@section
class ModelConfig(_Section):
    """Which model."""

    model: str = "mlp"
    """A built-in model: mlp, cnn or transformer (``optlab.models.create_model``)."""
    activation: str = "relu"
    """sigmoid, tanh, relu, leaky_relu, prelu, gelu (lecture 03)."""
    init: str = "he"
    """Kernel initialization: constant, normal, xavier, xavier_simple, he (lecture 03)."""
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    """The model's own options, e.g. ``{"widths": [100, 100], "dropout": 0.1}``; see
    ``optlab.models.create_model``. A recipe's options fill in keys not given here."""


@section
class OptimizerConfig(_Section):
    """The optimizer, its learning rate and schedule, and what is chained around it."""

    optimizer: Any = "adam"
    """A registered name (``optlab.OPTIMIZERS``), ``"package.module:function"``, or (from
    Python) the factory itself: any ``factory(learning_rate=..., **args)`` returning an
    ``optax.GradientTransformation``."""
    learning_rate: float = 1e-3
    """The (peak) learning rate α."""
    schedule: str = "constant"
    """A schedule of ``optlab.schedules`` by its function's name, e.g. ``"cosine_decay"``
    (``optlab.SCHEDULES``); the learning rate is its first argument."""
    schedule_args: dict[str, Any] = dataclasses.field(default_factory=dict)
    """The schedule's other arguments; ``steps``/``total_steps`` default to the run's
    length."""
    args: dict[str, Any] = dataclasses.field(default_factory=dict)
    """The optimizer's other arguments, e.g. ``{"b2": 0.99}`` or ``{"mu": 0.9}``."""
    weight_decay: float = 0.0
    """Decoupled weight decay λ (AdamW's own for adamw, else applied after the step)."""
    clip_norm: float | None = None
    """Clip the gradients to this global norm before the optimizer."""
    state_dtype: str | None = None
    """Store the optimizer state as float32, bfloat16 or float16."""


@section
class TrainConfig(_Section):
    """How long, how often, on which devices."""

    epochs: int | None = 20
    """Passes over the training split (ignored when ``steps`` is set)."""
    steps: int | None = None
    """Updates to make; overrides ``epochs``."""
    seed: int = 0
    """The one seed: data order, initialization, dropout."""
    accumulate: int = 1
    """Gradient accumulation: K micro-batches summed before each update."""
    log_every: int = 50
    """Steps between metric pulls (one ``metrics.jsonl`` record each)."""
    eval_every: int | None = None
    """Steps between validations; None: every epoch."""
    checkpoint_every: int | None = None
    """Steps between checkpoints; None: every epoch."""
    keep_checkpoints: int = 2
    """The newest checkpoints kept (the best by ``monitor`` is kept besides)."""
    early_stopping: int | None = None
    """Stop after this many validations without improving ``monitor``."""
    monitor: str = "val_accuracy"
    """The metric of early stopping and the best checkpoint (a ``*loss`` is minimized)."""
    nonfinite: str = "stop"
    """On a NaN/Inf loss or gradient: ``"stop"`` the run, or ``"skip"`` that update."""
    precision: str = "fp32"
    """Compute dtype: fp32, bf16 (float32 master weights) or fp16 (dynamic loss scaling)."""
    profile: bool = False
    """Write a ``jax.profiler`` trace of a few steps."""
    tensorboard: bool = False
    """Also write TensorBoard event files (needs tensorboardX)."""
    mesh: str | None = None
    """Device mesh, e.g. ``"data=4,model=2"`` or ``"data=-1"``; None: one device."""
    strategy: str = "dp"
    """Layout on the mesh: dp, fsdp, tp, dp+tp, zero1, krizhevsky (``optlab.parallel``)."""
    parallel: str = "jit"
    """``"jit"`` (one program with shardings) or ``"pmap"`` (``optlab.train.pmap_step``)."""
    remat: bool = False
    """Recompute each layer's (block's) activations in the backward pass."""


def optimizer_name(optimizer: Any) -> str:
    """A config's optimizer as text: its name, or ``module:qualname`` of a factory."""
    if callable(optimizer):
        module = getattr(optimizer, "__module__", None) or "__main__"
        return f"{module}:{getattr(optimizer, '__qualname__', repr(optimizer))}"
    return str(optimizer)


_SECTIONS = {
    "data": DataConfig,
    "model": ModelConfig,
    "optimizer": OptimizerConfig,
    "train": TrainConfig,
}


@dataclasses.dataclass
class RunConfig:
    """A whole run: the four sections and the run folder."""

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    """The data section."""
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    """The model section."""
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    """The optimizer section."""
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    """The training section."""
    out: str = "runs/default"
    """The run folder: checkpoints, metrics, summary, plots; running again resumes it."""

    def sections(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _SECTIONS}

    def to_dict(self) -> dict:
        """Plain data (config.json); a factory given as ``optimizer`` is written as
        ``"module:qualname"``, the form that imports it again on resume."""
        raw = dataclasses.asdict(self)
        if callable(self.optimizer.optimizer):
            raw["optimizer"]["optimizer"] = optimizer_name(self.optimizer.optimizer)
        return raw

    @classmethod
    def from_dict(cls, raw: dict) -> RunConfig:
        """The config of ``raw`` (a ``to_dict`` or a config file); every field it holds
        counts as given. ``config.json``'s ``sources`` record is ignored."""
        kwargs: dict[str, Any] = {}
        for key, value in raw.items():
            if key == "sources":
                continue
            if key == "out":
                kwargs[key] = str(value)
                continue
            if key not in _SECTIONS:
                known = sorted([*_SECTIONS, "out"])
                raise ConfigError(f"config: unknown section {key!r}; known: {known}")
            section_cls = _SECTIONS[key]
            if not isinstance(value, dict):
                raise ConfigError(f"config: [{key}] must be a mapping of fields, got {value!r}")
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
