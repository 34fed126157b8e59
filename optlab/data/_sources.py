"""Offline sources shipped by installed packages: sklearn's digits and MNIST-1D.

A source returns `Raw`: unstandardized train and test arrays, with pixels scaled to [0, 1].
"""

from __future__ import annotations

import functools
import importlib
import random
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from optlab.errors import MissingExtraError

# Sub-stream of the seed used for a test split carved from a data set without one.
SPLIT_STREAM_TEST = 0
TEST_FRACTION = 0.2


class Raw(NamedTuple):
    x_train: np.ndarray  # float32, (n,) + input_shape
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int  # 0 for regression
    scalar_stats: bool  # standardize with one scalar mean/std (images, signals)
    meta: Mapping[str, Any]


def check_options(name: str, options: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        takes = f"takes {', '.join(allowed)}" if allowed else "takes no options"
        raise ValueError(
            f"load_dataset('{name}'): unknown option(s) {unknown}; {name} {takes} "
            "(and flatten=True)."
        )


def require(module: str, package: str, dataset: str) -> Any:
    """Imports an optional dependency, or says which pip package provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtraError(
            f"load_dataset('{dataset}') needs the `{package}` package: "
            f"pip install {package}  (or pip install 'optlab[data]')."
        ) from err


def split_indices(
    n: int, fraction: float, rng: np.random.Generator, labels: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Splits ``range(n)`` into (kept, held out) with ``round(fraction · n)`` held out.

    With ``labels``, the split is stratified: each class gives its share, the rounding
    remainders going to the classes with the largest fractional parts, so the total is
    exact. Both index arrays come back in a random order drawn from ``rng``.
    """
    n_hold = round(fraction * n)
    order = rng.permutation(n)
    if labels is None:
        held, kept = order[:n_hold], order[n_hold:]
        return kept, held
    labels = np.asarray(labels)[order]
    classes, counts = np.unique(labels, return_counts=True)
    quota = fraction * counts
    take = np.floor(quota).astype(np.int64)
    extra = n_hold - int(take.sum())
    if extra > 0:
        take[np.argsort(-(quota - take), kind="stable")[:extra]] += 1
    held_mask = np.zeros(n, bool)
    for c, k in zip(classes, take, strict=True):
        held_mask[np.flatnonzero(labels == c)[:k]] = True
    return order[~held_mask], order[held_mask]


def stratified_test_split(x, y, *, seed: int, num_classes: int, meta: dict) -> Raw:
    """Holds out `TEST_FRACTION` of a data set as its test split, stratified, by seed."""
    rng = np.random.default_rng([seed, SPLIT_STREAM_TEST])
    kept, held = split_indices(len(x), TEST_FRACTION, rng, y)
    meta = dict(meta, test_split=f"{TEST_FRACTION:.0%} stratified by class, drawn by the seed")
    return Raw(x[kept], y[kept], x[held], y[held], num_classes, True, meta)


def digits(*, seed: int, data_dir=None, **options: Any) -> Raw:
    """sklearn's 8×8 digits (UCI): 1797 images, 10 classes, pixels 0..16 → [0, 1]."""
    check_options("digits", options, ())
    datasets = require("sklearn.datasets", "scikit-learn", "digits")
    bunch = datasets.load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[..., None]
    y = bunch.target.astype(np.int32)
    meta = {"source": "sklearn.datasets.load_digits (UCI optical digits, 8×8, 0..16)"}
    return stratified_test_split(x, y, seed=seed, num_classes=10, meta=meta)


def mnist1d(*, seed: int, data_dir=None, **options: Any) -> Raw:
    """MNIST-1D (Greydanus 2020), generated offline: the paper's 4000 / 1000 split.

    ``make_dataset`` seeds Python's and NumPy's global generators with its own seed (42);
    their states are saved and put back, so loading does not change the caller's
    randomness. The seed of `load_dataset` only draws the validation split.
    """
    data = require("mnist1d.data", "mnist1d", "mnist1d")
    defaults = data.get_dataset_args(as_dict=True)
    allowed = tuple(k for k in defaults if k not in ("url", "seed"))  # data seed stays 42
    check_options("mnist1d", options, allowed)
    args = {**defaults, **options}
    key = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in args.items()))
    x_tr, y_tr, x_te, y_te = _make_mnist1d(key)
    meta = {
        "source": "mnist1d.data.make_dataset(get_dataset_args()) generated offline",
        "test_split": f"the package's own split (train_split={args['train_split']})",
        "mnist1d_args": {k: v for k, v in args.items() if k != "url"},
    }
    return Raw(x_tr.copy(), y_tr.copy(), x_te.copy(), y_te.copy(), 10, True, meta)


@functools.lru_cache(maxsize=2)
def _make_mnist1d(args: tuple) -> tuple[np.ndarray, ...]:
    data = importlib.import_module("mnist1d.data")
    args_view = data.get_dataset_args()  # an ObjectView: attribute access to the dict
    for key, value in args:
        setattr(args_view, key, list(value) if isinstance(value, tuple) else value)
    # make_dataset calls np.random.seed(42) and random.seed(42): keep the caller's streams.
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    try:
        d = data.make_dataset(args_view)
    finally:
        np.random.set_state(np_state)  # noqa: NPY002
        random.setstate(py_state)
    return (
        d["x"].astype(np.float32),
        d["y"].astype(np.int32),
        d["x_test"].astype(np.float32),
        d["y_test"].astype(np.int32),
    )
