"""The setup's checks of a run, made before anything is written to disk: each user mistake
is one ``ConfigError`` naming the field (the CLI shows it as its flag) and the fix.

* ``check_config``: the values of the config on their own (whole numbers that must be
  positive, the seed's range, the validation fraction, the choices);
* ``check_monitor``: the metric of early stopping and the best checkpoint against the
  metrics this run's evaluation reports (``optlab.train.losses.metric_names``), and what
  cannot work without a validation split;
* ``check_optimizer``: a safety net for arguments of the wrong type that no signature
  reveals: the schedule is evaluated at step 0 and the optimizer's update traced once, both
  under ``jax.eval_shape`` (no computation, no compilation), on the run's abstract
  parameters, with the extra arguments the trainer passes (``value=``, ``obj_fn=``).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import numbers
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from optlab import config as config_lib
from optlab.config._validate import SEED_LIMIT, check_seed
from optlab.errors import ConfigError
from optlab.train import losses

CHOICES = {"train.nonfinite": ("stop", "skip")}
# field -> (optional, what it means: the fix's words)
_POSITIVE = {
    "data.batch_size": (False, "examples per step"),
    "train.accumulate": (False, "micro-batches per update; 1 for none"),
    "train.log_every": (False, "steps between log lines"),
    "train.keep_checkpoints": (False, "the newest checkpoints kept, at least 1"),
    "train.epochs": (True, "passes over the training data; or give train.steps"),
    "train.steps": (True, "updates to make; or leave it out and give train.epochs"),
    "train.eval_every": (True, "steps between validations; leave it out for once an epoch"),
    "train.checkpoint_every": (
        True,
        "steps between checkpoints; leave it out for once an epoch",
    ),
    "train.early_stopping": (
        True,
        "validations without improvement to wait; leave it out not to stop early",
    ),
}


def is_whole(value: Any) -> bool:
    """A Python or NumPy integer, never a bool (``true`` is not a number of epochs)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _field(cfg: Any, name: str) -> Any:
    section, field = name.split(".")
    return getattr(getattr(cfg, section), field)


def check_config(cfg: config_lib.RunConfig) -> None:
    """The config's values on their own (``cfg`` resolved: the recipe's values in)."""
    for name, (optional, meaning) in _POSITIVE.items():
        value = _field(cfg, name)
        if optional and value is None:
            continue
        if not is_whole(value) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r} ({meaning})")
    check_seed(cfg.train.seed)
    fraction = cfg.data.val_fraction
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, numbers.Real)
        or not 0.0 <= fraction < 1.0
    ):
        raise ConfigError(
            f"data.val_fraction must be a number in [0, 1), got {fraction!r}: the share of the "
            "training data held out for validation (e.g. 0.1; 0 for no validation split)"
        )
    for name, choices in CHOICES.items():
        if _field(cfg, name) not in choices:
            raise ConfigError(
                f"{name}: unknown {_field(cfg, name)!r}; choose from {', '.join(choices)}"
            )
    if not isinstance(cfg.train.remat, bool):
        raise ConfigError(f"train.remat is a switch (true or false), got {cfg.train.remat!r}")
    if not isinstance(cfg.train.monitor, str):
        raise ConfigError(f"train.monitor must be a metric's name, got {cfg.train.monitor!r}")
    if cfg.train.tensorboard and importlib.util.find_spec("tensorboardX") is None:
        raise ConfigError("train.tensorboard needs tensorboardX: pip install 'optlab[tensorboard]'")


def _default_monitor(cfg: config_lib.RunConfig) -> str:
    fields = {f.name: f for f in dataclasses.fields(type(cfg.train))}
    return fields["monitor"].default


