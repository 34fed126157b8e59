"""The host loop: data in, steps dispatched, metrics pulled at the logging cadence only,
evaluation, early stopping, checkpoints, resume, NaN stop, SIGTERM (preemption).

``train(config)`` is the whole run; ``optlab train`` calls it.
"""

from __future__ import annotations

import contextlib
import pathlib
import signal
import sys
import time
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.sharding import NamedSharding

from optlab import config as config_lib
from optlab.train import artifacts, losses
from optlab.train.checkpoint import Checkpointer
from optlab.train.setup import Setup, build_setup
from optlab.train.step import layer_names

NONFINITE_HINT = (
    "lecture 03: lower the learning rate, check the inputs for NaN, standardize the data, "
    "clip gradients (--clip-norm), or use --nonfinite skip to skip such steps"
)


class NonFiniteError(RuntimeError):
    """Training met a non-finite loss or gradient and the policy is to stop."""


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
    extra = {}
    if scores:
        scores_all, labels_all = np.concatenate(scores), np.concatenate(labels)
        if jax.process_count() > 1:  # the AUC needs every process's (score, label) pairs
            scores_all, labels_all = _gather_ragged(scores_all, labels_all)
        extra["roc_auc"] = losses.roc_auc(scores_all, labels_all)
    return losses.summarize(split, totals, extra)


@contextlib.contextmanager
def _sigterm_flag():
    flag = {"set": False}
    previous = None
    try:
        previous = signal.signal(signal.SIGTERM, lambda *_: flag.__setitem__("set", True))
    except ValueError:  # not the main thread: no preemption handling
        pass
    try:
        yield flag
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _monitor_mode(metric: str) -> str:
    return "min" if "loss" in metric else "max"


class _Tee:
    """metrics.jsonl plus TensorBoard: the same records to both."""

    def __init__(self, log: artifacts.MetricsLog, board: artifacts.TensorBoard):
        self.log, self.board = log, board

    def write(self, record: dict) -> None:
        self.log.write(record)
        self.board.write(record)

    def __getattr__(self, name):
        return getattr(self.log, name)


class RunResult(NamedTuple):
    summary: dict
    state: Any


