"""``optlab recipes``: the defaults each (dataset, model) pair trains with, and the result
each is expected to give."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "recipes",
        help="list the recipes: the defaults of each dataset and model, and their results",
        description="`optlab train --dataset D --model M` with no other flag trains with the "
        "recipe of (D, M); a flag you give overrides the recipe's value, and the run folder's "
        "config.json records where each value came from (its `sources`).",
    )
    p.add_argument("--dataset", help="only this dataset's recipes")
    p.add_argument("--model", help="only this model's recipes")


def format_recipes(dataset: str | None = None, model: str | None = None) -> str:
    """The recipe table as text (the output of ``optlab recipes``)."""
    from optlab.config import RECIPES

    lines = []
    for recipe in RECIPES.values():
        if (dataset and recipe.dataset != dataset) or (model and recipe.model != model):
            continue
        values = ", ".join(f"{k}={v!r}" for k, v in recipe.values.items()) or "(the defaults)"
        lines += [
            f"{recipe.name}: {recipe.command()}",
            f"  sets: {values}",
            f"  expected: {recipe.expected}",
            f"  source: {recipe.source}",
        ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from optlab.errors import ConfigError

    text = format_recipes(args.dataset, args.model)
    if not text:
        raise ConfigError(f"--dataset/--model: no recipe for {args.dataset}/{args.model}")
    print(text)
    return 0
