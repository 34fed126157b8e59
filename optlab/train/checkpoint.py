"""Checkpoints through orbax (the only module that imports it): asynchronous, atomic,
the last N and the best by a metric, each verified before it is resumed from or counted.

orbax writes each checkpoint to a temporary folder and renames it when complete, so a
process killed mid-save leaves no half checkpoint behind; it raises on a truncated file
but restores a bit-flipped one silently, which is why every save stores checksums of
each leaf, and a digest of the whole metadata (``optlab.train.checkpoint_files``), and
every restore verifies them.

Retention counts only good checkpoints. Before the first save (``restore_latest_good``,
or the first ``save``), every checkpoint in the folder is read back and verified; one
that cannot be read (a junk folder such as ``checkpoints/999999``, a truncated file),
fails its checksums or digest, or whose metadata names another step, is moved to
``OUT/checkpoints-quarantine/<step>`` with one line saying so, before orbax's retention
ever sees it: it never takes a keep slot (the last N nor the best by the metric) and is
never why a good one is deleted, and its step is written again when the run gets there.

A save that cannot write (a full disk, a read-only folder, a quota, no permission), in
the calling thread or in orbax's background thread, raises ``CheckpointWriteError``: one
line naming the path and the cause. The earlier checkpoints are untouched (orbax deletes
old ones only after the new one is complete), the failed save's temporary folder is
removed, and ``close`` after it returns at once. A 4 KiB write probe before each save,
and orbax creating its folders in the calling thread, catch most such failures before a
background thread starts; orbax's own logged tracebacks of them are silenced.

A checkpoint written before an optimizer state took optax's field names (``AdamState(count,
m, v)`` became ``ScaleByAdamState(count, mu, nu)``) is migrated on restore: orbax keys a
NamedTuple's leaves by field name, not by class, so the stored tree names the old fields;
``FIELD_RENAMES`` maps them to the new ones and the leaves are read straight into the
abstract state's shardings, then verified by the same checksums. A checkpoint whose tree
is not this run's state (another optimizer or model) is refused in one line.
"""

from __future__ import annotations

import contextlib
import pathlib
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import jax
import orbax.checkpoint as ocp

from optlab.errors import CheckpointWriteError, ConfigError
from optlab.train import checkpoint_files as files
from optlab.train import checkpoint_trees as trees
from optlab.train.checkpoint_trees import (
    check_shapes,
    checksums,
    first,
    old_paths,
    paths,
    same_array,
    stored_tree,
)
from optlab.train.checkpoint_trees import names as _names
from optlab.train.state import is_finite