def train(
    cfg: config_lib.RunConfig | None = None,
    *,
    progress: bool = True,
    mesh=None,
    model=None,
    dataset=None,
    train_batches=None,
) -> dict:
    """Runs (or resumes) the training run ``cfg`` and returns its summary (summary.json).

    ``model`` replaces the config's built-in model by your own: a flax linen Module, a
    flax.nnx Module, or ``optlab.models.from_apply(apply_fn, params)`` for a pure function;
    ``dataset`` your own ``optlab.data.Dataset``; ``train_batches`` any iterable of training
    batches (see ``optlab.train.setup.build_setup``).
    """
    return run(
        cfg,
        progress=progress,
        mesh=mesh,
        model=model,
        dataset=dataset,
        train_batches=train_batches,
    ).summary


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
    out = pathlib.Path(cfg.out)
    setup = build_setup(  # validates everything before touching the disk
        cfg, mesh=mesh, model=model, dataset=dataset, train_batches=train_batches
    )
    is_writer = jax.process_index() == 0
    config_path = out / "config.json"
    if config_path.exists():
        import json

        old = json.loads(config_path.read_text())
        diffs = artifacts.identity_differences(old, cfg.to_dict())
        if diffs:
            raise config_lib.ConfigError(
                f"--out: {out} holds a different run ({', '.join(diffs)} differ). "
                "Choose another --out, or delete the folder to start over."
            )
    if is_writer:
        out.mkdir(parents=True, exist_ok=True)
        artifacts.write_json_atomic(config_path, cfg.to_dict())
    tc = cfg.train
    log = artifacts.MetricsLog(out / "metrics.jsonl")
    if tc.tensorboard and is_writer:
        log = _Tee(log, artifacts.TensorBoard(out / "tensorboard"))
    monitor_mode = _monitor_mode(tc.monitor)
    checkpointer = Checkpointer(
        str((out / "checkpoints").absolute()),
        keep_last=tc.keep_checkpoints,
        best_metric=tc.monitor,
        best_mode=monitor_mode,
    )

    state = setup.init_state()
    progress_state = {"best": None, "bad_evals": 0}
    restored = checkpointer.restore_latest_good(setup.abstract_state)
    if restored is not None:
        state, meta = restored
        setup.train_iter.restore(meta["data"])
        progress_state = meta.get("progress", progress_state)
        if is_writer:
            log.trim(int(meta["step"]))
        print(f"optlab: resuming {out} from step {int(meta['step'])}", file=sys.stderr)
    elif is_writer:
        log.trim(-1)

    start_step = int(jax.device_get(state.step))
    state = setup.replicate(state)  # --parallel pmap: (n, ...) from here; identity for jit
    host = setup.unreplicate  # the unreplicated state: evaluation, checkpoints, the result
    total = setup.total_steps
    names = layer_names(setup.params_template)
    eval_every = tc.eval_every or setup.steps_per_epoch
    checkpoint_every = tc.checkpoint_every or setup.steps_per_epoch
    start_time = time.perf_counter()
    pending: list[dict] = []
    interval_start = time.perf_counter()
    last_train: dict = {}
    bar = None
    if progress and is_writer:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=start_step, unit="step", dynamic_ncols=True)

    def meta_for(step: int) -> dict:
        return {"step": step, "data": setup.train_iter.state(), "progress": progress_state}

    def flush(step: int) -> None:
        nonlocal interval_start, last_train
        if not pending:
            return
        pulled = jax.device_get(pending)
        pending.clear()
        elapsed = time.perf_counter() - interval_start
        interval_start = time.perf_counter()
        mean = lambda k: float(np.mean([m[k] for m in pulled]))  # noqa: E731
        record = {
            "step": step,
            "epoch": step / setup.steps_per_epoch,
            "train_loss": mean("loss"),
            "learning_rate": float(pulled[-1]["learning_rate"]),
            "steps_per_second": len(pulled) / max(elapsed, 1e-9),
            "skipped_steps": int(sum(not bool(m["finite"]) for m in pulled)),
        }
        monitored = [m for m in pulled if "grad_norm" in m]
        if monitored:  # the norms of the interval's last (monitored) step
            last = monitored[-1]
            record["grad_norm"] = float(last["grad_norm"])
            record["update_ratio"] = float(last["update_ratio"])
            record["layer_grad_norms"] = dict(
                zip(names, np.asarray(last["layer_grad_norms"]).tolist(), strict=True)
            )
        if "accuracy" in pulled[-1]:
            record["train_accuracy"] = mean("accuracy")
        last_train = record
        if is_writer:
            log.write(record)
        if bar is not None:
            bar.set_postfix(loss=f"{record['train_loss']:.4f}", refresh=False)
        first_bad = np.asarray(jax.device_get(state.first_nonfinite)).reshape(-1, 2)[0]
        if first_bad[0] >= 0 and tc.nonfinite == "stop":
            layer = names[int(first_bad[1])] if int(first_bad[1]) < len(names) else "?"
            raise NonFiniteError(
                f"non-finite loss or gradient at step {int(first_bad[0])} in layer {layer}; "
                f"{NONFINITE_HINT}"
            )

    stopped_early = preempted = False
    last_val: tuple[int, dict] | None = None
    with _sigterm_flag() as sigterm:
        step = start_step
        try:
            profile_window = (start_step + 3, min(start_step + 8, total)) if tc.profile else None
            while step < total:
                if profile_window and step == profile_window[0]:
                    jax.profiler.start_trace(str(out / "profile"))
                batch = setup.next_batch()
                nxt = step + 1  # the steps that flush metrics run the monitored step
                logged_next = nxt % tc.log_every == 0 or nxt % eval_every == 0 or nxt == total
                step_fn = setup.monitored_step if logged_next else setup.train_step
                state, metrics = step_fn(
                    state, _put_batch(batch, setup.batch_sharding, tc.accumulate)
                )
                pending.append(metrics)
                step += 1
                if profile_window and step == profile_window[1]:
                    jax.block_until_ready(state)
                    jax.profiler.stop_trace()
                    print(f"optlab: profiler trace in {out / 'profile'}", file=sys.stderr)
                if bar is not None:
                    bar.update(1)
                if step % tc.log_every == 0 or step == total:
                    flush(step)
                if step % eval_every == 0 or step == total:
                    flush(step)
                    val = evaluate(setup, host(state), "val")
                    last_val = (step, val)
                    if is_writer:
                        log.write({"step": step, "epoch": step / setup.steps_per_epoch, **val})
                    current = val.get(tc.monitor)
                    if current is not None:
                        best = progress_state["best"]
                        better = best is None or (
                            current > best if monitor_mode == "max" else current < best
                        )
                        progress_state = {
                            "best": current if better else best,
                            "bad_evals": 0 if better else progress_state["bad_evals"] + 1,
                        }
                    if tc.early_stopping is not None and (
                        progress_state["bad_evals"] >= tc.early_stopping
                    ):
                        stopped_early = True
                    checkpointer.save(step, host(state), meta_for(step), val)
                elif step % checkpoint_every == 0:
                    checkpointer.save(step, host(state), meta_for(step))
                if stopped_early:
                    break
                if sigterm["set"]:
                    flush(step)
                    if step not in checkpointer.steps():
                        checkpointer.save(step, host(state), meta_for(step))
                    preempted = True
                    break
        except NonFiniteError:
            checkpointer.close()
            if bar is not None:
                bar.close()
            raise
    checkpointer.close()
    if bar is not None:
        bar.close()
    if preempted:
        print(f"optlab: SIGTERM: saved step {step} to {out}; run again to resume", file=sys.stderr)
        return RunResult({"preempted": True, "steps": step}, host(state))

    state = host(state)
    test = evaluate(setup, state, "test")
    # The validation of the final step, unless the loop did not just compute it.
    val = last_val[1] if last_val and last_val[0] == step else evaluate(setup, state, "val")
    summary = {
        **test,
        **{k: v for k, v in val.items()},
        "train_loss": last_train.get("train_loss"),
        "train_accuracy": last_train.get("train_accuracy"),
        "steps": step,
        "epochs": step / setup.steps_per_epoch,
        "stopped_early": stopped_early,
        "skipped_steps": int(jax.device_get(state.skipped)),
        "wall_seconds": time.perf_counter() - start_time,
        "devices": jax.device_count(),
        "mesh": {k: int(v) for k, v in setup.mesh.shape.items()},
    }
    if is_writer:
        artifacts.write_json_atomic(out / "summary.json", summary)
        artifacts.plot_curves(log.records(), out)
    if isinstance(log, _Tee):
        log.board.close()
    return RunResult(summary, state)


def restore_run(out: str, *, mesh=None) -> tuple[config_lib.RunConfig, Setup, Any]:
    """(config, setup, state) of the newest good checkpoint in the run folder ``out``."""
    import json

    path = pathlib.Path(out) / "config.json"
    if not path.exists():
        raise config_lib.ConfigError(f"--run: {out} holds no run (no config.json)")
    cfg = config_lib.RunConfig.from_dict(json.loads(path.read_text()))
    setup = build_setup(cfg, mesh=mesh)
    checkpointer = Checkpointer(str((pathlib.Path(out) / "checkpoints").absolute()))
    try:
        restored = checkpointer.restore_latest_good(setup.abstract_state)
    finally:
        checkpointer.close()
    if restored is None:
        raise config_lib.ConfigError(f"--run: {out} has no readable checkpoint")
    return cfg, setup, restored[0]