def reported(names: list[str]) -> str:
    """Metric names in words, the per-class ones folded: ``val_loss, val_accuracy, ...,
    and per class k = 0..9: val_precision_k, val_recall_k, val_f1_k``."""
    plain, per_class, classes = [], [], []
    for name in names:
        match = re.fullmatch(r"(.*_)(\d+)", name)
        if match is None:
            plain.append(name)
            continue
        if f"{match[1]}k" not in per_class:
            per_class.append(f"{match[1]}k")
        if int(match[2]) not in classes:
            classes.append(int(match[2]))
    text = ", ".join(plain)
    if per_class:
        text += f", and per class k = 0..{max(classes)}: {', '.join(per_class)}"
    return text


def check_monitor(
    cfg: config_lib.RunConfig, dataset: Any, loss: str, *, own_dataset: bool = False
) -> None:
    """``train.monitor`` (and ``train.early_stopping``, which watches it) against the
    validation metrics the run reports.

    The default monitor (``val_accuracy``) is a soft default: where the run does not report
    it (a regression, no validation split) the best checkpoint is not tracked, as the
    MNIST-1D recipe (no validation split) relies on. A monitor that was chosen, and early
    stopping, must work: its metric must be one the evaluation reports."""
    tc = cfg.train
    chosen = tc.monitor != _default_monitor(cfg)
    if not chosen and tc.early_stopping is None:
        return
    what = f"train.monitor {tc.monitor}" if chosen else "train.early_stopping"
    if len(dataset.x_val) == 0:
        if own_dataset:
            why = "your dataset's validation split is empty"
        elif cfg.data.val_fraction == 0:
            why = "data.val_fraction is 0"
        else:
            why = f"data.val_fraction {cfg.data.val_fraction} of the training data is no example"
        drop = "train.early_stopping" if tc.early_stopping is not None else "train.monitor"
        raise ConfigError(
            f"{what} needs a validation split, and this run has none ({why}); hold some data "
            f"out (data.val_fraction 0.1) or drop {drop}"
        )
    names = losses.metric_names("val", loss, dataset.num_classes)
    if tc.monitor not in names:
        watched = "" if chosen else " (what train.early_stopping watches)"
        raise ConfigError(
            f"train.monitor {tc.monitor!r}{watched} is not a metric this run reports; its "
            f"validation reports {reported(names)}"
        )
    if tc.monitor == "val_roc_auc" and len(np.unique(dataset.y_val)) < 2:
        raise ConfigError(
            "train.monitor val_roc_auc is undefined on this validation split: it holds one "
            "class only; use val_loss, or a larger data.val_fraction"
        )


