"""`wrap_iterator`: any user iterable of batches in the trainer's ``{"x", "y", "mask"}`` form."""

from __future__ import annotations

import base64
import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

# (save, load) method pairs of known stateful loaders, looked for on the object passed in,
# then on its iterator: optlab's own, grain iterators (`iter(grain.DataLoader(...))`,
# `grain.MapDataset...to_iter_dataset()`), torchdata's StatefulDataLoader.
_PROTOCOLS = (("state", "restore"), ("get_state", "set_state"), ("state_dict", "load_state_dict"))
_KEYS = (("x", "y"), ("image", "label"), ("inputs", "targets"))
_BYTES = "__bytes_base64__"


class WrappedIterator(Iterator[dict[str, np.ndarray]]):
    """See `wrap_iterator`."""

    def __init__(self, source: Iterable[Any], *, batch_size: int | None = None):
        if batch_size is not None and (isinstance(batch_size, bool) or batch_size < 1):
            raise ValueError(f"wrap_iterator: `batch_size` must be >= 1 or None, got {batch_size}.")
        self._source, self.batch_size = source, batch_size
        self._restartable = not isinstance(source, Iterator)
        self._it = iter(source)
        self.step = 0  # batches yielded
        self.epoch = 0  # completed passes over a re-iterable source

    @property
    def checkpointable(self) -> bool:
        """Whether the user's object can save and restore its position."""
        return self._protocol() is not None

    def _protocol(self) -> tuple[Any, str, str] | None:
        for holder in (self._source, self._it):
            for save, load in _PROTOCOLS:
                if callable(getattr(holder, save, None)) and callable(getattr(holder, load, None)):
                    return holder, save, load
        return None

    def state(self) -> dict[str, Any]:
        """``{"step", "epoch", "checkpointable", "inner"}``; ``inner`` is the user's state.

        Bytes (grain's ``DataLoaderIterator.get_state()``) are stored as base64 text, so the
        state is JSON-serializable whenever the user's state is.
        """
        out: dict[str, Any] = {"step": self.step, "epoch": self.epoch}
        protocol = self._protocol()
        out["checkpointable"] = protocol is not None
        if protocol is not None:
            holder, save, _ = protocol
            inner = getattr(holder, save)()
            if isinstance(inner, bytes):
                inner = {_BYTES: base64.b64encode(inner).decode("ascii")}
            out["inner"] = inner
        return out

    def restore(self, state: Mapping[str, Any]) -> None:
        """Puts the user's iterator back where `state` was taken, when it supports that.

        When it does not, the counters are restored, a warning says the data position is
        not checkpointed, and batches continue from wherever the user's iterator is.
        """
        self.step, self.epoch = int(state.get("step", 0)), int(state.get("epoch", 0))
        protocol = self._protocol()
        if protocol is None or "inner" not in state:
            warnings.warn(
                "wrap_iterator: the wrapped iterator has no state()/restore(), get_state()/"
                "set_state() or state_dict()/load_state_dict(), so its data position is not "
                "checkpointed; after resuming, batches continue from where it is now.",
                stacklevel=2,
            )
            return
        holder, _, load = protocol
        inner = state["inner"]
        if isinstance(inner, Mapping) and set(inner) == {_BYTES}:
            inner = base64.b64decode(inner[_BYTES])
        getattr(holder, load)(inner)

    def __iter__(self) -> WrappedIterator:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        try:
            raw = next(self._it)
        except StopIteration:
            if not self._restartable:
                raise
            self.epoch += 1
            self._it = iter(self._source)
            raw = next(self._it)  # an empty source ends here too
        self.step += 1
        return _as_batch(raw, self.batch_size)


def wrap_iterator(source: Iterable[Any], *, batch_size: int | None = None) -> WrappedIterator:
    """Turns any iterable of batches into ``{"x", "y", "mask"}`` NumPy batches.

    A batch may be a pair ``(x, y)``, a triple ``(x, y, mask)``, or a mapping with keys
    ``x``/``y`` (or ``image``/``label``, ``inputs``/``targets``) and optionally ``mask``;
    arrays of any library that NumPy can read (jax, torch CPU tensors, tf) are converted
    with ``np.asarray``. Without a mask, the mask is all ones.

    With ``batch_size``, a smaller batch (a loader's last one) is filled up to that size by
    repeating its rows with mask 0, so that a jitted step sees one shape; a larger batch is
    an error. Without it, shapes are the user's, and each new shape compiles once more.

    An *iterator* ends when it ends; a re-iterable object (a DataLoader, a list) is iterated
    again when a pass ends, forever, and ``epoch`` counts the passes.

    Position: ``state()`` and ``restore(state)`` forward to the user's object when it has
    ``state``/``restore``, ``get_state``/``set_state`` (a grain ``DataLoader``'s iterator
    or dataset iterator) or ``state_dict``/``load_state_dict`` (torchdata's
    ``StatefulDataLoader``), looked for on ``source`` and then on ``iter(source)``.
    Otherwise the position is not checkpointed: ``checkpointable`` is False, and
    ``restore`` warns and continues from the iterator's current position.

    Example:
      >>> import numpy as np
      >>> from optlab.data import wrap_iterator
      >>> data = [(np.ones((4, 2)), np.zeros(4)), (np.ones((3, 2)), np.zeros(3))]
      >>> it = wrap_iterator(data, batch_size=4)
      >>> [next(it)["mask"].tolist() for _ in range(3)]
      [[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]]
      >>> it.epoch, it.checkpointable
      (1, False)
    """
    return WrappedIterator(source, batch_size=batch_size)


def _as_batch(raw: Any, batch_size: int | None) -> dict[str, np.ndarray]:
    mask = None
    if isinstance(raw, Mapping):
        keys = next((k for k in _KEYS if k[0] in raw and k[1] in raw), None)
        if keys is None:
            raise ValueError(
                f"wrap_iterator: a dict batch needs keys 'x' and 'y' (or image/label, "
                f"inputs/targets); got {sorted(raw)}."
            )
        x, y, mask = raw[keys[0]], raw[keys[1]], raw.get("mask")
    elif isinstance(raw, tuple | list) and len(raw) in (2, 3):
        x, y = raw[0], raw[1]
        mask = raw[2] if len(raw) == 3 else None
    else:
        raise ValueError(
            "wrap_iterator: each batch must be (x, y), (x, y, mask) or a dict with 'x' and "
            f"'y'; got {type(raw).__name__}."
        )
    x, y = np.asarray(x), np.asarray(y)
    mask = np.ones(len(x), np.float32) if mask is None else np.asarray(mask, np.float32)
    if not (len(x) == len(y) == len(mask)):
        raise ValueError(
            f"wrap_iterator: x, y and mask differ in length ({len(x)}, {len(y)}, {len(mask)})."
        )
    if batch_size is not None and len(x) != batch_size:
        if len(x) > batch_size or len(x) == 0:
            raise ValueError(
                f"wrap_iterator: a batch of {len(x)} rows does not fit `batch_size`="
                f"{batch_size}; make the loader's batch size match --batch-size."
            )
        fill = np.arange(batch_size) % len(x)
        x, y, pad_mask = x[fill], y[fill], mask[fill]
        pad_mask[len(mask) :] = 0.0
        mask = pad_mask
    return {"x": x, "y": y, "mask": mask}
