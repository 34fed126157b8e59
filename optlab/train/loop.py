"""The host loop: a short driver that dispatches steps and calls the hooks that are due
(``optlab.train.hooks``: metrics and progress, evaluation and early stopping, checkpoints,
SIGTERM, the profiler); resume from the newest good checkpoint; the final evaluation.

``train(config)`` is the whole run; ``optlab train`` calls it.
"""

from __future__ import annotations

import json
import pathlib
import sys
import time
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.sharding import NamedSharding

from optlab import config as config_lib
from optlab.train import artifacts, folder, hooks, losses
from optlab.train.checkpoint import Checkpointer
from optlab.train.hooks import NONFINITE_HINT, NonFiniteError
from optlab.train.lock import acquire_run_lock
from optlab.train.setup import Setup, build_setup
from optlab.train.step import layer_names

__all__ = [
    "NONFINITE_HINT",
    "NonFiniteError",
    "RunResult",
    "evaluate",
    "restore_run",
    "run",
    "train",
]


def _put_batch(batch: dict, sharding: NamedSharding, accumulate: int) -> dict:
    """Global arrays of this process's share (one ``device_put`` when single-process)."""
    if accumulate > 1:
        batch = {k: v.reshape(accumulate, -1, *v.shape[1:]) for k, v in batch.items()}
    if jax.process_count() == 1:
        return jax.device_put(batch, sharding)
    return {
        k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in batch.items()
    }


def _local_rows(array) -> np.ndarray:
    """This process's rows of a batch-sharded array, in the order of its local batch (the
    rows ``make_array_from_process_local_data`` took from it); the whole array when
    single-process. Other processes' rows are not addressable here."""
    if jax.process_count() == 1 or array.is_fully_addressable:
        return np.asarray(jax.device_get(array))
    shards = {}
    for shard in array.addressable_shards:
        start = shard.index[0].start or 0
        shards.setdefault(start, shard.data)
    return np.concatenate([np.asarray(shards[k]) for k in sorted(shards)])


def _gather_ragged(*arrays: np.ndarray) -> list[np.ndarray]:
    """Every process's 1-D arrays of possibly different lengths, concatenated (in process
    order) on every process: a collective, so every process must call it."""
    from jax.experimental import multihost_utils

    n = len(arrays[0])
    sizes = np.asarray(multihost_utils.process_allgather(np.asarray([n], np.int64)))
    longest = int(sizes.max())
    out = []
    for a in arrays:
        padded = np.zeros(longest, np.asarray(a).dtype)
        padded[:n] = a
        gathered = np.asarray(multihost_utils.process_allgather(padded))
        out.append(np.concatenate([gathered[i, : int(sizes[i, 0])] for i in range(len(sizes))]))
    return out


def evaluate(setup: Setup, state, split: str) -> dict:
    """Metrics of ``split`` ("val" or "test") over fixed-size masked batches."""
    totals: dict[str, Any] = {}
    scores, labels = [], []
    for batch in setup.eval_batches(split):
        device_batch = _put_batch(batch, setup.eval_sharding, 1)
        counts = setup.eval_step(state, device_batch)
        score = counts.pop("positive_score", None)  # batch-sharded: read per process below
        counts = jax.device_get(counts)  # one transfer for all the sums
        if score is not None:
            counts["positive_score"] = score
        if "positive_score" in counts:
            keep = batch["mask"] > 0
            scores.append(_local_rows(counts.pop("positive_score"))[keep])
            labels.append(np.asarray(batch["y"])[keep])
        for k, v in counts.items():
            totals[k] = totals.get(k, 0) + np.asarray(v, np.float64)
    bytes_per_token = getattr(setup.dataset, "bytes_per_token", None)
    if totals and bytes_per_token is not None:  # a language model: bits per byte
        totals["bytes_per_token"] = bytes_per_token(split)
    extra = {}
    if scores:
        scores_all, labels_all = np.concatenate(scores), np.concatenate(labels)
        if jax.process_count() > 1:  # the AUC needs every process's (score, label) pairs
            scores_all, labels_all = _gather_ragged(scores_all, labels_all)
        extra["roc_auc"] = losses.roc_auc(scores_all, labels_all)
    return losses.summarize(split, totals, extra)


class RunResult(NamedTuple):
    summary: dict
    state: Any


def train(cfg: config_lib.RunConfig | None = None, **options: Any) -> dict:
    """Runs (or resumes) the training run ``cfg`` and returns its summary (summary.json).

    Takes ``run``'s keyword arguments: ``model`` replaces the config's built-in model by
    your own (a flax linen Module, a flax.nnx Module, or ``optlab.models.from_apply(
    apply_fn, params)`` for a pure function); ``dataset`` your own
    ``optlab.data.Dataset``; ``train_batches`` any iterable of training batches (see
    ``optlab.train.setup.build_setup``); ``mesh``; ``progress`` (a progress bar).
    """
    return run(cfg, **options).summary