def _cause(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    first = lines[0] if lines else ""
    first = first if len(first) <= 200 else first[:195] + "…"
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def _args_text(args: dict) -> str:
    return " ".join(f"{k}={v!r}" for k, v in args.items())


def _quadratic(params: Any) -> jax.Array:
    """A scalar function of the params standing in for the batch's loss (``obj_fn``)."""
    return sum(jnp.sum(jnp.square(p.astype(jnp.float32))) for p in jax.tree.leaves(params))


def _first_difference(got: Any, want: Any) -> str | None:
    """The first leaf whose shape or dtype differs (``path is got, not want``), or a note
    that the tree structure differs; None when they match (weak types aside, as in
    ``lax.cond``, whose two branches the train step's update and skip are)."""
    if jax.tree.structure(got) != jax.tree.structure(want):
        return "its tree structure changes"
    for (path, a), b in zip(
        jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(want), strict=True
    ):
        if a.shape != b.shape or a.dtype != b.dtype:
            where = jax.tree_util.keystr(path) or "its one leaf"
            return f"{where} is {a.dtype}{list(a.shape)}, not {b.dtype}{list(b.shape)}"
    return None


def check_schedule(cfg: config_lib.RunConfig, learning_rate: Any) -> None:
    """The schedule evaluated at step 0 under ``jax.eval_shape``: one number, or a
    ``ConfigError`` naming ``optimizer.schedule_args``."""
    if not callable(learning_rate):
        return
    oc = cfg.optimizer
    given = f" with {_args_text(oc.schedule_args)}" if oc.schedule_args else ""
    try:
        rate = jax.eval_shape(learning_rate, jax.ShapeDtypeStruct((), jnp.int32))
    except (TypeError, ValueError) as err:
        raise ConfigError(
            f"optimizer.schedule_args: the {oc.schedule} schedule{given} cannot be evaluated at "
            f"step 0 ({_cause(err)}); check those values"
        ) from None
    shape = getattr(rate, "shape", None)
    dtype = getattr(rate, "dtype", None)
    if shape != () or dtype is None or not jnp.issubdtype(dtype, jnp.number):
        raise ConfigError(
            f"optimizer.schedule_args: the {oc.schedule} schedule{given} gives "
            f"{dtype}{list(shape or [])} at step 0, not one learning rate; check those values"
        )


def check_optimizer(
    cfg: config_lib.RunConfig, tx: Any, abstract_state: Any, *, obj_fn: bool = True
) -> None:
    """The optimizer's update traced once under ``jax.eval_shape`` on the abstract params
    and optimizer state, as the train step calls it (``value=``, and ``obj_fn=`` on the jit
    path): a ``TypeError``/``ValueError`` there, or an update whose shapes are not the
    params' (or a state whose shapes or dtypes change, which the step's skip branch
    forbids), is a ``ConfigError`` naming ``optimizer.args`` (``optimizer.optimizer`` when
    no argument was given) and the first line of the cause."""
    oc = cfg.optimizer
    shown = config_lib.optimizer_name(oc.optimizer)
    args = {k: v for k, v in oc.args.items() if k != config_lib.MATRIX_ARGUMENT}
    field = "optimizer.args" if args else f"optimizer.optimizer {shown}"
    subject = f"{shown}'s update with {_args_text(args)}" if args else "its update"
    fix = "check those values" if args else "the optimizer does not fit this model"

    def update(grads, opt_state, params):
        extra: dict[str, Any] = {"value": jnp.zeros([], jnp.float32)}
        if obj_fn:
            extra["obj_fn"] = _quadratic
        return tx.update(grads, opt_state, params, **extra)

    params, opt_state = abstract_state.params, abstract_state.opt_state
    try:
        updates, new_state = jax.eval_shape(update, params, opt_state, params)
    except (TypeError, ValueError) as err:
        raise ConfigError(
            f"{field}: {subject} fails on this model's parameters ({_cause(err)}); {fix}"
        ) from None
    shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, jnp.float32), updates)
    want = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, jnp.float32), params)
    for what, got, expected in (
        ("updates that do not match the parameters", shapes, want),
        ("a state that does not match the one it was given", new_state, opt_state),
    ):
        difference = _first_difference(got, expected)
        if difference is not None:
            raise ConfigError(f"{field}: {subject} returns {what} ({difference}); {fix}")


def init_error(cfg: config_lib.RunConfig, err: Exception, *, model_failed: bool) -> ConfigError:
    """The ``ConfigError`` for an init that failed: the model's (``model.options``) or the
    optimizer's (``optimizer.optimizer``; ``optimizer.args`` for a TypeError with args)."""
    if model_failed:
        options = cfg.model.options
        given = f" with {_args_text(options)}" if options else ""
        return ConfigError(
            f"model.options: {cfg.model.model}{given} cannot be built ({_cause(err)})"
        )
    shown = config_lib.optimizer_name(cfg.optimizer.optimizer)
    if isinstance(err, TypeError) and cfg.optimizer.args:
        return ConfigError(
            f"optimizer.args: {shown}'s init with {_args_text(cfg.optimizer.args)} fails on "
            f"this model's parameters ({_cause(err)}); check those values"
        )
    return ConfigError(f"optimizer.optimizer {shown}: {str(err).splitlines()[0]}")


__all__ = [
    "SEED_LIMIT",
    "check_config",
    "check_monitor",
    "check_optimizer",
    "check_schedule",
    "init_error",
    "is_whole",
    "reported",
]
