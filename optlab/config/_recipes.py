"""Recipes: the defaults of a run, by dataset and model.

``optlab train --dataset mnist1d --model cnn`` with no other flag trains with the MNIST-1D
paper's recipe and lands at its published accuracy; a value the user gives (a flag, a
config file's field, an attribute set from Python) overrides the recipe's. Every built-in
(dataset, model) pair has an entry; a recipe that sets nothing runs the generic defaults
of ``RunConfig``. A given run length replaces the recipe's; one too short for the recipe's
warm-up is refused with the fix (a ``warmup_steps`` of one's own) rather than silently
re-scaled, so that extending the run later keeps the same schedule arguments (a resumed
run's identity). The recipe's optimizer arguments go to its own optimizer only.
``optlab recipes`` lists them with their expected results.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from optlab.config._sections import RunConfig

# The run's length is one choice: a given --epochs or --steps replaces both of the recipe's.
_LENGTH = ("train.epochs", "train.steps")
# Arguments of the recipe's own optimizer (AdamW's b2): not passed to another one the user picks.
_OPTIMIZER_ARGS = "optimizer.args"


@dataclasses.dataclass(frozen=True)
class Recipe:
    """The defaults of one (dataset, model) pair.

    Attributes:
      values: ``"section.field"`` (or ``"model.options.KEY"``) → value.
      expected: the result the recipe gives, and the published one where there is one.
      source: where the values come from.
    """

    dataset: str
    model: str
    values: Mapping[str, Any]
    expected: str
    source: str

    @property
    def name(self) -> str:
        return f"{self.dataset}/{self.model}"

    def command(self) -> str:
        return f"optlab train --dataset {self.dataset} --model {self.model}"


_GENERIC = "the generic defaults of RunConfig (no published recipe)"
_NOT_MEASURED = "not measured"
# Greydanus, "Scaling down deep learning" (2020), and its reference code: Adam, α = 1e-2,
# batch 100, 6000 steps on all 4,000 training examples (no validation split); the MLP
# 100-100, the CNN 3 × 25 channels (kernel 5, stride 2).
_MNIST1D = {
    "data.val_fraction": 0.0,
    "optimizer.optimizer": "adam",
    "optimizer.learning_rate": 1e-2,
    "data.batch_size": 100,
    "train.steps": 6000,
    "train.epochs": None,
    "train.eval_every": 250,
    "train.checkpoint_every": 1000,
}
_PAPER = "Greydanus 2020 (MNIST-1D), the paper's training recipe"

_TABLE: dict[tuple[str, str], tuple[dict, str, str]] = {
    ("digits", "mlp"): ({}, "97.8% test accuracy in about 5 s (measured here)", _GENERIC),
    ("digits", "cnn"): ({}, _NOT_MEASURED, _GENERIC),
    ("digits", "transformer"): ({}, _NOT_MEASURED, _GENERIC),
    ("mnist1d", "mlp"): (
        {**_MNIST1D, "model.options.widths": [100, 100]},
        "68.7% test accuracy in about 8 s (measured here; paper: 68%)",
        _PAPER,
    ),
    ("mnist1d", "cnn"): (
        {**_MNIST1D, "model.options.channels": [25, 25, 25]},
        "94.8% test accuracy in about 12 s (measured here; paper: 94%)",
        _PAPER,
    ),
    ("mnist1d", "transformer"): (dict(_MNIST1D), _NOT_MEASURED, _PAPER + " (its CNN's)"),
}
for _dataset in ("mnist", "mnist5k"):
    for _model in ("mlp", "cnn", "transformer"):
        _TABLE[_dataset, _model] = ({}, _NOT_MEASURED, _GENERIC)
for _dataset in ("synthetic_linear", "synthetic_logistic", "spirals"):
    for _model in ("mlp", "cnn", "transformer"):
        _TABLE[_dataset, _model] = ({}, _NOT_MEASURED, _GENERIC)

# nanoGPT's CPU scale (Karpathy, nanoGPT README "I only have a macbook" and
# config/train_shakespeare_char.py): 4 layers, 4 heads, 128 wide, block 64, batch 12,
# dropout 0; AdamW with lr 1e-3, beta2 0.99, weight decay 0.1 (not on LayerNorm scales,
# biases and embeddings), gradients clipped at 1.0, warm-up 100 steps then cosine to 1e-4.
_LM = {
    "model.options.n_layer": 4,
    "model.options.n_head": 4,
    "model.options.d_model": 128,
    "model.options.block_size": 64,
    "model.options.dropout": 0.0,
    "data.batch_size": 12,
    "optimizer.optimizer": "adamw",
    "optimizer.learning_rate": 1e-3,
    "optimizer.args": {"b2": 0.99},
    "optimizer.weight_decay": 0.1,
    "optimizer.clip_norm": 1.0,
    "optimizer.schedule": "cosine_decay",
    "optimizer.schedule_args": {"warmup_steps": 100, "alpha": 0.1},
    "train.steps": 2000,
    "train.epochs": None,
    "train.log_every": 50,
    "train.eval_every": 250,
    "train.checkpoint_every": 500,
    "train.monitor": "val_loss",
}
_NANOGPT = "nanoGPT's CPU recipe (shakespeare_char at laptop scale)"
for _dataset in ("pystdlib", "text", "tokens"):
    _TABLE[_dataset, "gpt"] = (dict(_LM), _NOT_MEASURED, _NANOGPT)

RECIPES: Mapping[tuple[str, str], Recipe] = MappingProxyType(
    {
        key: Recipe(key[0], key[1], MappingProxyType(values), expected, source)
        for key, (values, expected, source) in _TABLE.items()
    }
)

GIVEN, DEFAULT = "given", "default"


def resolve(cfg: RunConfig) -> tuple[RunConfig, dict[str, str]]:
    """``cfg`` with its recipe's values filled in where the user gave none, and where each
    value came from: ``{"data.batch_size": "recipe mnist1d/mlp", "optimizer.learning_rate":
    "given", "train.seed": "default", ...}``. ``cfg`` itself is not changed.

    Example:
      >>> from optlab.config import RunConfig, resolve_recipe
      >>> cfg = RunConfig()
      >>> cfg.data.dataset, cfg.model.model = "mnist1d", "mlp"
      >>> cfg.data.batch_size = 32  # given: it wins over the recipe's 100
      >>> resolved, sources = resolve_recipe(cfg)
      >>> resolved.data.batch_size, resolved.optimizer.learning_rate, resolved.train.steps
      (32, 0.01, 6000)
      >>> sources["data.batch_size"], sources["optimizer.learning_rate"]
      ('given', 'recipe mnist1d/mlp')
    """
    out = copy.deepcopy(cfg)
    recipe = RECIPES.get((out.data.dataset, out.model.model))
    sources: dict[str, str] = {}
    for name, section in out.sections().items():
        for field in dataclasses.fields(section):
            sources[f"{name}.{field.name}"] = GIVEN if field.name in section.given() else DEFAULT
        for key in getattr(section, "options", {}) if name == "model" else ():
            sources[f"model.options.{key}"] = GIVEN
    if recipe is None:
        return out, sources
    label = f"recipe {recipe.name}"
    length_given = any(sources[k] == GIVEN for k in _LENGTH)
    other_optimizer = sources["optimizer.optimizer"] == GIVEN and out.optimizer.optimizer != (
        recipe.values.get("optimizer.optimizer", out.optimizer.optimizer)
    )
    other_schedule = sources["optimizer.schedule"] == GIVEN and out.optimizer.schedule != (
        recipe.values.get("optimizer.schedule", out.optimizer.schedule)
    )  # the recipe's schedule_args (a warm-up, a floor) are its own schedule's
    for key, value in recipe.values.items():
        parts = key.split(".")
        section = getattr(out, parts[0])
        if parts[1] == "options":
            if parts[2] not in section.options:
                section.options[parts[2]] = copy.deepcopy(value)
                sources[key] = label
            continue
        if sources[key] == GIVEN or (key in _LENGTH and length_given):
            continue
        if key == _OPTIMIZER_ARGS and other_optimizer:
            continue
        if key == "optimizer.schedule_args" and other_schedule:
            continue
        section.set_default(parts[1], copy.deepcopy(value))
        sources[key] = label
    _check_warmup(out, sources, label)
    return out, sources


def _check_warmup(cfg: RunConfig, sources: dict[str, str], label: str) -> None:
    """A given ``--steps`` at or below the recipe's warm-up: one line with the fix (the
    schedule would refuse it later, without saying where its warm-up came from)."""
    from optlab.errors import ConfigError

    warmup = cfg.optimizer.schedule_args.get("warmup_steps")
    steps = cfg.train.steps
    if sources.get("optimizer.schedule_args") != label or sources["train.steps"] != GIVEN:
        return
    if isinstance(warmup, int) and isinstance(steps, int) and 0 < steps <= warmup:
        raise ConfigError(
            f"--steps {steps}: the {label} warms up for {warmup} steps; give a shorter warm-up "
            f"with the same --schedule {cfg.optimizer.schedule}, e.g. --schedule-arg "
            f"warmup_steps={max(steps // 10, 0)} --schedule-arg alpha=0.1, or --schedule constant"
        )