def _open_folder(cfg, setup: Setup, out: pathlib.Path, is_writer: bool, identity: dict):
    """Refuses a folder that holds a different run (``optlab.train.folder``); writes
    config.json (with ``sources``: where each value came from, and the data's digest) and
    opens the metrics log."""
    note = folder.check_identity(out, identity)
    if note:
        print(f"optlab: {note}", file=sys.stderr)
    folder.check_metrics_file(out)
    if is_writer:
        record = {**cfg.to_dict(), "sources": setup.sources}
        record["data_digest"] = identity["data_digest"]
        artifacts.write_json_atomic(out / folder.CONFIG, record)
        save_tokenizer = getattr(setup.dataset, "save_tokenizer", None)
        if save_tokenizer is not None:  # a language model: OUT/tokenizer, for generate
            save_tokenizer(out)
    log = artifacts.MetricsLog(out / "metrics.jsonl")
    if cfg.train.tensorboard and is_writer:
        log = hooks.Tee(log, artifacts.TensorBoard(out / "tensorboard"))
    return log


def _hooks(run_: hooks.Run, start_step: int) -> list[hooks.Hook]:
    tc, setup = run_.cfg.train, run_.setup
    evaluation = hooks.EvalHook(
        tc.eval_every or setup.steps_per_epoch, evaluate, tc.monitor, tc.early_stopping
    )
    found = [
        hooks.ProgressHook(),
        hooks.MetricsHook(tc.log_every),
        evaluation,
        hooks.CheckpointHook(tc.checkpoint_every or setup.steps_per_epoch, evaluation),
        hooks.SigtermHook(),
    ]
    if tc.profile:
        found.append(hooks.ProfileHook(start_step + 3, min(start_step + 8, setup.total_steps)))
    return found


def run(
    cfg: config_lib.RunConfig | None = None,
    *,
    progress: bool = True,
    mesh=None,
    model=None,
    dataset=None,
    train_batches=None,
) -> RunResult:
    """Like ``train``, also returning the final ``TrainState``."""
    cfg = cfg or config_lib.RunConfig()
    out = folder.check_out(cfg.out)
    setup = build_setup(  # validates everything before touching the disk
        cfg, mesh=mesh, model=model, dataset=dataset, train_batches=train_batches
    )
    cfg = setup.cfg  # the recipe's values filled in (cfg.out is never a recipe's)
    is_writer = jax.process_index() == 0
    identity = folder.identity(
        cfg.to_dict(), folder.data_digest(setup.dataset if train_batches is None else None)
    )
    if is_writer:
        # a different run is refused before the lock file is touched (checked again under it)
        folder.check_identity(out, identity)
        folder.create(out)
    with acquire_run_lock(out):
        return _run_locked(cfg, setup, out, is_writer, identity, progress)


def _run_locked(cfg, setup, out, is_writer, identity, progress) -> RunResult:
    """The run, while this process holds the folder's lock."""
    log = _open_folder(cfg, setup, out, is_writer, identity)
    tc = cfg.train
    checkpointer = Checkpointer(
        str((out / "checkpoints").absolute()),
        keep_last=tc.keep_checkpoints,
        best_metric=tc.monitor,
        best_mode=hooks._monitor_mode(tc.monitor),
    )
    try:
        return _train(cfg, setup, out, is_writer, identity, progress, log, checkpointer)
    finally:
        checkpointer.close()


