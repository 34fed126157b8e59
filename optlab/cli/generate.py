"""``optlab generate``: sample text from a trained language-model run."""

from __future__ import annotations

import argparse
from typing import Any

from optlab.cli._flags import add_allow_imports


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "generate",
        help="sample text from a language-model run (--model gpt)",
        description="Continue a prompt with the newest good checkpoint of a language-model "
        "run: a key-value cache, compiled once per shape, deterministic for a seed. The text "
        "goes to standard output.",
    )
    a = p.add_argument
    a("--run", required=True, help="the run folder of `optlab train --model gpt`")
    a("--prompt", default="", help='the text to continue, e.g. "def " (default: none)')
    a("--max-tokens", type=int, default=200, help="tokens to sample (default 200)")
    a("--temperature", type=float, default=0.8, help="0 is greedy (default 0.8)")
    a("--top-k", type=int, default=40, help="sample among the k likeliest (default 40)")
    a("--seed", type=int, default=0, help="the sampling's seed (default 0)")
    a(
        "--optimizer",
        metavar="MODULE:FUNCTION",
        help="for a run made with --optimizer package.module:function: that value again",
    )
    add_allow_imports(p, "--run's config.json")


def run(args: argparse.Namespace) -> int:
    from optlab.train.generate import generate

    text = generate(
        args.run,
        args.prompt,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        seed=args.seed,
        allow_imports=args.allow_imports,
        optimizer=args.optimizer,
    )
    print(text)
    return 0
