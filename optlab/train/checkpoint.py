"""Checkpoints through orbax (the only module that imports it): asynchronous, atomic,
the last N and the best by a metric, verified by per-leaf checksums on restore.

orbax writes each checkpoint to a temporary folder and renames it when complete, so a
process killed mid-save leaves no half checkpoint behind; it raises on a truncated file
but restores a bit-flipped one silently, which is why every save stores checksums of
each leaf in its metadata and every restore verifies them. A checkpoint that cannot be
read or does not match is reported and the previous good one is used.

A checkpoint written before an optimizer state took optax's field names (``AdamState(count,
m, v)`` became ``ScaleByAdamState(count, mu, nu)``) is migrated on restore: orbax keys a
NamedTuple's leaves by field name, not by class, so the stored tree names the old fields;
``FIELD_RENAMES`` maps them to the new ones and the leaves are read straight into the
abstract state's shardings, then verified by the same checksums. A checkpoint whose tree
is not this run's state (another optimizer or model) is refused in one line.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from optlab.errors import ConfigError
from optlab.optimizers._adam import ScaleByAdamState
from optlab.train.state import is_finite

FIELD_RENAMES: dict[type, dict[str, str]] = {ScaleByAdamState: {"mu": "m", "nu": "v"}}
"""State class → {field: the name it had in older checkpoints}. A rename keeps the field's
position, so the leaf order, and with it the saved checksums, are unchanged."""


def _leaf_checksum(x: jax.Array) -> jax.Array:
    """Two 32-bit sums of the leaf's bytes (plain and position-weighted, Fletcher-like):
    any single flipped bit changes the first; a reordering changes the second."""
    raw = jax.lax.bitcast_convert_type(x, jnp.uint8) if x.dtype.itemsize > 1 else x
    raw = raw.reshape(-1).astype(jnp.uint32)
    weights = (jnp.arange(raw.size, dtype=jnp.uint32) % jnp.uint32(65521)) + jnp.uint32(1)
    return jnp.stack([jnp.sum(raw, dtype=jnp.uint32), jnp.sum(raw * weights, dtype=jnp.uint32)])


@jax.jit
def _checksums(tree: Any) -> list[jax.Array]:
    return [_leaf_checksum(x) for x in jax.tree.leaves(tree)]


def checksums(tree: Any) -> list[list[int]]:
    """Per-leaf checksums of a pytree (computed on device; works on sharded arrays)."""
    return [[int(v) for v in np.asarray(c)] for c in jax.device_get(_checksums(tree))]


class Checkpointer:
    """Saves and restores ``TrainState`` with metadata (data position, checksums, ...).

    Args:
      directory: where checkpoints live (created).
      keep_last: how many of the latest checkpoints to keep.
      best_metric: a metric name to also keep the best checkpoint by (None: latest only).
      best_mode: ``"max"`` or ``"min"`` for ``best_metric``.
      async_save: save in the background (the loop keeps training meanwhile).
    """

    def __init__(
        self,
        directory: str,
        *,
        keep_last: int = 2,
        best_metric: str | None = None,
        best_mode: str = "max",
        async_save: bool = True,
    ):
        policies: list[Any] = [ocp.checkpoint_managers.LatestN(n=keep_last)]
        if best_metric is not None:
            policies.append(
                ocp.checkpoint_managers.BestN(
                    get_metric_fn=lambda m: m[best_metric],
                    reverse=best_mode == "min",
                    n=1,
                    keep_checkpoints_without_metrics=False,
                )
            )
        options = ocp.CheckpointManagerOptions(
            create=True,
            enable_async_checkpointing=async_save,
            preservation_policy=ocp.checkpoint_managers.AnyPreservationPolicy(policies),
        )
        handlers = {"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
        self.manager = ocp.CheckpointManager(directory, options=options, item_handlers=handlers)
        self.best_metric = best_metric

    def save(self, step: int, state: Any, meta: dict, metrics: dict | None = None) -> bool:
        """Saves unless the state holds a non-finite value or ``step`` is already saved
        (then returns False)."""
        if step in self.manager.all_steps():
            return False
        if not bool(is_finite(state)):
            print(
                f"optlab: not checkpointing step {step}: the state is not finite", file=sys.stderr
            )
            return False
        meta = {**meta, "checksums": checksums(state)}
        saved_metrics = None
        if self.best_metric is not None and metrics and self.best_metric in metrics:
            saved_metrics = {self.best_metric: float(metrics[self.best_metric])}
        self.manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)
            ),
            metrics=saved_metrics,
            force=True,
        )
        return True

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def restore_latest_good(
        self, abstract_state: Any, *, report: Callable[[str], None] | None = None
    ) -> tuple[Any, dict] | None:
        """The newest checkpoint that reads back and matches its checksums, or None.

        Raises:
          ConfigError: a checkpoint holds another state tree (not migratable).
        """
        report = report or (lambda msg: print(f"optlab: {msg}", file=sys.stderr))
        for step in reversed(self.steps()):
            try:
                state, meta = self._restore(step, abstract_state)
            except ConfigError:
                raise
            except Exception as err:  # unreadable: truncated, missing, corrupt metadata
                report(
                    f"checkpoint {step} is unreadable ({type(err).__name__}: {err}); "
                    "trying the previous one"
                )
                continue
            if checksums(state) != meta.get("checksums"):
                report(
                    f"checkpoint {step} does not match its checksums (corrupted on disk); "
                    "trying the previous one"
                )
                continue
            return state, meta
        return None

    def _read(self, step: int, target: Any) -> tuple[Any, dict]:
        restored = self.manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()
            ),
        )
        return restored["state"], restored["meta"]

    def _restore(self, step: int, abstract_state: Any) -> tuple[Any, dict]:
        """Step ``step`` into ``abstract_state``: as saved, or migrated (``FIELD_RENAMES``)."""
        tree = _stored_tree(self.manager.item_metadata(step))
        if tree is None:
            return self._read(step, abstract_state)
        stored = {_names(p): leaf for p, leaf in jax.tree_util.tree_leaves_with_path(tree)}
        if set(_paths(abstract_state)) == set(stored):
            return self._read(step, abstract_state)
        old = _old_paths(abstract_state)
        if set(old) == set(stored) and all(
            _same_array(stored[o], leaf)
            for o, leaf in zip(old, jax.tree.leaves(abstract_state), strict=True)
        ):
            return self._migrate(step, abstract_state, old, tree)
        try:  # a tree orbax still matches though its key names differ from ours
            return self._read(step, abstract_state)
        except Exception:
            pass
        missing = sorted(set(stored) - set(old))
        extra = sorted(set(old) - set(stored))
        raise ConfigError(
            f"checkpoint {step} in {self.manager.directory} holds another state than this "
            f"run's (it has {_first(missing)}, the run expects {_first(extra)}): it was "
            "written by another optimizer or model; resume with the settings that wrote "
            "it, or train into a new --out"
        )

    def _migrate(
        self, step: int, abstract_state: Any, old: list[tuple], tree: Any
    ) -> tuple[Any, dict]:
        """Reads the stored ``tree`` with the abstract state's leaves (dtypes, shardings) at
        their old paths, then puts each leaf back at its new path."""
        by_old = dict(zip(old, jax.tree.leaves(abstract_state), strict=True))
        target = jax.tree_util.tree_map_with_path(lambda p, _: by_old[_names(p)], tree)
        raw, meta = self._read(step, target)
        values = {_names(p): leaf for p, leaf in jax.tree_util.tree_leaves_with_path(raw)}
        treedef = jax.tree.structure(abstract_state)
        return jax.tree.unflatten(treedef, [values[o] for o in old]), meta

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def _key_name(key: Any) -> str:
    """A key path entry as orbax names it (a NamedTuple's field, a dict key, an index)."""
    for attr in ("name", "key", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def _names(path: tuple) -> tuple[str, ...]:
    return tuple(_key_name(k) for k in path)


def _paths(tree: Any) -> list[tuple[str, ...]]:
    return [_names(p) for p, _ in jax.tree_util.tree_leaves_with_path(tree)]


def _old_paths(tree: Any) -> list[tuple[str, ...]]:
    """Each leaf's path with the fields of ``FIELD_RENAMES``'s states under their old names."""
    renamed = {
        _names(p): FIELD_RENAMES[type(node)]
        for p, node in jax.tree_util.tree_leaves_with_path(
            tree, is_leaf=lambda x: type(x) in FIELD_RENAMES
        )
        if type(node) in FIELD_RENAMES
    }
    old = []
    for path in _paths(tree):
        names = list(path)
        for prefix, fields in renamed.items():
            n = len(prefix)
            if tuple(path[:n]) == prefix and n < len(path) and path[n] in fields:
                names[n] = fields[path[n]]
        old.append(tuple(names))
    return old


def _stored_tree(metadata: Any) -> Any:
    """The tree of array metadata a checkpoint's state was saved as (None: not recorded)."""
    tree = metadata["state"] if metadata is not None else None
    return getattr(tree, "tree", tree)


def _same_array(stored: Any, leaf: Any) -> bool:
    shape, dtype = getattr(stored, "shape", None), getattr(stored, "dtype", None)
    return shape is None or (tuple(shape) == tuple(leaf.shape) and dtype == leaf.dtype)


def _first(paths: list[tuple[str, ...]]) -> str:
    if not paths:
        return "nothing else"
    more = f" and {len(paths) - 1} more" if len(paths) > 1 else ""
    return "/".join(paths[0]) + more
