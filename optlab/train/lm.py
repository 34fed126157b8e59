"""The language-model task: token data for the trainer (``--dataset pystdlib|text|tokens``).

``load_token_data`` turns the config's data section into ``TokenData``: the token splits as
read-only memmaps (``optlab.data.open_tokens``), never loaded into memory, with what the
trainer needs of a data set (``task``, ``num_classes`` = the vocabulary, ``input_shape`` =
``(block_size,)``, a digest for the run's identity). Text is tokenized once into a cache
folder keyed by the source and the tokenizer (``OPTLAB_CACHE``, default
``~/.cache/optlab/tokens``), so runs and resumes on the same corpus share it; the run folder
gets a copy of the tokenizer (``OUT/tokenizer``) for ``optlab generate``.

The loss is next-token cross-entropy (``optlab.train.losses``: ``next_token``); evaluation
reports it in nats per token, its perplexity and bits per byte (the split's UTF-8 bytes per
token from ``meta.json``: the documents' bytes over the tokens, end-of-document tokens
included, so just under 1 for the byte tokenizer).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import shutil
from typing import Any

import numpy as np

from optlab._param_groups import path_mask
from optlab.data import _corpus, _tokens
from optlab.data._token_pipeline import TokenBatchIterator, eval_windows
from optlab.errors import ConfigError

TOKEN_DATASETS = ("pystdlib", "text", "tokens")
DEFAULT_BLOCK_SIZE = 64
DEFAULT_BPE_VOCAB = 1024
EVAL_WINDOWS = 256
"""Windows of ``block_size`` tokens each evaluation reads per split, spread evenly over the
split (``eval_windows``): 16,384 tokens at block 64, from every part of the corpus, at a
fixed cost; a split with fewer windows is read whole."""
TOKENIZER_FOLDER = "tokenizer"


def is_token_dataset(name: Any) -> bool:
    return name in TOKEN_DATASETS


@dataclasses.dataclass(frozen=True, eq=False)
class TokenData:
    """Token splits and what the trainer reads of a data set."""

    name: str
    splits: _tokens.TokenSplits
    block_size: int
    task: str = "language_model"

    @property
    def num_classes(self) -> int:
        return self.splits.vocab_size

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.block_size,)

    @property
    def digest(self) -> str:
        """The identity of the tokens: the prepared folder's ``meta.json`` (source
        fingerprint, tokenizer, counts per split), not the gigabytes themselves."""
        text = json.dumps(self.splits.meta, sort_keys=True)
        return "tokens:" + hashlib.blake2b(text.encode(), digest_size=16).hexdigest()

    @property
    def source(self) -> dict:
        """Where the tokens came from (``meta.json``'s ``source``): for ``pystdlib`` the
        Python version, the file count and the file list's digest; summary.json records it
        beside the numbers, which are comparable only between runs whose sources match."""
        return dict(self.splits.meta.get("source") or {})

    def bytes_per_token(self, split: str) -> float:
        stats = self.splits.meta["splits"][split]
        return float(stats.get("bytes", stats["tokens"])) / max(int(stats["tokens"]), 1)

    def tokens(self, split: str) -> np.ndarray:
        return self.splits.split(split)

    def save_tokenizer(self, out: str | os.PathLike) -> None:
        """Copies the tokenizer into ``OUT/tokenizer`` (once), for ``optlab generate``."""
        target = pathlib.Path(out) / TOKENIZER_FOLDER
        if not target.exists():
            tmp = target.with_name(target.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(self.splits.path / _tokens.TOKENIZER_DIR, tmp)
            os.replace(tmp, target)


def _cache_root() -> pathlib.Path:
    root = os.environ.get("OPTLAB_CACHE")
    return pathlib.Path(root) if root else pathlib.Path.home() / ".cache" / "optlab"


def _source_key(dc: Any) -> tuple[dict, Any]:
    """(what the prepared folder depends on, how to prepare it into a folder)."""
    vocab = dc.vocab_size if dc.tokenizer == "bpe" else None
    if dc.tokenizer == "bpe" and vocab is None:
        vocab = DEFAULT_BPE_VOCAB
    if dc.dataset == "pystdlib":
        key = {"source": _corpus.corpus_fingerprint()}
        return key | {"tokenizer": dc.tokenizer, "vocab": vocab}, (
            lambda out: _tokens.prepare_pystdlib(out, dc.tokenizer, vocab)
        )
    if dc.data_dir is None:
        raise ConfigError("--data-dir: --dataset text needs the text file or folder to read")
    root = pathlib.Path(dc.data_dir)
    files = _corpus.text_files(root, flag="--data-dir")
    listing = [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    key = {"source": listing, "tokenizer": dc.tokenizer, "vocab": vocab}
    return key, (lambda out: _tokens.prepare_text(root, out, dc.tokenizer, vocab))


def prepared_folder(dc: Any) -> pathlib.Path:
    """The token folder of the data section: ``data_dir`` for ``tokens``; else the cache's
    folder for this source and tokenizer, prepared on first use (by process 0; the others
    wait for it)."""
    if dc.dataset == "tokens":
        if dc.data_dir is None:
            raise ConfigError(
                "--data-dir: --dataset tokens needs the folder `optlab prepare-text` wrote"
            )
        return pathlib.Path(dc.data_dir)
    key, prepare = _source_key(dc)
    digest = hashlib.blake2b(json.dumps(key, sort_keys=True).encode(), digest_size=12)
    folder = _cache_root() / "tokens" / f"{dc.dataset}-{dc.tokenizer}-{digest.hexdigest()}"
    import jax

    if not (folder / _tokens.META).exists() and jax.process_index() == 0:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        prepare(tmp)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process prepared it meanwhile: theirs is the same
            shutil.rmtree(tmp, ignore_errors=True)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("optlab_tokens_prepared")
    return folder


def load_token_data(cfg: Any, block_size: int) -> TokenData:
    """``TokenData`` of the config's data section with windows of ``block_size`` tokens.

    Raises:
      ConfigError: a ``block_size`` that is not an integer >= 1, a missing or empty corpus,
        a binary file, a split shorter than ``block_size + 1`` tokens, ``data.mode`` other
        than minibatch, augmentation.
    """
    dc = cfg.data
    if not (isinstance(block_size, int) and not isinstance(block_size, bool) and block_size >= 1):
        raise ConfigError(
            f"--model-arg block_size={block_size!r}: the context must be a whole number of "
            f"tokens >= 1; e.g. block_size={DEFAULT_BLOCK_SIZE}"
        )
    if dc.tokenizer not in ("byte", "bpe"):
        raise ConfigError(f"--tokenizer: unknown {dc.tokenizer!r}; choose byte or bpe")
    if dc.tokenizer == "byte" and dc.vocab_size not in (None, 256):
        raise ConfigError(
            f"--vocab-size {dc.vocab_size}: the byte tokenizer's vocabulary is 256; "
            "use --tokenizer bpe to train another"
        )
    if dc.mode != "minibatch" or dc.replacement or dc.batch_growth or dc.augment:
        raise ConfigError(
            "--mode/--augment: token data is read in random windows of a fixed batch; "
            "drop --mode, --replacement, --batch-growth and --augment"
        )
    splits = _tokens.open_tokens(prepared_folder(dc))
    data = TokenData(name=dc.dataset, splits=splits, block_size=block_size)
    for split in ("val", "test"):  # a split too short for one window: refused now, before
        eval_arrays(data, split)  # anything is written (the training split: by its iterator)
    return data


def train_iterator(data: TokenData, *, batch_size: int, seed: int, process_index: int,
                   process_count: int) -> TokenBatchIterator:  # fmt: skip
    return TokenBatchIterator(
        data.tokens("train"),
        block_size=data.block_size,
        batch_size=batch_size,
        seed=seed,
        process_index=process_index,
        process_count=process_count,
        eod_id=data.splits.eod_id,
    )


def eval_arrays(data: TokenData, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``EVAL_WINDOWS`` windows spread evenly over ``split`` (none when the split is empty; a
    ``ConfigError`` when it is shorter than one window)."""
    tokens = data.tokens(split)
    if len(tokens) == 0:
        empty = np.zeros((0, data.block_size), np.int32)
        return empty, empty
    return eval_windows(tokens, data.block_size, EVAL_WINDOWS, split=split)


EVAL_BATCH = 32
"""Windows per evaluation batch."""


def model_vocabulary(options: dict, data: TokenData) -> int:
    """The model's vocabulary: ``--model-arg vocab_size`` (popped from ``options``; at
    least the tokenizer's, e.g. GPT-2's 50,304 padded for speed), else the tokenizer's."""
    vocab = options.pop("vocab_size", None)
    if vocab is None:
        return data.num_classes
    whole = isinstance(vocab, int) and not isinstance(vocab, bool)
    if not whole or vocab < data.num_classes:
        raise ConfigError(
            f"--model-arg vocab_size={vocab!r}: the tokenizer has {data.num_classes} ids, so "
            f"the model needs a vocabulary of at least {data.num_classes}; drop vocab_size "
            "to use the tokenizer's"
        )
    return vocab


def check_monitor(cfg: Any) -> None:
    """A chosen ``train.monitor`` must be a metric the language model's evaluation reports
    (the default, ``val_accuracy``, is not tracked: nothing is an accuracy here)."""
    from optlab.train import losses

    tc = cfg.train
    names = losses.metric_names("val", "next_token", 0)
    if tc.monitor != "val_accuracy" and tc.monitor not in names:
        raise ConfigError(
            f"--monitor {tc.monitor}: a language model reports {', '.join(names)}; "
            "choose one of them"
        )
    if tc.early_stopping is not None and tc.monitor not in names:
        raise ConfigError("--early-stopping: pass --monitor val_loss for a language model")


def flops_per_token(model: Any, params: Any, block_size: int) -> float:
    """Training FLOPs per token of the GPT (``optlab.models.flops_per_token``: PaLM's
    6·N + 12·L·H·Q·T) at context ``block_size``."""
    from optlab.models import flops_per_token as count

    return float(count(model, params, seq_len=block_size))


def throughput_fields(data: TokenData, model: Any, params: Any, global_batch: int) -> dict:
    """``Setup``'s ``tokens_per_step`` and ``flops_per_token`` for a language model."""
    return {
        "tokens_per_step": global_batch * data.block_size,
        "flops_per_token": flops_per_token(model, params, data.block_size),
    }


decay_mask = path_mask(r"(^|/)(bias|scale)$|(^|/)(wte|wpe)/", exclude=True)
"""Weight decay for the matrices only (GPT-2's and nanoGPT's ``configure_optimizers``): not
for LayerNorm scales, biases (the attention's q/k/v biases are 2-D ``(heads, head_dim)``,
so rank does not tell them from kernels) and the embeddings ``wte``, ``wpe``."""
