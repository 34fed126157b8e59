"""`BatchIterator`: full-batch, mini-batch and online batches of one fixed shape (lectures 04, 05).

The order of the data is a pure function of (seed, epoch) and, with replacement, of (seed,
epoch, step): the iterator's whole state is four integers, so a resumed run continues with
exactly the batches an uninterrupted one would have seen.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from optlab import _validation

MODES = ("full", "minibatch", "online")
_OWNER = "BatchIterator"


class BatchIterator(Iterator[dict[str, np.ndarray]]):
    """Yields ``{"x", "y", "mask"}`` batches of one fixed shape, forever, epoch after epoch.

    Lecture 04 writes gradient descent on all N examples and SGD on a random subset
    ``I = choose({1..N}, K)``; lecture 05 calls them batch, stochastic (K = 1, "online")
    and mini-batch gradient descent. ``mode`` picks one:

    - ``"full"``: every batch is the whole split, one step per epoch (``batch_size`` is
      ignored; the data are not shuffled, which does not change the full-batch gradient).
    - ``"minibatch"``: batches of ``batch_size`` (K). Without replacement each epoch is a
      permutation ``np.random.default_rng([seed, epoch]).permutation(n)`` cut into
      consecutive slices, so every example is seen exactly once per epoch. With
      ``replacement=True`` each step draws K indices uniformly with replacement from
      ``np.random.default_rng([seed, epoch, step])``; an epoch is then ⌈n / K⌉ steps.
    - ``"online"``: K = 1, one pass over the shuffled stream per epoch (or one index drawn
      with replacement per step).

    Fixed shape: the last, partial batch of an epoch is filled up to K by repeating the first
    examples of that epoch's order, and ``mask`` (float32, 1 for a real row, 0 for a padded
    one) tells them apart, so a jitted step never recompiles. Weight the loss by the mask:
    ``sum(mask · loss) / sum(mask)``. ``drop_remainder=True`` drops the partial batch instead.
    Over one epoch without replacement the masks sum to n.

    Several processes: ``batch_size`` is the *global* batch; process ``p`` of ``P`` yields the
    contiguous block of rows ``[p·K/P, (p+1)·K/P)`` of every global batch, which is the layout
    ``jax.make_array_from_process_local_data(sharding, local_batch)`` expects for a batch
    axis sharded over devices ordered by process. K must divide by P. The global stream does
    not depend on P, so a run may resume with a different number of processes.

    Growing batch size (lecture 04: "K can be increased over the course of training"):
    ``batch_size_schedule=[(step, K), ...]`` switches to K at that global step (before the
    first listed step, ``batch_size`` applies). The epoch continues from the same example
    when K changes. Each distinct K is one more batch shape, so a jitted step compiles
    once per phase.

    Position: `state` returns ``{"epoch", "index", "step", "batch_size", "phase", ...}``
    (JSON-serializable; ``index`` is the position within the epoch's order) and `restore`
    puts an iterator built with the same data, seed and options back there.

    Args:
      x, y: arrays with the same first dimension n.
      batch_size: global batch size K (``--batch-size``); ignored for ``"full"``, 1 or None
        for ``"online"``.
      seed: derives every permutation and sample.
      shuffle: permute each epoch (ignored for ``"full"`` and with replacement).
      mode: ``"full"``, ``"minibatch"`` or ``"online"``.
      replacement: sample indices with replacement (``"minibatch"`` and ``"online"``).
      drop_remainder: drop each epoch's partial batch instead of padding it.
      process_index, process_count: this process and how many feed the global batch.
      batch_size_schedule: ``[(step, batch_size), ...]`` with increasing steps.

    Example:
      >>> import numpy as np
      >>> from optlab.data import BatchIterator
      >>> x, y = np.arange(10.0)[:, None], np.arange(10)
      >>> it = BatchIterator(x, y, batch_size=4, seed=0)
      >>> it.steps_per_epoch
      3
      >>> [b["mask"].tolist() for b in (next(it), next(it), next(it))]
      [[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]]
      >>> it.state()["epoch"], it.state()["step"]
      (1, 3)
    """

    def __init__(
        self,
        x: Any,
        y: Any,
        *,
        batch_size: int | None = None,
        seed: int = 0,
        shuffle: bool = True,
        mode: str = "minibatch",
        replacement: bool = False,
        drop_remainder: bool = False,
        process_index: int = 0,
        process_count: int = 1,
        batch_size_schedule: Sequence[tuple[int, int]] | None = None,
    ):
        self._x, self._y = np.asarray(x), np.asarray(y)
        n = len(self._x)
        if n == 0 or len(self._y) != n:
            raise ValueError(
                f"{_OWNER}: `x` and `y` must hold the same number (>= 1) of examples, got "
                f"{len(self._x)} and {len(self._y)}."
            )
        _validation.check_choice(_OWNER, "mode", mode, MODES)
        _check_int("seed", seed, 0, "Use e.g. --seed 0.")
        _check_int("process_count", process_count, 1, "Use jax.process_count().")
        _check_int("process_index", process_index, 0, "Use jax.process_index().")
        if process_index >= process_count:
            _validation.fail(
                _OWNER,
                "process_index",
                process_index,
                f"< process_count={process_count}",
                "Use jax.process_index() and jax.process_count().",
            )
        if mode == "full" and (replacement or batch_size_schedule):
            raise ValueError(
                f"{_OWNER}: mode='full' uses the whole split every step; `replacement` and "
                "`batch_size_schedule` need mode='minibatch' (or 'online')."
            )
        if mode == "online" and (batch_size not in (None, 1) or batch_size_schedule):
            raise ValueError(
                f"{_OWNER}: mode='online' takes one example per step; got batch_size="
                f"{batch_size!r}{' and a batch_size_schedule' if batch_size_schedule else ''}. "
                "Use mode='minibatch' for --batch-size > 1."
            )
        self.num_examples, self.seed, self.mode = n, int(seed), mode
        self.shuffle, self.replacement = bool(shuffle), bool(replacement)
        self.drop_remainder = bool(drop_remainder) and mode != "full"
        self.process_index, self.process_count = int(process_index), int(process_count)
        if mode == "full":
            self.phases = ((0, math.ceil(n / process_count) * process_count),)
        elif mode == "online":
            self.phases = ((0, 1),)
        else:
            self.phases = _phases(batch_size, batch_size_schedule)
        for _, size in self.phases:
            self._check_size(size)
        self._epoch = self._index = self._step = 0
        self._order_cache: tuple[int, np.ndarray] | None = None

    # -- position -----------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        """Epochs completed: the epoch the next batch comes from."""
        return self._epoch

    @property
    def step(self) -> int:
        """Batches yielded so far (the global step of the next batch)."""
        return self._step

    @property
    def phase(self) -> int:
        """Index into `phases` of the next batch's batch size."""
        return max(i for i, (start, _) in enumerate(self.phases) if start <= self._step)

    @property
    def batch_size(self) -> int:
        """Global size of the next batch (padded rows included)."""
        return self.phases[self.phase][1]

    @property
    def local_batch_size(self) -> int:
        """Rows of the next batch that this process yields."""
        return self.batch_size // self.process_count

    @property
    def steps_per_epoch(self) -> int:
        """Steps in one epoch at the current batch size."""
        if self.mode == "full":
            return 1
        k = self.batch_size
        return self.num_examples // k if self.drop_remainder else math.ceil(self.num_examples / k)

    def state(self) -> dict[str, Any]:
        """The position, as JSON-serializable Python ints and strings."""
        return {
            "epoch": self._epoch,
            "index": self._index,
            "step": self._step,
            "batch_size": self.batch_size,
            "phase": self.phase,
            "num_examples": self.num_examples,
            "seed": self.seed,
            "mode": self.mode,
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Continues from a position returned by `state` (of an iterator like this one).

        The data size, seed and mode must match (else a ValueError). The batch size comes
        from this iterator's own ``batch_size``/schedule at the restored step, so a run may
        resume with another ``--batch-size`` or process count: the epoch then continues
        from the same example.
        """
        missing = sorted({"epoch", "index", "step"} - set(state))
        if missing:
            raise ValueError(f"{_OWNER}.restore: the state lacks {missing}; pass state().")
        for key in ("num_examples", "seed", "mode"):
            if key in state and state[key] != getattr(self, key):
                raise ValueError(
                    f"{_OWNER}.restore: the state was saved with {key}={state[key]!r} but this "
                    f"iterator has {key}={getattr(self, key)!r}; build it with the same data, "
                    "seed and mode as the checkpointed run."
                )
        epoch, index, step = (int(state[k]) for k in ("epoch", "index", "step"))
        if min(epoch, index, step) < 0 or index >= self.num_examples:
            raise ValueError(f"{_OWNER}.restore: invalid position {dict(state)!r}.")
        self._epoch, self._index, self._step = epoch, index, step
        self._roll_over()

    # -- batches ------------------------------------------------------------------------
    def __iter__(self) -> BatchIterator:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        batch = self.next_indices()
        indices = batch["index"]
        return {"x": self._x[indices], "y": self._y[indices], "mask": batch["mask"]}

    def next_indices(self) -> dict[str, np.ndarray]:
        """The next batch as row numbers into ``x``/``y`` (int32) and its mask, advancing
        exactly as ``next()`` does: for data kept on the device, gathered there."""
        size = self.batch_size
        indices, mask = self._global_batch(self._epoch, self._index, self._step, size)
        lo = self.process_index * (size // self.process_count)
        rows = slice(lo, lo + size // self.process_count)
        indices, mask = indices[rows], mask[rows]
        self._index += size
        self._step += 1
        self._roll_over()
        return {"index": indices.astype(np.int32), "mask": mask}

    def _global_batch(self, epoch: int, index: int, step: int, size: int):
        n = self.num_examples
        if self.replacement:
            indices = np.random.default_rng([self.seed, epoch, step]).integers(0, n, size)
            return indices, np.ones(size, np.float32)
        order = self._order(epoch)
        indices = order[index : index + size]
        real = len(indices)
        if real < size:  # the last batch of the epoch: fill with the epoch's first examples
            indices = np.concatenate([indices, order[np.arange(size - real) % n]])
        mask = np.zeros(size, np.float32)
        mask[:real] = 1.0
        return indices, mask

    def _order(self, epoch: int) -> np.ndarray:
        if self._order_cache is None or self._order_cache[0] != epoch:
            if self.shuffle and self.mode != "full":
                order = np.random.default_rng([self.seed, epoch]).permutation(self.num_examples)
            else:
                order = np.arange(self.num_examples)
            self._order_cache = (epoch, order)
        return self._order_cache[1]

    def _roll_over(self) -> None:
        """Starts the next epoch when this one has no (full, with drop_remainder) batch left."""
        left = self.num_examples - self._index
        if left <= 0 or (self.drop_remainder and left < self.batch_size):
            self._epoch += 1
            self._index = 0

    def _check_size(self, size: int) -> None:
        n, p = self.num_examples, self.process_count
        if self.mode != "full" and size > n:
            _validation.fail(
                _OWNER,
                "batch_size",
                size,
                f"at most the {n} examples of this split",
                "Use a smaller --batch-size, or mode='full' for full-batch gradient descent.",
            )
        if size % p:
            _validation.fail(
                _OWNER,
                "batch_size",
                size,
                f"a multiple of process_count={p}",
                f"Each process feeds an equal share: use a --batch-size divisible by {p}.",
            )


def _check_int(name: str, value: Any, least: int, fix: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
        _validation.fail(_OWNER, name, value, f"an integer >= {least}", fix)


def _phases(batch_size: int | None, schedule: Sequence[tuple[int, int]] | None):
    pairs = list(schedule or ())
    for item in pairs:
        if not (isinstance(item, Sequence) and len(item) == 2):
            _validation.fail(
                _OWNER,
                "batch_size_schedule",
                schedule,
                "a list of (step, batch_size) pairs",
                "Use e.g. [(0, 32), (1000, 256)].",
            )
        _check_int("batch_size_schedule", item[0], 0, "Steps must be integers >= 0.")
    steps = [int(s) for s, _ in pairs]
    if steps != sorted(set(steps)):
        _validation.fail(
            _OWNER,
            "batch_size_schedule",
            schedule,
            "in strictly increasing steps",
            "Use e.g. [(0, 32), (1000, 256)].",
        )
    phases = [(0, batch_size)] if batch_size is not None and (not steps or steps[0] > 0) else []
    phases += [(int(s), k) for s, k in pairs]
    if not phases or phases[0][0] != 0:
        _validation.fail(
            _OWNER,
            "batch_size",
            batch_size,
            "an integer >= 1 (--batch-size)",
            "Give --batch-size, or a batch_size_schedule whose first phase starts at step 0.",
        )
    for _, size in phases:
        _check_int("batch_size", size, 1, "Use a --batch-size >= 1, e.g. 32.")
    return tuple((s, int(k)) for s, k in phases)
