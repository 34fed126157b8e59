"""Token memmaps in nanoGPT's layout: ``train.bin``, ``val.bin``, ``test.bin`` (issue 12).

`prepare_text` (``optlab prepare-text SRC --out DIR``) and `prepare_pystdlib` tokenize a
corpus into a folder holding

- ``train.bin`` / ``val.bin`` / ``test.bin``: the ids as raw little-endian ``uint16`` (a
  vocabulary of at most 65,536) or ``uint32``, each document followed by the tokenizer's
  end-of-document id: ``doc_1 eod doc_2 eod ... doc_n eod``;
- ``meta.json``: the tokenizer (``name``, ``vocab_size``, ``eod_id``), ``dtype``, per split
  the ``tokens`` (eod included), UTF-8 ``bytes`` of the documents (eod excluded: the
  denominator of bits per byte) and ``documents``, and the ``source`` fingerprint;
- ``tokenizer/``: the saved tokenizer (`optlab.data._tokenizers.load_tokenizer`).

`open_tokens` maps the splits read-only (``np.memmap``, mode ``"r"``): a corpus larger than
memory is never loaded, only the pages a window touches are read.

Splits. A folder: each file is a document, assigned by `split_of` (a hash of its path
relative to the folder, 90/5/5 by default). One file: it is cut by character position into
three documents, the first 90 % train, the next 5 % val, the last 5 % test. The BPE
tokenizer is trained on the train split only.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from optlab.data import _corpus
from optlab.data._corpus import DEFAULT_FRACTIONS, SPLITS
from optlab.data._tokenizers import (
    ByteTokenizer,
    check_tokenizer_name,
    load_tokenizer,
    train_bpe,
)
from optlab.errors import ConfigError

META = "meta.json"
TOKENIZER_DIR = "tokenizer"
FORMAT = "optlab-tokens/1"


@dataclass(frozen=True)
class TokenSplits:
    """A prepared token folder: read-only memmaps per split and its ``meta.json``.

    ``train``, ``val`` and ``test`` are 1-D ``np.memmap`` arrays (an empty split is an empty
    array); ``meta`` is the parsed ``meta.json``; `tokenizer` loads the saved tokenizer.
    """

    path: Path
    meta: dict[str, Any]
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def split(self, name: str) -> np.ndarray:
        """The memmap of split ``name`` (``"train"``, ``"val"`` or ``"test"``)."""
        if name not in SPLITS:
            raise ConfigError(f"split must be one of {SPLITS}, got {name!r}.")
        return getattr(self, name)

    def tokenizer(self):
        """The tokenizer these ids came from."""
        return load_tokenizer(self.path / TOKENIZER_DIR)

    @property
    def vocab_size(self) -> int:
        return int(self.meta["vocab_size"])

    @property
    def eod_id(self) -> int:
        return int(self.meta["eod_id"])


def prepare_text(
    src: str | Path,
    out_dir: str | Path,
    tokenizer: str = "byte",
    vocab_size: int | None = None,
    splits: Sequence[float] = DEFAULT_FRACTIONS,
) -> Path:
    """Tokenizes a text file or a folder of text files into ``out_dir`` (see the module doc).

    Every input is checked before anything is written (missing or empty corpus, binary file,
    unknown tokenizer: a one-line ConfigError naming ``SRC`` or the flag); the files are
    written under temporary names and renamed at the end.

    Args:
      src: a UTF-8 text file or a folder of them (``SRC``).
      out_dir: the output folder (``--out``), created.
      tokenizer: ``"byte"`` or ``"bpe"`` (``--tokenizer``).
      vocab_size: the BPE vocabulary (``--vocab-size``; default 1024); must be None or 256
        for ``"byte"``.
      splits: the (train, val, test) fractions.

    Returns:
      ``out_dir`` as a Path.
    """
    check_tokenizer_name(tokenizer)
    _corpus._check_fractions(splits)
    root = Path(src)
    files = _corpus.text_files(root, flag="SRC")
    if root.is_file():
        source = {"name": "file", "path": str(root.resolve()), "files": 1}

        def documents(split: str) -> Iterator[str]:
            text = _corpus.read_text(root)
            cut1 = round(len(text) * splits[0])
            cut2 = round(len(text) * (splits[0] + splits[1]))
            part = {"train": text[:cut1], "val": text[cut1:cut2], "test": text[cut2:]}[split]
            if part:
                yield part
    else:
        rel = [f.relative_to(root).as_posix() for f in files]
        source = {
            "name": "folder",
            "path": str(root.resolve()),
            "files": len(rel),
            "digest": _corpus.list_digest(rel),
        }
        assigned = {r: _corpus.split_of(r, splits) for r in rel}

        def documents(split: str) -> Iterator[str]:
            for r, f in zip(rel, files, strict=True):
                if assigned[r] == split:
                    yield _corpus.read_text(f)

    return _write(out_dir, documents, tokenizer, vocab_size, source)


def prepare_pystdlib(
    out_dir: str | Path, tokenizer: str = "byte", vocab_size: int | None = None
) -> Path:
    """Tokenizes the built-in corpus (`optlab.data._corpus.pystdlib_files`, split 90/5/5 by
    `split_of`) into ``out_dir``; ``meta["source"]`` is its `corpus_fingerprint`."""
    check_tokenizer_name(tokenizer)
    root = _corpus.pystdlib_root()
    files = _corpus.pystdlib_files()
    assigned = {r: _corpus.split_of(r) for r in files}

    def documents(split: str) -> Iterator[str]:
        for r in files:
            if assigned[r] == split:
                yield (root / r).read_text("utf-8")

    return _write(out_dir, documents, tokenizer, vocab_size, _corpus.corpus_fingerprint())


def open_tokens(directory: str | Path) -> TokenSplits:
    """Maps a prepared folder read-only (never loaded into memory).

    ConfigError naming ``--data-dir`` (the flag that gives this folder to ``optlab train``)
    when the folder, ``meta.json`` or a ``.bin`` is missing, ``meta.json`` is not one that
    `prepare_text` writes, or a ``.bin``'s size disagrees with it (a truncated copy).
    """
    path = Path(directory)
    meta_path = path / META
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"--data-dir: {meta_path} is missing; run `optlab prepare-text SRC --out {path}` first."
        ) from None
    except (OSError, ValueError) as err:
        raise ConfigError(f"--data-dir: cannot read {meta_path}: {err}.") from None
    try:
        dtype = np.dtype(meta["dtype"])
        expected = {split: int(meta["splits"][split]["tokens"]) for split in SPLITS}
        int(meta["vocab_size"]), int(meta["eod_id"])
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(
            f"--data-dir: {meta_path} is not an optlab token folder's meta.json (bad or "
            f"missing {err}); prepare the data again with `optlab prepare-text`."
        ) from None
    arrays = {}
    for split in SPLITS:
        file = path / f"{split}.bin"
        size = file.stat().st_size if file.is_file() else -1
        if size != expected[split] * dtype.itemsize:
            raise ConfigError(
                f"--data-dir: {file} should hold {expected[split]} {dtype.name} tokens "
                f"({expected[split] * dtype.itemsize} bytes) but has {max(size, 0)} bytes"
                f"{'' if size >= 0 else ' (missing)'}; prepare the data again."
            )
        arrays[split] = (
            np.memmap(file, dtype=dtype, mode="r") if expected[split] else np.zeros(0, dtype)
        )
    return TokenSplits(path=path, meta=meta, **arrays)


def token_dtype(vocab_size: int) -> np.dtype:
    """``uint16`` for a vocabulary of at most 65,536 ids, else ``uint32``."""
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


def _write(out_dir, documents, tokenizer_name, vocab_size, source) -> Path:
    if tokenizer_name == "byte":
        if vocab_size not in (None, 256):
            raise ConfigError(
                f"--vocab-size is 256 for --tokenizer byte, got {vocab_size!r}; "
                "drop --vocab-size or use --tokenizer bpe."
            )
        tok = ByteTokenizer()
    else:
        tok = train_bpe(documents("train"), 1024 if vocab_size is None else vocab_size)
    dtype = token_dtype(tok.vocab_size)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".prepare-", dir=out))
    try:
        counts = {}
        for split in SPLITS:
            counts[split] = _write_split(tmp / f"{split}.bin", documents(split), tok, dtype)
        tok.save(tmp / TOKENIZER_DIR)
        meta = {
            "format": FORMAT,
            "tokenizer": tok.to_json(),
            "vocab_size": tok.vocab_size,
            "eod_id": tok.eod_id,
            "dtype": dtype.name,
            "splits": counts,
            "source": source,
        }
        (tmp / META).write_text(json.dumps(meta, indent=1) + "\n")
        shutil.rmtree(out / TOKENIZER_DIR, ignore_errors=True)
        for name in [f"{s}.bin" for s in SPLITS] + [TOKENIZER_DIR, META]:
            os.replace(tmp / name, out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _write_split(path: Path, docs: Iterator[str], tok, dtype: np.dtype) -> dict[str, int]:
    tokens = n_bytes = n_docs = 0
    eod = np.asarray([tok.eod_id], dtype)
    with open(path, "wb") as f:
        for text in docs:
            ids = np.asarray(tok.encode(text)).astype(dtype.newbyteorder("<"))
            f.write(ids.tobytes())
            f.write(eod.astype(dtype.newbyteorder("<")).tobytes())
            tokens += len(ids) + 1
            n_bytes += len(text.encode("utf-8"))
            n_docs += 1
    return {"tokens": tokens, "bytes": n_bytes, "documents": n_docs}
