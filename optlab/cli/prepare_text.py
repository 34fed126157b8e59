"""``optlab prepare-text``: text into nanoGPT-style token files (``--dataset tokens``)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "prepare-text",
        help="tokenize text into train.bin/val.bin/test.bin for --dataset tokens",
        description="Tokenize a text file, a folder of text files, or the built-in corpus "
        "(SRC pystdlib: the Python standard library's sources) into OUT/train.bin, val.bin and "
        "test.bin (uint16, or uint32 for a vocabulary over 65,536), with OUT/meta.json naming "
        "the tokenizer and the counts, and OUT/tokenizer. Train on it with "
        "`optlab train --model gpt --dataset tokens --data-dir OUT`.",
    )
    a = p.add_argument
    a("src", metavar="SRC", help="a text file, a folder of text files, or pystdlib")
    a("--out", required=True, help="the folder to write")
    a("--tokenizer", choices=["byte", "bpe"], default="byte", help="byte (256) or bpe")
    a("--vocab-size", type=int, help="the BPE vocabulary to train (default 1024)")


def run(args: argparse.Namespace) -> int:
    import json
    import pathlib

    from optlab.data import _tokens

    vocab = args.vocab_size
    if args.tokenizer == "bpe" and vocab is None:
        vocab = 1024
    if args.src == "pystdlib" and not pathlib.Path(args.src).exists():
        out = _tokens.prepare_pystdlib(args.out, args.tokenizer, vocab)
    else:
        out = _tokens.prepare_text(args.src, args.out, args.tokenizer, vocab)
    meta = json.loads((pathlib.Path(out) / _tokens.META).read_text())
    counts = ", ".join(f"{s} {meta['splits'][s]['tokens']:,}" for s in ("train", "val", "test"))
    tok = meta["tokenizer"]
    name = tok.get("name", "?") if isinstance(tok, dict) else tok
    print(f"wrote {out}: {name} tokenizer, vocabulary {meta['vocab_size']}; "
          f"tokens: {counts}")  # fmt: skip
    return 0