def _train(cfg, setup, out, is_writer, identity, progress, log, checkpointer) -> RunResult:
    tc = cfg.train
    state = setup.init_state()
    restored = checkpointer.restore_latest_good(setup.abstract_state)
    meta: dict = {}
    if restored is not None:
        state, meta = restored
        setup.train_iter.restore(meta["data"])
        if is_writer:
            log.trim(int(meta["step"]))
        print(f"optlab: resuming {out} from step {int(meta['step'])}", file=sys.stderr)
    elif is_writer:
        log.trim(-1)

    start_step = int(jax.device_get(state.step))
    total = setup.total_steps
    r = hooks.Run(
        setup=setup,
        cfg=cfg,
        out=out,
        state=setup.replicate(state),  # --parallel pmap: (n, ...) from here; jit: identity
        step=start_step,
        log=log,
        checkpointer=checkpointer,
        is_writer=is_writer,
        names=layer_names(setup.params_template),
        progress={"best": None, "bad_evals": 0},
        identity=identity,
    )
    if meta:
        r.resume(meta)
    if progress and is_writer:
        from tqdm.auto import tqdm

        r.bar = tqdm(total=total, initial=start_step, unit="step", dynamic_ncols=True)
    registered = _hooks(r, start_step)
    compiled: set[int] = set()  # the step functions called once already (compiled)
    stretch_start, stretch_steps, stretch_compiled = time.perf_counter(), 0, False
    try:
        while r.step < total and r.stop is None:
            for hook in registered:
                if isinstance(hook, hooks.ProfileHook):
                    hook.before(r)
            # the steps whose metrics a hook logs run the monitored step (gradient norms)
            monitored = any(h.metrics and h.due(r.step + 1, total) for h in registered)
            step_fn = setup.monitored_step if monitored else setup.train_step
            if id(step_fn) not in compiled:
                compiled.add(id(step_fn))
                stretch_compiled = True
            batch = _put_batch(setup.next_batch(), setup.batch_sharding, tc.accumulate)
            r.state, metrics = step_fn(r.state, batch)
            r.pending.append(metrics)
            r.step += 1
            stretch_steps += 1
            due = [h for h in registered if h.due(r.step, total)]
            blocking = any(not isinstance(h, hooks.ProgressHook) for h in due)
            if blocking:
                jax.block_until_ready(metrics)  # the stretch's steps are done: time it
                if not stretch_compiled:
                    r.time_stretch(time.perf_counter() - stretch_start, stretch_steps)
                else:
                    r.last_stretch = None
            for hook in due:
                hook(r)
            if blocking:
                stretch_start, stretch_steps, stretch_compiled = time.perf_counter(), 0, False
    finally:
        for hook in registered:
            hook.close(r)
        if r.bar is not None:
            r.bar.close()
    checkpointer.wait()  # the last checkpoint is on disk before the summary says done
    if r.stop == "preempted":
        print(
            f"optlab: SIGTERM: saved step {r.step} to {out}; run again to resume", file=sys.stderr
        )
        return RunResult({"preempted": True, "steps": r.step}, r.host_state)

    state = r.host_state
    finished = _finished_summary(out, r.step) if start_step >= total else None
    if finished is not None:  # a finished run run again: its summary stands as it was
        return RunResult(finished, state)
    test = evaluate(setup, state, "test")
    # The validation of the final step, unless the loop did not just compute it.
    fresh = r.last_val is not None and r.last_val[0] == r.step
    val = r.last_val[1] if fresh else evaluate(setup, state, "val")
    summary = {
        **test,
        **val,
        "train_loss": r.last_train.get("train_loss"),
        "train_accuracy": r.last_train.get("train_accuracy"),
        "steps": r.step,
        "epochs": r.step / setup.steps_per_epoch,
        "stopped_early": r.stop == "early",
        "skipped_steps": int(jax.device_get(state.skipped)),
        "wall_seconds": r.wall_seconds(),
        **_throughput_summary(r),
        **({"corpus": source} if (source := getattr(setup.dataset, "source", None)) else {}),
        "devices": jax.device_count(),
        "mesh": {k: int(v) for k, v in setup.mesh.shape.items()},
    }
    summary = artifacts.strict(summary)  # a non-finite metric: null, named in "nonfinite"
    if is_writer:
        artifacts.write_json_atomic(out / "summary.json", summary)
        artifacts.plot_curves(log.records(), out)
    if isinstance(log, hooks.Tee):
        log.close()
    bad = [k for k in summary.get("nonfinite", []) if k.startswith(("test_", "val_"))]
    if bad:
        raise NonFiniteError(
            f"training ended but {', '.join(bad)} is not finite (summary.json records null); "
            f"{NONFINITE_HINT}"
        )
    return RunResult(summary, state)


def _throughput_summary(r: hooks.Run) -> dict:
    """A language model's steady-state throughput over this session's timed stretches
    (compilation, evaluation and checkpoints excluded): tokens/s and MFU."""
    if not r.setup.tokens_per_step:
        return {}
    fields = r.throughput((r.train_seconds, r.timed_steps))
    return {k: fields.get(k) for k in ("tokens_per_second", "mfu", "step_seconds")}


def _finished_summary(out: pathlib.Path, steps: int) -> dict | None:
    """The summary.json of a run that already finished ``steps`` steps, if it reads back."""
    try:
        summary = json.loads((out / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    if isinstance(summary, dict) and summary.get("steps") == steps and "preempted" not in summary:
        return summary
    return None


def restore_run(
    out: str, *, mesh=None, allow_imports: bool = False, optimizer: Any = None
) -> tuple[config_lib.RunConfig, Setup, Any]:
    """(config, setup, state) of the newest good checkpoint in the run folder ``out``.

    The folder's ``config.json`` is data (``RunConfig.from_run_folder``): an optimizer it
    names by import path is imported only with ``allow_imports=True`` or when ``optimizer``
    repeats it (or is the factory itself)."""
    cfg = config_lib.RunConfig.from_run_folder(
        out, allow_imports=allow_imports, optimizer=optimizer
    )
    setup = build_setup(cfg, mesh=mesh)
    # read-only: reading a run changes nothing in it (nor races the process training it)
    checkpointer = Checkpointer(str((pathlib.Path(out) / "checkpoints").absolute()), read_only=True)
    try:
        restored = checkpointer.restore_latest_good(setup.abstract_state)
    finally:
        checkpointer.close()
    if restored is None:
        raise config_lib.ConfigError(f"--run: {out} has no readable checkpoint")
    return cfg, setup, restored[0]
