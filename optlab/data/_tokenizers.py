"""Tokenizers for language modelling: bytes (nothing to train) and byte-level BPE (issue 12).

Both map text to integer ids and back, name an end-of-document id ``eod_id`` that joins
documents in a token stream, and save themselves to a folder that `load_tokenizer` reads
back (the run folder keeps one, so a resumed run and ``generate`` use the same ids).

- `ByteTokenizer`: the UTF-8 bytes of the text, vocabulary 256. End-of-document is byte 0
  (NUL). Text files holding a NUL byte are refused as binary (`optlab.data._corpus`), so
  NUL never occurs inside a document and id 0 is unambiguous in a prepared stream.
- `BPETokenizer`: GPT-2 style byte-level BPE trained locally with Hugging Face
  ``tokenizers`` (`train_bpe`): the ByteLevel pre-tokenizer maps every byte to one of 256
  printable symbols, so any text round-trips exactly; ``<|endoftext|>`` is the special
  end-of-document token (id 0). That string inside a document is encoded as ordinary text,
  not as the special token, so documents cannot forge a boundary.

A saved folder holds ``tokenizer_meta.json`` (``{"name", "vocab_size", "eod_id"}``) and, for
BPE, Hugging Face's ``tokenizer.json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from optlab.errors import ConfigError, MissingExtraError

META_FILE = "tokenizer_meta.json"
HF_FILE = "tokenizer.json"
EOD_TOKEN = "<|endoftext|>"
TOKENIZERS = ("byte", "bpe")


@runtime_checkable
class Tokenizer(Protocol):
    """What the token pipeline, the trainer and ``generate`` need from a tokenizer."""

    name: str
    vocab_size: int
    eod_id: int

    def encode(self, text: str) -> np.ndarray:
        """The ids of ``text`` (int32, no end-of-document added)."""
        ...

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """The text of ``ids``."""
        ...

    def save(self, directory: str | Path) -> Path:
        """Writes the tokenizer into ``directory`` (created) and returns it."""
        ...

    def to_json(self) -> dict[str, Any]:
        """A small JSON-serializable description: ``{"name", "vocab_size", "eod_id"}``."""
        ...

    @classmethod
    def load(cls, directory: str | Path) -> Tokenizer:
        """The tokenizer that `save` wrote into ``directory``."""
        ...


class ByteTokenizer:
    """UTF-8 bytes as ids: vocabulary 256, end-of-document 0 (NUL, never inside a document).

    Example:
      >>> tok = ByteTokenizer()
      >>> tok.encode("hé").tolist()
      [104, 195, 169]
      >>> tok.decode([104, 195, 169])
      'hé'
      >>> tok.decode_bytes(tok.encode_bytes(b"\\xff\\x00"))
      b'\\xff\\x00'
    """

    name = "byte"
    vocab_size = 256
    eod_id = 0

    def encode(self, text: str) -> np.ndarray:
        """The UTF-8 bytes of ``text`` as int32 ids."""
        return self.encode_bytes(text.encode("utf-8"))

    def encode_bytes(self, data: bytes) -> np.ndarray:
        """Any bytes as int32 ids (exactly invertible by `decode_bytes`)."""
        return np.frombuffer(bytes(data), np.uint8).astype(np.int32)

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """The text of ``ids``; invalid UTF-8 (e.g. a sample cut inside a character)
        becomes U+FFFD. `decode_bytes` gives the bytes exactly."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def decode_bytes(self, ids: Sequence[int] | np.ndarray) -> bytes:
        """The bytes of ``ids`` exactly (each id must lie in [0, 256))."""
        arr = np.asarray(ids, np.int64)
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise ValueError("ByteTokenizer.decode_bytes: ids must lie in [0, 256).")
        return arr.astype(np.uint8).tobytes()

    def save(self, directory: str | Path) -> Path:
        """Writes ``tokenizer_meta.json`` into ``directory``."""
        return _write_meta(directory, self.to_json())

    def to_json(self) -> dict[str, Any]:
        """``{"name": "byte", "vocab_size": 256, "eod_id": 0}``."""
        return {"name": self.name, "vocab_size": self.vocab_size, "eod_id": self.eod_id}

    @classmethod
    def load(cls, directory: str | Path) -> ByteTokenizer:
        """The byte tokenizer (it has no parameters; the folder's meta is checked)."""
        meta = _read_meta(directory)
        if meta.get("name") != cls.name:
            raise ConfigError(f"tokenizer: {Path(directory)} holds a {meta.get('name')!r} one.")
        return cls()


