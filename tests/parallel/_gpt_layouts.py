"""A tiny GPT on a small text corpus, trained 20 steps under each parallel layout.

The GPT counterpart of tests/parallel/_layouts.py (the MLP and the CNN on digits): the same
layouts (``LAYOUTS``) and the same in-process training (``_layouts._train``: one initial
state, put onto each layout's shardings, the trainer's own compiled step, one compilation
per layout), on token windows of a byte-level corpus written into a temporary folder.

The GPT: 2 layers, 4 heads (so that the heads split over model=4 under tp 2×4), width 32,
block 16, the byte vocabulary (256, which model=2 and model=4 divide: the tied token table
is vocabulary-parallel), dropout 0, batch 16 (which data=8 divides); the LM recipe's AdamW
with clipping and its weight-decay mask, at a constant learning rate: its warm-up of 100
steps does not fit 20, and a cosine over the run's length would differ between a 10-step
run resumed to 20 and a 20-step one. The schedule is set in a ``--config`` file (the
same as ``--schedule constant``), which the resumed runs read again.
"""

from __future__ import annotations

import json
import pathlib

import jax

from optlab import cli
from optlab.cli._flags import config_from_args
from optlab.train.setup import build_setup
from tests.parallel._layouts import LAYOUTS, STEPS, Run, _train

__all__ = ["GPT_LAYOUTS", "STEPS", "GptRuns", "gpt_flags", "write_corpus"]

GPT_LAYOUTS = {k: LAYOUTS[k] for k in ("dp8", "fsdp8", "tp2x4", "dp4xtp2", "pmap8")}
MODEL_ARGS = {"n_layer": 2, "n_head": 4, "d_model": 32, "block_size": 16, "dropout": 0}
BATCH = 16


def write_corpus(folder: pathlib.Path) -> pathlib.Path:
    """24 small Python-like files (about 1 KB each) in ``folder/corpus`` and the constant
    schedule's config in ``folder/schedule.json``; returns ``folder``."""
    corpus = folder / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for i in range(24):
        text = "".join(f"def f{i}_{j}(x):\n    return x * {j} + {i}\n\n" for j in range(40))
        (corpus / f"mod_{i}.py").write_text(text, encoding="utf-8")
    schedule = {"optimizer": {"schedule": "constant", "schedule_args": {}}}
    (folder / "schedule.json").write_text(json.dumps(schedule))
    return folder


def gpt_flags(folder: pathlib.Path, steps: int = STEPS) -> list[str]:
    """``optlab train`` flags of the tiny GPT on ``write_corpus(folder)``."""
    flags = ["--model", "gpt", "--dataset", "text", "--data-dir", str(folder / "corpus")]
    for key, value in MODEL_ARGS.items():
        flags += ["--model-arg", f"{key}={value}"]
    flags += ["--config", str(folder / "schedule.json"), "--batch-size", str(BATCH)]
    return [*flags, "--steps", str(steps), "--no-progress"]


class GptRuns:
    """Trains the GPT once per layout, on first use; layout ``"one"`` is one device."""

    def __init__(self, folder: pathlib.Path):
        self.folder, self.cache, self.initial = folder, {}, None

    def setup(self, flags: list[str]):
        args = ["train", *gpt_flags(self.folder), *flags, "--out", str(self.folder / "unused")]
        return build_setup(config_from_args(cli.parser().parse_args(args)))

    def get(self, layout: str) -> Run:
        if self.initial is None:
            one = self.setup([])
            self.initial = jax.device_get(one.init_state())
            self.cache["one"] = _train(one, self.initial)
        if layout not in self.cache:
            self.cache[layout] = _train(self.setup(GPT_LAYOUTS[layout]), self.initial)
        return self.cache[layout]
