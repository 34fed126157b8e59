"""Problems generated from the seed: lecture 01's linear and logistic regression, spirals.

The last 20% of the ``n`` i.i.d. examples are the test split. The true parameters are kept in
``Dataset.meta`` (in the raw feature space, before standardization).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from optlab import _validation
from optlab.data._sources import TEST_FRACTION, Raw, check_options

GENERATION_STREAM = 2


def synthetic_linear(
    *, seed: int, data_dir=None, n: int = 1000, d: int = 10, noise: float = 0.1, **options: Any
) -> Raw:
    """Linear regression (lecture 01): ``y = x·w* + b* + noise·ε``, x ~ N(0, I_d), ε ~ N(0, 1).

    w* ~ N(0, I_d / d) and b* ~ N(0, 1), so the signal x·w* has unit variance and ``noise``
    is the noise-to-signal ratio of standard deviations. Targets are float32 of shape (n,).
    """
    check_options("synthetic_linear", options, ("n", "d", "noise"))
    _check("synthetic_linear", n, d, noise)
    rng = np.random.default_rng([seed, GENERATION_STREAM])
    w, b = rng.normal(size=d) / np.sqrt(d), rng.normal()
    x = rng.normal(size=(n, d))
    y = x @ w + b + noise * rng.normal(size=n)
    meta = {"source": "synthetic linear regression", "true_w": w.tolist(), "true_b": float(b)}
    return _split(x, y, 0, meta, scalar_stats=False)


def synthetic_logistic(
    *, seed: int, data_dir=None, n: int = 1000, d: int = 10, noise: float = 1.0, **options: Any
) -> Raw:
    """Logistic regression (lecture 01): ``y = 1[x·w* + b* + noise·ε > 0]``, ε ~ Logistic(0, 1).

    With ``noise = 1`` this is exactly the logistic model P(y = 1 | x) = σ(x·w* + b*); with
    ``noise = 0`` the classes are linearly separable. x ~ N(0, I_d), w* ~ N(0, 4 I_d / d)
    (so the logit has standard deviation 2), b* ~ N(0, 0.25). Labels int32 in {0, 1}.
    """
    check_options("synthetic_logistic", options, ("n", "d", "noise"))
    _check("synthetic_logistic", n, d, noise)
    rng = np.random.default_rng([seed, GENERATION_STREAM])
    w, b = 2.0 * rng.normal(size=d) / np.sqrt(d), 0.5 * rng.normal()
    x = rng.normal(size=(n, d))
    y = (x @ w + b + noise * rng.logistic(size=n) > 0).astype(np.int32)
    meta = {"source": "synthetic logistic regression", "true_w": w.tolist(), "true_b": float(b)}
    return _split(x, y, 2, meta, scalar_stats=False)


def spirals(
    *, seed: int, data_dir=None, n: int = 1000, noise: float = 0.1, turns: float = 1.5, **options
) -> Raw:
    """Two interleaved spirals in the plane, n/2 points each (class 0 and its 180° turn, 1).

    A point at angle θ = 2π · turns · √u (u ~ U(0, 1)) lies at radius θ / (2π · turns) ≤ 1;
    then Gaussian noise of standard deviation ``noise`` is added to both coordinates.
    """
    check_options("spirals", options, ("n", "noise", "turns"))
    _check("spirals", n, 2, noise)
    _validation.check_non_negative("spirals", "turns", turns, "Use e.g. 1.5.")
    rng = np.random.default_rng([seed, GENERATION_STREAM])
    y = np.arange(n) % 2
    theta = 2 * np.pi * turns * np.sqrt(rng.uniform(size=n))
    r = theta / (2 * np.pi * max(turns, 1e-12))
    sign = np.where(y == 0, 1.0, -1.0)
    x = sign[:, None] * np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)
    x += noise * rng.normal(size=x.shape)
    return _split(x, y, 2, {"source": "two spirals"}, scalar_stats=False)


def _check(owner: str, n: Any, d: Any, noise: Any) -> None:
    for name, value, least in (("n", n, 10), ("d", d, 1)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
            _validation.fail(owner, name, value, f"an integer >= {least}", "Use e.g. n=1000, d=10.")
    if not _validation.is_concrete_number(noise) or not np.isfinite(noise) or noise < 0:
        _validation.fail(owner, "noise", noise, "a finite number >= 0", "Use e.g. 0.1.")


def _split(x, y, num_classes: int, meta: dict, *, scalar_stats: bool) -> Raw:
    n_test = round(TEST_FRACTION * len(x))
    n_train = len(x) - n_test
    y_dtype = np.int32 if num_classes else np.float32
    x, y = x.astype(np.float32), y.astype(y_dtype)
    meta = dict(meta, test_split=f"the last {TEST_FRACTION:.0%} of the i.i.d. examples")
    return Raw(x[:n_train], y[:n_train], x[n_train:], y[n_train:], num_classes, scalar_stats, meta)
