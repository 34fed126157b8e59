"""What a sweep runs: the grid's points, the seeds, the k-fold split, each run's batch order
and initial variables, all as the trainer would make them (lecture 03)."""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from optlab import config as config_lib
from optlab.lab import _sweep_optimizer as sweep_tx

FOLD_STREAM = 7  # sub-stream of the seed for the k-fold split


def kfold_indices(n: int, k: int, seed: int = 0) -> list[np.ndarray]:
    """Lecture 03's k-fold cross-validation split of ``range(n)``: a permutation drawn from
    ``seed`` cut into ``k`` disjoint folds whose sizes differ by at most one (each sorted).

    Example:
      >>> [f.tolist() for f in kfold_indices(5, 2, seed=0)]
      [[0, 3, 4], [1, 2]]
    """
    if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= n:
        raise config_lib.ConfigError(
            f"--folds must be an integer in [2, {n}] (the training examples), got {k!r}"
        )
    order = np.random.default_rng([seed, FOLD_STREAM]).permutation(n)
    return [np.sort(part) for part in np.array_split(order, k)]


@functools.partial(jax.jit, static_argnums=(0, 2))
def _init_static(model, seed, input_shape):
    key = jax.random.PRNGKey(seed)
    sample = jnp.zeros((1, *input_shape), jnp.float32)
    return dict(model.init({"params": key, "dropout": key}, sample, train=False))


def init_variables(model: Any, seed: int, input_shape: tuple[int, ...]) -> dict:
    """The trainer's initial variables for ``seed`` (``init_fn`` of ``build_setup``:
    ``model.init({"params": key, "dropout": key}, zeros, train=False)``, key =
    ``PRNGKey(seed)``), compiled once per model and reused across calls and seeds."""
    try:
        hash(model)
    except TypeError:  # a model that cannot be a static argument: compiled per call
        return _init_static.__wrapped__(model, np.int32(seed), tuple(input_shape))
    return _init_static(model, np.int32(seed), tuple(input_shape))


def grid_points(ocfg, grid: Mapping[str, Sequence[float]] | None) -> tuple[dict, list[dict]]:
    if grid is None:
        grid = {}
    if not isinstance(grid, Mapping):
        raise config_lib.ConfigError(
            "sweep: `grid` must map hyper-parameter names to lists of values, e.g. "
            "{'learning_rate': [0.1, 0.01]}"
        )
    resolved: dict[str, list[float]] = {}
    for key, values in grid.items():
        name = sweep_tx.resolve_key(ocfg, key)
        if isinstance(values, str | bytes) or not isinstance(values, Sequence | np.ndarray):
            values = [values]
        values = list(values)
        if not values or not all(sweep_tx.is_number(v) and math.isfinite(v) for v in values):
            raise config_lib.ConfigError(
                f"sweep: {key!r} needs a non-empty list of finite numbers, got {values!r}"
            )
        if name in resolved:
            raise config_lib.ConfigError(f"sweep: {key!r} names {name!r} twice in the grid")
        resolved[name] = [float(v) for v in values]
    points = [
        dict(zip(resolved, combo, strict=True)) for combo in itertools.product(*resolved.values())
    ]
    return resolved, points


def seed_list(seeds: int | Sequence[int] | None, base: int) -> list[int]:
    if seeds is None:
        return [base]
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise config_lib.ConfigError(f"--seeds must be >= 1, got {seeds}")
        return list(range(base, base + seeds))
    out = list(seeds)
    if not out or not all(isinstance(s, int | np.integer) and s >= 0 for s in out):
        raise config_lib.ConfigError(f"--seeds: expected integers >= 0, got {seeds!r}")
    return [int(s) for s in out]


def check_config(cfg: config_lib.RunConfig) -> None:
    tc = cfg.train
    if tc.mesh or tc.parallel != "jit" or tc.strategy != "dp":
        raise config_lib.ConfigError(
            "sweep: the configurations are spread over all devices by the sweep itself; "
            "drop train.mesh, train.parallel and train.strategy"
        )


def batch_order(rows: np.ndarray, seed: int, cfg, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The trainer's batch order (``BatchIterator`` with this seed) over ``rows``: (steps, B)
    row numbers and masks."""
    from optlab.data import BatchIterator

    dc, tc = cfg.data, cfg.train
    it = BatchIterator(
        rows,
        np.zeros(len(rows), np.int32),
        batch_size=None if dc.mode == "online" else dc.batch_size * tc.accumulate,
        seed=seed,
        mode=dc.mode,
        replacement=dc.replacement,
        batch_size_schedule=dc.batch_growth,
    )
    out = [it.next_indices() for _ in range(steps)]
    width = max(len(b["index"]) for b in out)  # a growing batch: pad to the largest, masked
    index = np.zeros((steps, width), np.int32)
    mask = np.zeros((steps, width), np.float32)
    for t, b in enumerate(out):
        index[t, : len(b["index"])] = rows[b["index"]]
        mask[t, : len(b["mask"])] = b["mask"]
    return index, mask


def pad_stack(arrays: list[np.ndarray], width: int) -> np.ndarray:
    out = np.zeros((len(arrays), *arrays[0].shape[:-1], width), arrays[0].dtype)
    for i, a in enumerate(arrays):
        out[i, ..., : a.shape[-1]] = a
    return out
