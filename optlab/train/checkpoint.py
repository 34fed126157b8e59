"""Checkpoints through orbax (the only module that imports it): asynchronous, atomic,
the last N and the best by a metric, verified by per-leaf checksums on restore.

orbax writes each checkpoint to a temporary folder and renames it when complete, so a
process killed mid-save leaves no half checkpoint behind; it raises on a truncated file
but restores a bit-flipped one silently, which is why every save stores checksums of
each leaf in its metadata and every restore verifies them. A checkpoint that cannot be
read or does not match is reported and the previous good one is used.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from optlab.train.state import is_finite


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
        self.manager = ocp.CheckpointManager(directory, options=options)
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
        """The newest checkpoint that reads back and matches its checksums, or None."""
        report = report or (lambda msg: print(f"optlab: {msg}", file=sys.stderr))
        for step in reversed(self.steps()):
            try:
                restored = self.manager.restore(
                    step,
                    args=ocp.args.Composite(
                        state=ocp.args.StandardRestore(abstract_state),
                        meta=ocp.args.JsonRestore(),
                    ),
                )
            except Exception as err:  # unreadable: truncated, missing, corrupt metadata
                report(
                    f"checkpoint {step} is unreadable ({type(err).__name__}: {err}); "
                    "trying the previous one"
                )
                continue
            state, meta = restored["state"], restored["meta"]
            if checksums(state) != meta.get("checksums"):
                report(
                    f"checkpoint {step} does not match its checksums (corrupted on disk); "
                    "trying the previous one"
                )
                continue
            return state, meta
        return None

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
