"""`TokenBatchIterator`: windows of a token memmap as LM batches, on Grain (issue 12).

The stream is a Grain pipeline ``MapDataset.range(∞) → map(window) → batch(local_B) →
to_iter_dataset(ReadOptions(num_threads, prefetch_buffer_size))``: element ``i`` of the
range is one row of this process's share of the global batches, the map reads its
``block_size + 1`` tokens from the memmap, Grain stacks ``local_B`` rows and prefetches
batches in threads. Only the windows in flight are in memory, never the corpus.

Where a window starts is a pure function of (seed, step, row), so the whole position of the
stream is the step, and a resumed run (``restore(state())``) sees exactly the batches an
uninterrupted one would, for any number of processes:

- ``mode="random"``: global row ``r`` of step ``s`` starts at
  ``offset(s, r) = np.random.default_rng([seed, s, r]).integers(0, n - T)``
  (n tokens, T = ``block_size``), so ``offset + T + 1 <= n``.
- ``mode="sequential"``: consecutive, non-overlapping windows; step ``s`` of the epoch
  ``e = s // steps_per_epoch`` covers rows ``q = (s mod steps_per_epoch)·B + r`` at
  ``offset = q·T``. Every token (but the last, which is only a target) is an input once per
  epoch.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from typing import Any

import grain
import numpy as np

from optlab.errors import ConfigError

MODES = ("random", "sequential")
_OWNER = "TokenBatchIterator"


def window_offset(seed: int, step: int, row: int, num_tokens: int, block_size: int) -> int:
    """The start of global row ``row`` of step ``step`` in ``mode="random"`` (see module)."""
    rng = np.random.default_rng([seed, step, row])
    return int(rng.integers(0, num_tokens - block_size))


class TokenBatchIterator(Iterator[dict[str, np.ndarray]]):
    """Yields ``{"x", "y", "mask"}`` (and optionally ``"segment_ids"``) LM batches forever.

    ``x`` and ``y`` are int32 ``(local_B, T)``: each row is a window ``w`` of ``T + 1``
    tokens, ``x = w[:-1]``, ``y = w[1:]`` (next-token targets). ``mask`` is float32
    ``(local_B,)`` of ones (every row is real; the key matches `BatchIterator`'s).
    ``segment_ids`` (int32 ``(local_B, T)``, with ``segment_ids=True``) counts the
    end-of-document ids in ``x`` strictly before each position: equal ids mean the same
    document (an eod token belongs to the document it ends), for attention masks that stop
    at document boundaries.

    Same protocol as `optlab.data.BatchIterator`: ``batch_size`` is the global batch K;
    process ``p`` of ``P`` yields rows ``[p·K/P, (p+1)·K/P)`` of every global batch, and the
    global stream does not depend on P; `state` (JSON-serializable) and `restore` resume.
    An epoch is ``(n - 1) // (K·T)`` steps (at least 1): the number of non-overlapping
    K·T-token batches in the split (a window needs one token past its inputs).

    Args:
      tokens: a 1-D array of ids, typically a read-only ``np.memmap`` (`open_tokens`).
      block_size: T, the tokens per row (``--model-arg block_size``).
      batch_size: the global batch K (``--batch-size``).
      seed: derives every random window.
      process_index, process_count: this process and how many feed the global batch.
      mode: ``"random"`` or ``"sequential"`` (see the module doc).
      prefetch: batches Grain prepares ahead in threads (0: none, read on demand).
      segment_ids: also yield ``"segment_ids"``; needs ``eod_id``.
      eod_id: the end-of-document id (for ``segment_ids``).
      split: the split's name, for error messages.

    Example:
      >>> import numpy as np
      >>> it = TokenBatchIterator(np.arange(100), block_size=4, batch_size=2, seed=0,
      ...                         mode="sequential", prefetch=0)
      >>> b = next(it)
      >>> b["x"].tolist(), b["y"].tolist()
      ([[0, 1, 2, 3], [4, 5, 6, 7]], [[1, 2, 3, 4], [5, 6, 7, 8]])
      >>> it.steps_per_epoch, it.state()["step"]
      (12, 1)
    """

    def __init__(
        self,
        tokens: Any,
        *,
        block_size: int,
        batch_size: int,
        seed: int = 0,
        process_index: int = 0,
        process_count: int = 1,
        mode: str = "random",
        prefetch: int = 2,
        segment_ids: bool = False,
        eod_id: int | None = None,
        split: str = "train",
    ):
        self._tokens = tokens if isinstance(tokens, np.ndarray) else np.asarray(tokens)
        if self._tokens.ndim != 1:
            raise ValueError(f"{_OWNER}: `tokens` must be 1-D, got shape {self._tokens.shape}.")
        n = len(self._tokens)
        for name, value, least in (
            ("block_size", block_size, 1),
            ("batch_size", batch_size, 1),
            ("seed", seed, 0),
            ("process_count", process_count, 1),
            ("process_index", process_index, 0),
            ("prefetch", prefetch, 0),
        ):
            _check_int(name, value, least)
        if mode not in MODES:
            raise ConfigError(f"{_OWNER}: mode must be one of {MODES}, got {mode!r}.")
        if process_index >= process_count:
            raise ConfigError(
                f"{_OWNER}: process_index={process_index} must be < process_count="
                f"{process_count}; use jax.process_index() and jax.process_count()."
            )
        if batch_size % process_count:
            raise ConfigError(
                f"--batch-size {batch_size} must be a multiple of the {process_count} "
                "processes: each feeds an equal share of the global batch."
            )
        if n < block_size + 1:
            raise ConfigError(
                f"block_size={block_size} needs {block_size + 1} tokens per window but the "
                f"{split!r} split has {n}; use a smaller --model-arg block_size or a larger "
                "corpus."
            )
        if segment_ids and eod_id is None:
            raise ValueError(f"{_OWNER}: segment_ids=True needs the tokenizer's eod_id.")
        self.block_size, self.seed, self.mode = int(block_size), int(seed), mode
        self.num_tokens = n
        self.process_index, self.process_count = int(process_index), int(process_count)
        self._batch_size = int(batch_size)
        self._segment_ids, self._eod_id = bool(segment_ids), eod_id
        self._prefetch = int(prefetch)
        self._sequential_rows = (n - 1) // self.block_size
        if mode == "sequential" and self._sequential_rows < batch_size:
            raise ConfigError(
                f"--batch-size {batch_size} x block_size {block_size} needs more than "
                f"{batch_size * block_size} tokens for one sequential batch but the "
                f"{split!r} split has {n}; use a smaller --batch-size or block_size."
            )
        self._step = 0
        self._iter = self._grain_iterator()

    # -- position -----------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        """The global batch K."""
        return self._batch_size

    @property
    def local_batch_size(self) -> int:
        """Rows this process yields per batch: K / P."""
        return self._batch_size // self.process_count

    @property
    def steps_per_epoch(self) -> int:
        """``max(1, (n - 1) // (K·T))``: non-overlapping batches in the split."""
        return max(1, (self.num_tokens - 1) // (self._batch_size * self.block_size))

    @property
    def step(self) -> int:
        """Batches yielded so far (the global step of the next batch)."""
        return self._step

    @property
    def epoch(self) -> int:
        """The epoch of the next batch: ``step // steps_per_epoch``."""
        return self._step // self.steps_per_epoch

    def state(self) -> dict[str, Any]:
        """The position, as JSON-serializable ints and strings (saved in the checkpoint)."""
        return {
            "step": self._step,
            "epoch": self.epoch,
            "batch_size": self._batch_size,
            "block_size": self.block_size,
            "num_tokens": self.num_tokens,
            "seed": self.seed,
            "mode": self.mode,
            "grain": {k: int(v) for k, v in self._iter.get_state().items()},
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Continues from a position returned by `state` of an iterator over the same tokens.

        The token count, block size, batch size, seed and mode must match (else a
        ConfigError naming the field); the process count may differ.
        """
        if "step" not in state:
            raise ValueError(f"{_OWNER}.restore: the state lacks 'step'; pass state().")
        mine = {"num_tokens": self.num_tokens, "block_size": self.block_size}
        mine.update(batch_size=self._batch_size, seed=self.seed, mode=self.mode)
        for key, value in mine.items():
            if key in state and state[key] != value:
                raise ConfigError(
                    f"{_OWNER}.restore: the checkpoint's data iterator has {key}="
                    f"{state[key]!r} but this run has {value!r}; resume with the same data, "
                    "--batch-size, block_size, --seed and mode."
                )
        step = int(state["step"])
        if step < 0:
            raise ValueError(f"{_OWNER}.restore: invalid step {step}.")
        self.close()
        self._iter = self._grain_iterator()
        # Grain's position counts batches of this process's rows: the global step.
        self._iter.set_state({"next_index": step})
        self._step = step

    # -- batches ------------------------------------------------------------------------
    def __iter__(self) -> TokenBatchIterator:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        batch = next(self._iter)
        self._step += 1
        return batch

    def close(self) -> None:
        """Stops Grain's prefetch threads (the iterator is not used afterwards)."""
        close = getattr(self._iter, "close", None)
        if close is not None:
            close()

    def global_offsets(self, step: int) -> np.ndarray:
        """The start offsets (int64, ``(K,)``) of every row of global batch ``step``."""
        return np.asarray([self._offset(step, r) for r in range(self._batch_size)], np.int64)

    def _offset(self, step: int, row: int) -> int:
        if self.mode == "random":
            return window_offset(self.seed, step, row, self.num_tokens, self.block_size)
        q = (step % self.steps_per_epoch) * self._batch_size + row
        return (q % self._sequential_rows) * self.block_size

    def _row(self, index: int) -> dict[str, np.ndarray]:
        local = self.local_batch_size
        step, j = divmod(index, local)
        offset = self._offset(step, self.process_index * local + j)
        window = np.asarray(self._tokens[offset : offset + self.block_size + 1], np.int32)
        row = {"x": window[:-1], "y": window[1:], "mask": np.float32(1.0)}
        if self._segment_ids:
            eod = (window[:-1] == self._eod_id).astype(np.int32)
            row["segment_ids"] = np.cumsum(eod, dtype=np.int32) - eod
        return row

    def _grain_iterator(self):
        ds = grain.MapDataset.range(sys.maxsize).map(self._row)
        ds = ds.batch(self.local_batch_size, drop_remainder=True)
        options = grain.ReadOptions(
            num_threads=min(self._prefetch, 4) if self._prefetch else 0,
            prefetch_buffer_size=self._prefetch,
        )
        return iter(ds.to_iter_dataset(options))


def eval_windows(
    tokens: Any, block_size: int, max_windows: int | None = None, *, split: str = "val"
) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping windows for evaluation, spread evenly over the whole split.

    The split holds ``M = (n - 1) // T`` aligned windows ``x = tokens[jT:(j+1)T]``,
    ``y = tokens[jT+1:(j+1)T+1]``; this returns ``m = min(max_windows, M)`` of them, every
    ``k``-th (``j = i·k``, ``k = M // m``), as int32 ``(m, T)``: all of them when
    ``max_windows`` is None or at least ``M``. Spread, not the first ``m``: a split is
    documents joined in file order, and its first windows would be one file (the stdlib's
    test split opens with ``_sysconfigdata``, a table of compiler flags, and its first
    8,192 bytes cost twice the bits of the split as a whole). Deterministic; ConfigError
    when the split is shorter than ``block_size + 1`` tokens."""
    _check_int("block_size", block_size, 1)
    n = len(tokens)
    total = (n - 1) // block_size if n else 0
    m = total
    if max_windows is not None:
        _check_int("max_windows", max_windows, 1)
        m = min(m, max_windows)
    if m < 1:
        raise ConfigError(
            f"block_size={block_size} needs {block_size + 1} tokens per window but the "
            f"{split!r} split has {n}; use a smaller --model-arg block_size or a larger corpus."
        )
    starts = np.arange(m, dtype=np.int64) * (total // m) * block_size
    rows = starts[:, None] + np.arange(block_size + 1)  # each window and its last target
    span = np.asarray(tokens[rows.reshape(-1)], np.int32).reshape(m, block_size + 1)
    return span[:, :-1], span[:, 1:]


def _check_int(name: str, value: Any, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
        raise ConfigError(f"{_OWNER}: `{name}` must be an integer >= {least}, got {value!r}.")