class BPETokenizer:
    """A GPT-2 style byte-level BPE tokenizer (a wrapped ``tokenizers.Tokenizer``).

    Build one with `train_bpe` or `BPETokenizer.load`. ``vocab_size`` is the trained
    vocabulary (at most the requested size: 256 byte symbols, ``<|endoftext|>`` and the
    merges the corpus supports).
    """

    name = "bpe"

    def __init__(self, hf_tokenizer: Any):
        self._tok = hf_tokenizer
        # "<|endoftext|>" inside a document is text, never the end-of-document token.
        self._tok.encode_special_tokens = True
        eod = self._tok.token_to_id(EOD_TOKEN)
        if eod is None:
            raise ConfigError(f"tokenizer: the BPE vocabulary lacks {EOD_TOKEN!r}.")
        self.eod_id = int(eod)
        self.vocab_size = int(self._tok.get_vocab_size(with_added_tokens=True))

    def encode(self, text: str) -> np.ndarray:
        """The ids of ``text`` as int32 (no special tokens added)."""
        ids = self._tok.encode(text, add_special_tokens=False).ids
        return np.asarray(ids, np.int32)

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """The text of ``ids``; end-of-document ids are dropped."""
        ids = [int(i) for i in np.asarray(ids).reshape(-1)]
        return self._tok.decode(ids, skip_special_tokens=True)

    def save(self, directory: str | Path) -> Path:
        """Writes ``tokenizer.json`` and ``tokenizer_meta.json`` into ``directory``."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        self._tok.save(str(path / HF_FILE))
        return _write_meta(path, self.to_json())

    def to_json(self) -> dict[str, Any]:
        """``{"name": "bpe", "vocab_size": V, "eod_id": 0}``."""
        return {"name": self.name, "vocab_size": self.vocab_size, "eod_id": self.eod_id}

    @classmethod
    def load(cls, directory: str | Path) -> BPETokenizer:
        """Reads ``tokenizer.json`` from ``directory``."""
        hf = _hf()
        path = Path(directory) / HF_FILE
        if not path.is_file():
            raise ConfigError(f"tokenizer: {path} is missing; prepare the data again.")
        return cls(hf.Tokenizer.from_file(str(path)))


def train_bpe(texts: Iterable[str], vocab_size: int) -> BPETokenizer:
    """Trains a byte-level BPE tokenizer (GPT-2's recipe) on ``texts``.

    ``models.BPE`` with the ``ByteLevel(add_prefix_space=False)`` pre-tokenizer and decoder,
    trained by ``BpeTrainer(vocab_size, special_tokens=["<|endoftext|>"],
    initial_alphabet=ByteLevel.alphabet())`` so all 256 byte symbols are in the vocabulary
    whatever the corpus: every text, seen or not, encodes and decodes back exactly.

    Args:
      texts: the training documents (an iterable, consumed once).
      vocab_size: the target vocabulary (``--vocab-size``), at least 257.
    """
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 257:
        raise ConfigError(
            f"--vocab-size must be an integer >= 257 for --tokenizer bpe (256 byte symbols "
            f"and {EOD_TOKEN}), got {vocab_size!r}; e.g. --vocab-size 1024."
        )
    hf = _hf()
    tok = hf.Tokenizer(hf.models.BPE())
    tok.pre_tokenizer = hf.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = hf.decoders.ByteLevel()
    trainer = hf.trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOD_TOKEN],
        initial_alphabet=hf.pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return BPETokenizer(tok)


def load_tokenizer(directory: str | Path) -> ByteTokenizer | BPETokenizer:
    """The tokenizer saved in ``directory`` (by `ByteTokenizer.save` / `BPETokenizer.save`)."""
    name = _read_meta(directory).get("name")
    if name == "byte":
        return ByteTokenizer.load(directory)
    if name == "bpe":
        return BPETokenizer.load(directory)
    raise ConfigError(
        f"tokenizer: {Path(directory) / META_FILE} names {name!r}; expected one of {TOKENIZERS}."
    )


def check_tokenizer_name(name: Any) -> str:
    """``name`` if it is a known tokenizer, else a ConfigError naming ``--tokenizer``."""
    if name not in TOKENIZERS:
        raise ConfigError(f"--tokenizer must be one of {', '.join(TOKENIZERS)}; got {name!r}.")
    return name


def _write_meta(directory: str | Path, meta: dict[str, Any]) -> Path:
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    (path / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
    return path


def _read_meta(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / META_FILE
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"tokenizer: {path} is missing; prepare the data again.") from None
    except (OSError, ValueError) as err:
        raise ConfigError(f"tokenizer: cannot read {path}: {err}.") from None
    if not isinstance(meta, dict):
        raise ConfigError(f"tokenizer: {path} is not a JSON object.")
    return meta


def _hf() -> Any:
    try:
        import tokenizers
    except ImportError:  # pragma: no cover - a base dependency of the LM job
        raise MissingExtraError(
            "--tokenizer bpe needs Hugging Face tokenizers: pip install tokenizers"
        ) from None
    return tokenizers
