"""The run configuration: one dataclass a section, each field documented.

Every section remembers which fields were *given* (passed to its constructor, assigned
afterwards, read from a config file or set by a flag): those win over the recipe of the
run's dataset and model (``optlab.config.RECIPES``); the others take the recipe's value,
else the default written here. ``config.json`` records the resolved values and where each
came from.

A config read from disk (``RunConfig.from_file``, ``RunConfig.from_run_folder``) is data:
each field is checked against its annotation, and an import path in it is refused, nothing
imported, unless the caller opts in (``allow_imports``; see ``optlab.config._validate``).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import pathlib
import typing
from typing import Any

from optlab.config import _files, _validate
from optlab.config._validate import shown
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
    ``data`` extra), synthetic_linear, synthetic_logistic, spirals; or token data for a
    language model: pystdlib (the Python standard library's sources), text (a text file or
    folder at ``data_dir``), tokens (a folder of ``train.bin``/``val.bin``/``test.bin`` made by
    ``optlab prepare-text``, at ``data_dir``)."""
    data_dir: str | None = None
    """Folder holding local MNIST files (IDX or ``mnist.npz``); the text or token folder of
    ``text`` and ``tokens``."""
    tokenizer: str = "byte"
    """Token data from text: ``byte`` (UTF-8 bytes, vocabulary 256) or ``bpe`` (a byte-level
    BPE trained on the training split, saved in the run folder)."""
    vocab_size: int | None = None
    """The BPE vocabulary to train (``tokenizer: bpe``; default 1024)."""
    batch_size: int = 64
    """Examples per update (per micro-batch with ``train.accumulate``)."""
    val_fraction: float = 0.1
    """Share of the training split held out for validation, in [0, 1)."""
    mode: str = "minibatch"
    """``"minibatch"`` (SGD on batches), ``"full"`` (gradient descent on the whole training
    split) or ``"online"`` (batch 1); lectures 04 and 05."""
    replacement: bool = False
    """Draw batches with replacement instead of epoch-wise permutations."""
    batch_growth: list[list[int]] | None = None
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
    ``optax.GradientTransformation``. An import path runs its module's code when imported,
    so one read from a file is honoured only with ``allow_imports`` (``--allow-imports``);
    on the command line (``--optimizer``) and from Python it is the user's own word."""
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
# What the trainer records in config.json beside the config itself.
RECORDS = ("sources", "data_digest")


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
    def from_dict(cls, raw: dict, *, source: str = "config") -> RunConfig:
        """The config of ``raw`` (a ``to_dict`` or a config file's data); every field it holds
        counts as given, and each is checked against its annotation (``validate``).
        ``config.json``'s records (``sources``, ``data_digest``) are ignored. ``source``
        begins each error message (the file's name).

        This trusts ``raw``: an import path in it is imported when the optimizer is built.
        Data from a file goes through ``from_file`` or ``from_run_folder``, which refuse one
        unless allowed."""
        kwargs: dict[str, Any] = {}
        for key, value in raw.items():
            if key in RECORDS:
                continue
            if key == "out":
                _validate.check_out(value, source)
                kwargs[key] = str(value)
                continue
            if key not in _SECTIONS:
                known = sorted([*_SECTIONS, "out"])
                raise ConfigError(f"{source}: unknown section {shown(key)}; known: {known}")
            section_cls = _SECTIONS[key]
            if not isinstance(value, dict):
                raise ConfigError(
                    f"{source}: [{key}] must be a mapping of fields, got {shown(value)} "
                    f"({_validate.kind(value)})"
                )
            known = {f.name for f in dataclasses.fields(section_cls)}
            unknown = sorted(set(value) - known, key=str)
            if unknown:
                raise ConfigError(
                    f"{source}: unknown field(s) {shown(unknown)} in [{key}]; known: "
                    f"{sorted(known)}"
                )
            kwargs[key] = section_cls(**value)
        cfg = cls(**kwargs)
        cfg.validate(source)
        return cfg

    @classmethod
    def from_file(cls, path: str | os.PathLike, *, allow_imports: bool = False) -> RunConfig:
        """Reads a JSON or YAML config file (``.yaml``/``.yml``; anything else is JSON).

        The file is data: parsed, never executed, and checked field by field. An import path
        in it (``optimizer: "package.module:function"``, whose import runs that module's
        code) is refused, before anything is imported, unless ``allow_imports`` (the CLI's
        ``--allow-imports``): give one on the command line (``--optimizer``) or from Python
        instead. A missing, unreadable, non-UTF-8 or malformed file is one ``ConfigError``
        naming it (and the line, where the parser says)."""
        raw = read_config_file(path)
        where = f"--config {path}"
        _validate.check_imports(raw, where, allow_imports=allow_imports)
        return cls.from_dict(raw, source=where)

    @classmethod
    def from_run_folder(
        cls, out: str | os.PathLike, *, allow_imports: bool = False, optimizer: Any = None
    ) -> RunConfig:
        """The config of the run in folder ``out``, read from its ``config.json`` (for
        resuming, ``optlab export``, ``restore_run``).

        A run folder may come from anyone, so its config is data like a config file: when it
        names an import path (the run was made with ``--optimizer mod:fn``, or a factory
        from Python) it is refused, nothing imported, unless ``allow_imports`` or
        ``optimizer`` is that same optimizer again (the user passed the flag again, or the
        factory itself from Python, which then replaces the stored name). An ``optimizer``
        that differs from the stored one is refused too. A missing, non-UTF-8, non-JSON or
        non-mapping ``config.json`` is one ``ConfigError`` naming the file and what to do."""
        path, raw = _files.read_run_config(out)
        section = raw.get("optimizer")
        stored = section.get("optimizer", "adam") if isinstance(section, dict) else "adam"
        typed = _validate.as_typed(stored)
        if optimizer is not None:
            given = optimizer_name(optimizer)
            if given != stored:
                raise ConfigError(
                    f"{path}: this run was made with --optimizer {typed}, not "
                    f"{_validate.as_typed(given)}; pass --optimizer {typed} (or leave it out)"
                )
        elif _validate.is_import_path(stored) and not allow_imports:
            raise ConfigError(
                f"{path}: this run was made with --optimizer {typed}; pass --optimizer "
                f"{typed} again (or --allow-imports) to import it (from Python: "
                "optimizer=... or allow_imports=True)"
            )
        kept = {k: v for k, v in raw.items() if k in _SECTIONS or k == "out"}
        cfg = cls.from_dict(kept, source=str(path))
        if callable(optimizer):
            cfg.optimizer.optimizer = optimizer
        return cfg

    def validate(self, where: str = "") -> None:
        """Checks every field's type against its annotation, or raises a ``ConfigError``
        naming the field: a number in quotes, ``true`` for a whole number, a list for a
        mapping, a non-finite number. A whole number is accepted where a number is
        expected. ``optimizer.optimizer`` may be a name, ``module:function`` or a factory.
        ``where`` begins the message (a file's name). Values are checked by the setup
        (``optlab.train.setup.build_setup``)."""
        for name, section_cls in _SECTIONS.items():
            section = getattr(self, name)
            if not isinstance(section, section_cls):
                prefix = f"{where}: " if where else ""
                raise ConfigError(
                    f"{prefix}{name} must be an optlab.config.{section_cls.__name__}, got "
                    f"{shown(section)}"
                )
            _validate.check_section(section, name, _hints(section_cls), where)
            growth = getattr(section, "batch_growth", None)
            if growth is not None and any(len(phase) != 2 for phase in growth):
                prefix = f"{where}: " if where else ""
                raise ConfigError(
                    f"{prefix}data.batch_growth must be [[step, batch_size], ...] pairs, got "
                    f"{shown(growth)}"
                )
        _validate.check_out(self.out, where)


def read_config_file(path: str | os.PathLike) -> dict:
    """A config file's raw mapping (``RunConfig.from_file`` without the checks), for a
    caller that overrides some of its values first (the CLI's flags)."""
    return _files.read_mapping(pathlib.Path(path), "--config")


@functools.cache
def _hints(section_cls: type) -> dict[str, Any]:
    return typing.get_type_hints(section_cls)
