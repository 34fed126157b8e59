"""Checks of a data set's arrays before anything trains on them: shapes that belong together,
numbers, and class labels that are whole numbers in ``[0, num_classes)``.

A label outside that range does not fail loudly in JAX: the cross-entropy's gather of label
200 of 10 classes reads NaN (reported as a non-finite loss in some layer), and label −1
wraps to the last class and trains silently on it. So the labels are checked on the host,
once, naming the split, the first bad value and the valid range.

Non-finite inputs are not refused here: they are a training-time matter that
``train.nonfinite`` handles (``skip`` trains on past the batches that hold one).
"""

from __future__ import annotations

from typing import Any

import numpy as np

SPLITS = ("train", "val", "test")
TASKS = ("classification", "regression")


def check_labels(y: Any, num_classes: int, where: str) -> None:
    """Refuses class labels that are not whole numbers in ``[0, num_classes)``.

    ``where`` names the labels in the message (``"dataset: y_train"``, a file's path).

    Raises:
      ValueError: one line naming ``where``, the first bad value, its row and the range.
    """
    y = np.asarray(y)
    valid = f"labels of a {num_classes}-class task are whole numbers in [0, {num_classes})"
    if y.ndim != 1:
        raise ValueError(f"{where} has shape {y.shape}; {valid}, one per example: shape (n,)")
    if y.dtype == bool or len(y) == 0:
        return
    if not np.issubdtype(y.dtype, np.number) or np.issubdtype(y.dtype, np.complexfloating):
        raise ValueError(f"{where} holds {y.dtype} values; {valid}")
    if np.issubdtype(y.dtype, np.floating):
        with np.errstate(invalid="ignore"):
            fractional = ~np.isfinite(y) | (y != np.round(y))
        if fractional.any():
            row = int(np.argmax(fractional))
            raise ValueError(
                f"{where} holds {y[row].item()!r} (row {row}), not a whole number; {valid}"
            )
    outside = (y < 0) | (y >= num_classes)
    if outside.any():
        row = int(np.argmax(outside))
        value = int(y[row])
        count = int(outside.sum())
        others = f"; {count} labels in all are outside, from {int(y.min())} to {int(y.max())}"
        raise ValueError(
            f"{where} holds the label {value} (row {row}{others if count > 1 else ''}); {valid}"
        )


def check_dataset(dataset: Any, owner: str = "dataset") -> None:
    """Refuses a ``Dataset`` the trainer would train on wrongly or fail on deep inside JAX.

    Per split (train, val, test): ``x`` of shape ``(n,) + input_shape`` (an empty split
    may have any shape) and numeric; ``y`` with one row per example; for classification,
    integer labels in ``[0, num_classes)`` (``check_labels``); for regression, numeric
    targets of one shape. ``owner`` begins each message.

    Raises:
      ValueError: one line naming ``owner``, the split and the fix.

    Example:
      >>> import numpy as np
      >>> from optlab.data import Dataset, check_dataset
      >>> x, y = np.zeros((4, 2), np.float32), np.array([0, 1, 2, 1])
      >>> ds = Dataset("mine", "classification", 2, (2,), x, y, x[:0], y[:0], x, y)
      >>> check_dataset(ds)
      Traceback (most recent call last):
      ...
      ValueError: dataset: y_train holds the label 2 (row 2); labels of a 2-class task are whole numbers in [0, 2)
    """  # noqa: E501
    task = dataset.task
    if task not in TASKS:
        raise ValueError(f"{owner}: task must be one of {TASKS}, got {task!r}")
    classes = dataset.num_classes
    if task == "classification" and (
        isinstance(classes, bool) or not isinstance(classes, int | np.integer) or classes < 1
    ):
        raise ValueError(
            f"{owner}: num_classes of a classification task is a whole number >= 1, got {classes!r}"
        )
    input_shape = tuple(dataset.input_shape)
    target_shape = None
    for split in SPLITS:
        x = np.asarray(getattr(dataset, f"x_{split}"))
        y = np.asarray(getattr(dataset, f"y_{split}"))
        if len(x) == 0 and len(y) == 0:
            continue  # an empty split (no validation split)
        if x.shape[1:] != input_shape:
            raise ValueError(
                f"{owner}: x_{split} has shape {x.shape}, but input_shape is {input_shape}: "
                f"x must be (n, {', '.join(map(str, input_shape))})"
            )
        if len(y) != len(x):
            raise ValueError(
                f"{owner}: x_{split} has {len(x)} examples but y_{split} {len(y)}; give one "
                "label (target) per example"
            )
        if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
            raise ValueError(f"{owner}: x_{split} holds {x.dtype} values; inputs are numbers")
        if task == "classification":
            check_labels(y, int(classes), f"{owner}: y_{split}")
            continue
        if not np.issubdtype(y.dtype, np.number) or np.issubdtype(y.dtype, np.complexfloating):
            raise ValueError(f"{owner}: y_{split} holds {y.dtype} values; targets are numbers")
        if target_shape is not None and y.shape[1:] != target_shape:
            raise ValueError(
                f"{owner}: y_{split} has targets of shape {y.shape[1:]}, the other splits "
                f"{target_shape}"
            )
        target_shape = y.shape[1:]
