"""The state tree as a checkpoint stores it: leaf paths by orbax's key names, the field
renames of older checkpoints (``FIELD_RENAMES``), and the checks that tell a checkpoint of
another state (another optimizer or model) from this run's. No orbax here: these read the
tree of array metadata ``optlab.train.checkpoint`` gets from it; and the per-leaf checksums
of the state that every checkpoint stores and every restore verifies."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from optlab.errors import ConfigError
from optlab.optimizers._adam import ScaleByAdamState

FIELD_RENAMES: dict[type, dict[str, str]] = {ScaleByAdamState: {"mu": "m", "nu": "v"}}
"""State class → {field: the name it had in older checkpoints}. A rename keeps the field's
position, so the leaf order, and with it the saved checksums, are unchanged."""


def key_name(key: Any) -> str:
    """A key path entry as orbax names it (a NamedTuple's field, a dict key, an index)."""
    for attr in ("name", "key", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def names(path: tuple) -> tuple[str, ...]:
    return tuple(key_name(k) for k in path)


def paths(tree: Any) -> list[tuple[str, ...]]:
    return [names(p) for p, _ in jax.tree_util.tree_leaves_with_path(tree)]


def old_paths(tree: Any) -> list[tuple[str, ...]]:
    """Each leaf's path with the fields of ``FIELD_RENAMES``'s states under their old names."""
    renamed = {
        names(p): FIELD_RENAMES[type(node)]
        for p, node in jax.tree_util.tree_leaves_with_path(
            tree, is_leaf=lambda x: type(x) in FIELD_RENAMES
        )
        if type(node) in FIELD_RENAMES
    }
    old = []
    for path in paths(tree):
        renamed_path = list(path)
        for prefix, fields in renamed.items():
            n = len(prefix)
            if tuple(path[:n]) == prefix and n < len(path) and path[n] in fields:
                renamed_path[n] = fields[path[n]]
        old.append(tuple(renamed_path))
    return old


def stored_tree(metadata: Any) -> Any:
    """The tree of array metadata a checkpoint's state was saved as (None: not recorded)."""
    tree = metadata["state"] if metadata is not None else None
    return getattr(tree, "tree", tree)


def same_array(stored: Any, leaf: Any) -> bool:
    shape, dtype = getattr(stored, "shape", None), getattr(stored, "dtype", None)
    return shape is None or (tuple(shape) == tuple(leaf.shape) and dtype == leaf.dtype)


def check_shapes(step: int, directory: Any, stored: dict, abstract_state: Any) -> None:
    """Refuses a checkpoint whose leaves have other shapes than this run's (another model
    of the same layer names): a ``ConfigError``, not a corrupt checkpoint to set aside."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(abstract_state):
        shape = getattr(stored[names(path)], "shape", None)
        if shape is not None and tuple(shape) != tuple(leaf.shape):
            raise ConfigError(
                f"checkpoint {step} in {directory} holds another state than this run's "
                f"({'/'.join(names(path))} has shape {tuple(shape)}, the run expects "
                f"{tuple(leaf.shape)}): it was written by another model; resume with the "
                "settings that wrote it, or train into a new --out"
            )


def first(paths: list[tuple[str, ...]]) -> str:
    if not paths:
        return "nothing else"
    more = f" and {len(paths) - 1} more" if len(paths) > 1 else ""
    return "/".join(paths[0]) + more


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
    """Per-leaf checksums of a pytree (computed on device; works on sharded arrays): what
    a save records. Verification recomputes them from the leaves read back."""
    return [[int(v) for v in np.asarray(c)] for c in jax.device_get(_checksums(tree))]