class Checkpointer:
    """Saves and restores ``TrainState`` with metadata (data position, checksums, ...).

    Args:
      directory: where checkpoints live (created).
      keep_last: how many of the latest checkpoints to keep.
      best_metric: a metric name to also keep the best checkpoint by (None: latest only).
      best_mode: ``"max"`` or ``"min"`` for ``best_metric``.
      async_save: save in the background (the loop keeps training meanwhile).
      read_only: only restore: the folder is never changed (no quarantine, no clean-up of
        unfinished saves; for reading a run folder another process may be writing).

    Raises:
      CheckpointWriteError: ``directory`` cannot be created.
    """

    def __init__(
        self,
        directory: str,
        *,
        keep_last: int = 2,
        best_metric: str | None = None,
        best_mode: str = "max",
        async_save: bool = True,
        read_only: bool = False,
    ):
        self.directory = pathlib.Path(directory)
        self.best_metric, self.read_only = best_metric, read_only
        self._verified = read_only  # nothing is saved, so no retention to protect
        self._failed: CheckpointWriteError | None = None
        self._failed_step: int | None = None
        self._in_flight: int | None = None  # the step of the save orbax may still write
        self._closed = False
        files.silence_orbax_write_errors()
        if not read_only and jax.process_index() == 0:
            files.remove_temporaries(self.directory)  # of saves killed mid-write
        files.barrier("optlab_checkpoint_open")
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
        best = {}
        if best_metric is not None:
            # orbax writes a step's metrics to disk (and reads them back when the folder
            # is reopened) only when ``best_fn`` is set; without it a resumed run's
            # best-by-metric slot would hold nothing and its best checkpoint be deleted
            best = {"best_fn": lambda m: m[best_metric], "best_mode": best_mode}
        options = ocp.CheckpointManagerOptions(
            **best,
            create=not read_only,
            read_only=read_only,
            enable_async_checkpointing=async_save,
            # the step's folders made in the calling thread: a folder that cannot be
            # created fails there, not in threads that would wait 300 s for it
            async_options=ocp.AsyncOptions(create_directories_asynchronously=False),
            preservation_policy=ocp.checkpoint_managers.AnyPreservationPolicy(policies),
        )
        handlers = {"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
        try:
            self.manager = ocp.CheckpointManager(directory, options=options, item_handlers=handlers)
        except Exception as err:
            cause = files.os_cause(err)
            if cause is None:
                raise
            raise CheckpointWriteError(
                f"cannot create the checkpoint folder {directory}: {files.describe(cause)}; "
                "choose a writable --out"
            ) from err

    def save(self, step: int, state: Any, meta: dict, metrics: dict | None = None) -> bool:
        """Saves unless the state holds a non-finite value or ``step`` is already saved
        (then returns False).

        Raises:
          CheckpointWriteError: this save, or the one still in flight, cannot be written
            (and every later call raises it again).
        """
        if self._failed is not None:
            raise self._failed
        if not self._verified:  # the folder's checkpoints verified before orbax prunes any
            self._verify_all(_abstract(state), _report)
        if step in self.manager.all_steps():
            return False
        if not bool(is_finite(state)):
            print(
                f"optlab: not checkpointing step {step}: the state is not finite", file=sys.stderr
            )
            return False
        meta = files.seal(meta, checksums(state))
        saved_metrics = None
        if self.best_metric is not None and metrics and self.best_metric in metrics:
            saved_metrics = {self.best_metric: float(metrics[self.best_metric])}
        self._finish_in_flight()
        nbytes = sum(int(x.nbytes) for x in jax.tree.leaves(state))
        self._guard(step, lambda: files.probe_everywhere(self.directory, nbytes))
        self._guard(
            step,
            lambda: self.manager.save(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)
                ),
                metrics=saved_metrics,
                force=True,
            ),
        )
        self._in_flight = step
        return True

    def wait(self) -> None:
        """Until the save in flight is on disk.

        Raises:
          CheckpointWriteError: it could not be written.
        """
        if self._failed is not None:
            raise self._failed
        self._finish_in_flight()

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def restore_latest_good(
        self, abstract_state: Any, *, report: Callable[[str], None] | None = None
    ) -> tuple[Any, dict] | None:
        """The newest checkpoint that reads back and matches its checksums and digest, or
        None; every checkpoint is verified, and (unless ``read_only``) the bad ones are
        moved aside (one ``report`` line each), so retention counts only good ones.

        Raises:
          ConfigError: a checkpoint holds another state tree (not migratable).
          CheckpointWriteError: a bad checkpoint can be neither moved aside nor deleted.
        """
        return self._verify_all(abstract_state, report or _report)

    def _verify_all(
        self, abstract_state: Any, report: Callable[[str], None]
    ) -> tuple[Any, dict] | None:
        found, bad = None, []
        for step in reversed(self.steps()):
            problem, restored = self._check(step, abstract_state)
            if problem is None:
                found = found or restored
                continue
            bad.append(step)
            if self.read_only:
                report(f"checkpoint {step} {problem}; trying the previous one")
                continue
            where = files.move_aside(self.directory, str(step)) if _primary() else "moved"
            report(f"checkpoint {step} {problem}: {where}")
        if bad and not self.read_only:
            files.barrier("optlab_checkpoint_quarantine")
            self.manager.reload()
        self._verified = True
        if bad and found is None:
            verb = "was" if self.read_only else "is set aside"
            report(
                f"no good checkpoint in {self.directory} (each of the {len(bad)} {verb}): "
                + ("none to restore" if self.read_only else "the run starts over from step 0")
            )
        return found

    def _check(self, step: int, abstract_state: Any) -> tuple[str | None, Any]:
        """(why checkpoint ``step`` is bad or None, (state, meta) when good)."""
        try:
            state, meta = self._restore(step, abstract_state)
        except ConfigError:
            raise
        except Exception as err:  # unreadable: junk, truncated, missing, corrupt metadata
            return f"is unreadable ({type(err).__name__}: {_one_line(err)})", None
        problem = files.meta_problem(step, meta)
        # recomputed by the trees module's own function (``checksums`` here is what a save
        # records: a test may replace it to save checksums its leaves do not have)
        if problem is None and trees.checksums(state) != meta.get("checksums"):
            problem = "does not match its checksums (corrupted on disk)"
        return problem, (None if problem else (state, meta))

    def _finish_in_flight(self) -> None:
        if self._in_flight is not None:
            step = self._in_flight
            self._guard(step, self.manager.wait_until_finished)
            self._in_flight = None

    def _guard(self, step: int, write: Callable[[], Any]) -> Any:
        """``write()``; a failure to write ends this checkpointer's saves in one error."""
        try:
            return write()
        except Exception as err:
            cause = files.os_cause(err)
            if cause is None:
                raise
            previous = [s for s in self.manager.all_steps() if s != step]
            self._failed = files.write_error(
                step, self.directory, cause, max(previous) if previous else None
            )
            self._failed_step = step
            self._in_flight = None
            _settle_orbax_threads()
            if _primary():
                files.remove_temporaries(self.directory, step)
            raise self._failed from err

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
        tree = stored_tree(self.manager.item_metadata(step))
        if tree is None:
            return self._read(step, abstract_state)
        stored = {_names(p): leaf for p, leaf in jax.tree_util.tree_leaves_with_path(tree)}
        if set(paths(abstract_state)) == set(stored):
            check_shapes(step, self.directory, stored, abstract_state)
            return self._read(step, abstract_state)
        old = old_paths(abstract_state)
        if set(old) == set(stored) and all(
            same_array(stored[o], leaf)
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
            f"run's (it has {first(missing)}, the run expects {first(extra)}): it was "
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
        """Waits for the save in flight and closes; after a failed save, returns at once
        (nothing is left to wait for) without raising again.

        Raises:
          CheckpointWriteError: the save in flight could not be written.
        """
        if self._closed:
            return
        self._closed = True
        try:
            if self._failed is None:
                self._finish_in_flight()
        finally:
            if self._failed is None:
                self.manager.close()
            else:
                with contextlib.suppress(Exception):
                    self.manager.close()
                if _primary() and self._failed_step is not None:
                    files.remove_temporaries_settled(self.directory, self._failed_step)


def _settle_orbax_threads(timeout: float = 30.0) -> None:
    """After a failed save: orbax's writer threads are cancelled, those waiting for a
    signal the failed save will never send (a folder it could not create) are woken, and
    all get ``timeout`` seconds to end. So the temporary folder can be removed with no
    writer left in it, and the process ends without waiting 300 s for them at exit.
    (orbax's ``_SignalingThread``, private: if it moves, this does nothing.)"""
    try:
        from orbax.checkpoint._src.futures import future as orbax_future

        kind = orbax_future._SignalingThread
    except (ImportError, AttributeError):
        return
    threads = [t for t in threading.enumerate() if isinstance(t, kind) and t.is_alive()]
    for t in threads:
        with contextlib.suppress(Exception):
            t.cancel()
            orbax_future.set_signals(t._receive_signals, operation_id=t._operation_id)
    deadline = time.monotonic() + timeout
    for t in threads:
        threading.Thread.join(t, max(0.0, deadline - time.monotonic()))


def _report(message: str) -> None:
    print(f"optlab: {message}", file=sys.stderr)


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= 200 else text[:197] + "..."


def _primary() -> bool:
    return jax.process_index() == 0


def _abstract(state: Any) -> Any:
    """The shapes, dtypes and shardings of ``state`` (a restore target)."""
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)),
        state,
    )
