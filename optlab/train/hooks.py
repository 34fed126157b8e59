"""The host loop's hooks, each run at its own cadence (as levanter's trainer registers
them): metrics and progress, evaluation and early stopping, checkpoints, SIGTERM, the
profiler. ``optlab.train.loop`` is a short driver: it dispatches a step, then calls every
hook that is due.

A hook reads and writes the loop's ``Run`` (the state, the step, the pending metrics, the
folder's writers) and may ask the loop to stop (``run.stop``).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import signal
import sys
import time
from typing import Any

import jax
import numpy as np

from optlab.train import artifacts

NONFINITE_HINT = (
    "lecture 03: lower the learning rate, check the inputs for NaN, standardize the data, "
    "clip gradients (optimizer.clip_norm), or set train.nonfinite skip to skip such steps"
)


# train.nonfinite skip: the run stops when more than this share of the last SKIP_WINDOW
# steps (all steps, in a shorter run) were skipped; it is not training any more.
SKIP_WINDOW = 100
SKIP_LIMIT = 0.5


class NonFiniteError(RuntimeError):
    """Training met a non-finite loss or gradient and the policy is to stop (or, under
    ``nonfinite="skip"``, skipped more than ``SKIP_LIMIT`` of the recent steps)."""


def encode_metrics(pending: list[dict]) -> list[dict]:
    """Steps' metrics (device or host arrays) as JSON: each value with its dtype, so that
    ``decode_metrics`` gives back the same arrays, bit for bit."""
    return [
        {k: [str(np.asarray(v).dtype), np.asarray(v).tolist()] for k, v in m.items()}
        for m in jax.device_get(pending)
    ]


def decode_metrics(encoded: list[dict]) -> list[dict]:
    return [{k: np.asarray(v, dtype=d) for k, (d, v) in m.items()} for m in encoded]


@dataclasses.dataclass
class Run:
    """The host loop's state, shared by the hooks."""

    setup: Any
    cfg: Any
    out: Any
    state: Any  # the loop's state (replicated under --parallel pmap)
    step: int
    log: Any  # metrics.jsonl (and TensorBoard)
    checkpointer: Any
    is_writer: bool
    names: list[str]  # layer names of the per-layer gradient norms
    progress: dict  # {"best": ..., "bad_evals": ...}: checkpointed with the state
    bar: Any = None
    pending: list = dataclasses.field(default_factory=list)  # metrics not yet pulled
    last_train: dict = dataclasses.field(default_factory=dict)
    last_val: tuple[int, dict] | None = None
    interval_start: float = dataclasses.field(default_factory=time.perf_counter)
    stop: str | None = None  # "early" or "preempted": the loop ends after this step
    identity: dict | None = None  # the run's identity (optlab.train.folder), checkpointed
    wall_before: float = 0.0  # training seconds of the run's earlier sessions
    started: float = dataclasses.field(default_factory=time.perf_counter)
    # finite flags of the recent steps (train.nonfinite skip's stopping rule)
    recent: collections.deque = dataclasses.field(
        default_factory=lambda: collections.deque(maxlen=SKIP_WINDOW)
    )
    # steady-state training time: the loop's stretches between two hooks that block, but
    # not those in which a step compiled; evaluation and checkpoints are outside them
    train_seconds: float = 0.0
    timed_steps: int = 0
    last_stretch: tuple[float, int] | None = None  # (seconds, steps) of the latest one

    def time_stretch(self, seconds: float, steps: int) -> None:
        self.train_seconds += seconds
        self.timed_steps += steps
        self.last_stretch = (seconds, steps)

    def throughput(self, stretch: tuple[float, int] | None) -> dict:
        """Step time, and for a language model tokens/s and MFU, of ``(seconds, steps)``."""
        if not stretch or stretch[1] == 0 or stretch[0] <= 0:
            return {}
        seconds, steps = stretch
        out = {"step_seconds": seconds / steps}
        tokens = self.setup.tokens_per_step
        if tokens:
            from optlab.train import throughput

            rate = tokens * steps / seconds
            peak, _ = throughput.device_peak(self.cfg.train.precision)
            out["tokens_per_second"] = rate
            out["mfu"] = throughput.mfu(rate, self.setup.flops_per_token, peak)
        return out

    @property
    def host_state(self) -> Any:
        """The unreplicated state (evaluation, checkpoints, the result)."""
        return self.setup.unreplicate(self.state)

    def meta(self) -> dict:
        """What a checkpoint records besides the state: enough that a run resumed from it
        logs, stops and summarizes exactly as the uninterrupted run (the metrics of the
        steps since the last log line, the last logged training record, the recent skips)."""
        return {
            "step": self.step,
            "data": self.setup.train_iter.state(),
            "progress": self.progress,
            "pending": encode_metrics(self.pending),
            "last_train": self.last_train,
            "recent_finite": [bool(f) for f in self.recent],
            "wall_seconds": self.wall_seconds(),
            "identity": self.identity,
        }

    def resume(self, meta: dict) -> None:
        """The loop's host-side state as a checkpoint's ``meta`` recorded it."""
        self.progress = meta.get("progress", self.progress)
        self.pending = decode_metrics(meta.get("pending", []))
        self.last_train = meta.get("last_train") or {}
        self.recent.extend(meta.get("recent_finite", []))
        self.wall_before = float(meta.get("wall_seconds", 0.0))

    def wall_seconds(self) -> float:
        return self.wall_before + time.perf_counter() - self.started

    def write(self, record: dict) -> None:
        if self.is_writer:
            self.log.write(record)

    def flush(self) -> None:
        """Pulls the pending metrics (one transfer), writes their record, and stops the
        run with ``NonFiniteError`` if a step was not finite under ``nonfinite="stop"``."""
        if not self.pending:
            return
        pulled = jax.device_get(self.pending)
        self.pending.clear()
        now = time.perf_counter()
        elapsed, self.interval_start = now - self.interval_start, now
        mean = lambda k: float(np.mean([m[k] for m in pulled]))  # noqa: E731
        record = {
            "step": self.step,
            "epoch": self.step / self.setup.steps_per_epoch,
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
            norms = np.asarray(last["layer_grad_norms"]).tolist()
            record["layer_grad_norms"] = dict(zip(self.names, norms, strict=True))
        if "accuracy" in pulled[-1]:
            record["train_accuracy"] = mean("accuracy")
        if "skipped_spikes" in pulled[-1]:  # optlab.skip_spikes: skipped so far
            record["skipped_spikes"] = int(pulled[-1]["skipped_spikes"])
        if self.setup.tokens_per_step:  # a language model's throughput of the last stretch
            record.update(self.throughput(self.last_stretch))
        self.last_train = record
        self.write(record)
        if self.bar is not None:
            shown = {"loss": f"{record['train_loss']:.4f}"}
            if "tokens_per_second" in record:
                shown["tok/s"] = f"{record['tokens_per_second']:.0f}"
                shown["mfu"] = f"{record['mfu']:.1%}"
            self.bar.set_postfix(shown, refresh=False)
        first_bad = np.asarray(jax.device_get(self.state.first_nonfinite)).reshape(-1, 2)[0]
        if first_bad[0] >= 0 and self.cfg.train.nonfinite == "stop":
            layer = self.names[int(first_bad[1])] if int(first_bad[1]) < len(self.names) else "?"
            raise NonFiniteError(
                f"non-finite loss or gradient at step {int(first_bad[0])} in layer {layer}; "
                f"{NONFINITE_HINT}"
            )
        self.recent.extend(bool(m["finite"]) for m in pulled)
        window = min(SKIP_WINDOW, self.setup.total_steps)
        skipped = sum(not f for f in self.recent)
        if len(self.recent) >= window and skipped > SKIP_LIMIT * len(self.recent):
            raise NonFiniteError(
                f"train.nonfinite skip skipped {skipped} of the last {len(self.recent)} steps "
                f"(more than {SKIP_LIMIT:.0%}): the run is not training. {NONFINITE_HINT}"
            )


class Hook:
    """Runs every ``every`` steps (and at the last step when ``at_end``); ``metrics``:
    the steps it runs at need the monitored step's metrics (gradient norms)."""

    every: int | None = None
    at_end: bool = False
    metrics: bool = False

    def due(self, step: int, total: int) -> bool:
        return bool(self.every and step % self.every == 0) or (self.at_end and step == total)

    def __call__(self, run: Run) -> None:
        raise NotImplementedError

    def close(self, run: Run) -> None:
        """At the end of the loop, however it ended."""


class ProgressHook(Hook):
    every = 1

    def __call__(self, run: Run) -> None:
        if run.bar is not None:
            run.bar.update(1)


class MetricsHook(Hook):
    at_end = metrics = True

    def __init__(self, every: int):
        self.every = every

    def __call__(self, run: Run) -> None:
        run.flush()


def _monitor_mode(metric: str) -> str:
    return "min" if "loss" in metric else "max"


class EvalHook(Hook):
    """Validation, the early-stopping count, and the checkpoint of that step (with its
    metrics, so the best by ``monitor`` is kept)."""

    at_end = metrics = True

    def __init__(self, every: int, evaluate, monitor: str, patience: int | None):
        self.every, self.evaluate = every, evaluate
        self.monitor, self.mode, self.patience = monitor, _monitor_mode(monitor), patience

    def __call__(self, run: Run) -> None:
        run.flush()
        val = self.evaluate(run.setup, run.host_state, "val")
        run.last_val = (run.step, val)
        if val:  # no validation split: no record of nothing
            run.write({"step": run.step, "epoch": run.step / run.setup.steps_per_epoch, **val})
        current = val.get(self.monitor)
        if current is not None:
            best = run.progress["best"]
            better = best is None or (current > best if self.mode == "max" else current < best)
            run.progress = {
                "best": current if better else best,
                "bad_evals": 0 if better else run.progress["bad_evals"] + 1,
            }
        if self.patience is not None and run.progress["bad_evals"] >= self.patience:
            run.stop = "early"
        run.checkpointer.save(run.step, run.host_state, run.meta(), val)


class CheckpointHook(Hook):
    """A checkpoint every ``every`` steps, but for the steps the evaluation saves."""

    def __init__(self, every: int, evaluation: EvalHook):
        self.every, self.evaluation = every, evaluation

    def __call__(self, run: Run) -> None:
        if not self.evaluation.due(run.step, run.setup.total_steps):
            run.checkpointer.save(run.step, run.host_state, run.meta())


class SigtermHook(Hook):
    """Preemption: on SIGTERM, save the step and stop (the run resumes from it).

    One process: a Python handler sets a flag. Several processes: every process must stop at
    the same step (the save is collective), so the decision is JAX's preemption sync point
    (``multihost_utils.reached_preemption_sync_point``: JAX's own SIGTERM notifier, agreed on
    through the coordination service), and no Python handler replaces that notifier. A
    SIGTERM that reaches only one of the processes then stops them all at one step."""

    every = 1

    def __init__(self):
        self.flag = False
        self.previous = None
        self.multi = jax.process_count() > 1
        if not self.multi:
            with contextlib.suppress(ValueError):  # not the main thread: no preemption handling
                self.previous = signal.signal(signal.SIGTERM, self._set)

    def _set(self, *_):
        self.flag = True

    def _preempted(self, step: int) -> bool:
        if not self.multi:
            return self.flag
        from jax.experimental import multihost_utils

        try:
            return bool(multihost_utils.reached_preemption_sync_point(step))
        except RuntimeError:  # no preemption sync manager in this JAX set-up
            return False

    def __call__(self, run: Run) -> None:
        if run.stop or not self._preempted(run.step):  # an early stop has just saved
            return
        # No log line here: the steps since the last one are checkpointed with the state
        # (Run.meta), so the resumed run writes the same records as an uninterrupted one.
        if run.step not in run.checkpointer.steps():
            run.checkpointer.save(run.step, run.host_state, run.meta())
        run.stop = "preempted"

    def close(self, run: Run) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


class ProfileHook(Hook):
    """A ``jax.profiler`` trace of steps ``[start, stop)`` into ``OUT/profile``."""

    every = 1

    def __init__(self, start: int, stop: int):
        self.start, self.stop, self.tracing = start, stop, False

    def before(self, run: Run) -> None:
        if run.step == self.start and not self.tracing:
            jax.profiler.start_trace(str(run.out / "profile"))
            self.tracing = True

    def __call__(self, run: Run) -> None:
        if self.tracing and run.step == self.stop:
            jax.block_until_ready(run.state)
            jax.profiler.stop_trace()
            self.tracing = False
            print(f"optlab: profiler trace in {run.out / 'profile'}", file=sys.stderr)

    def close(self, run: Run) -> None:
        if self.tracing:
            jax.profiler.stop_trace()


class Tee:
    """metrics.jsonl plus TensorBoard: the same records to both."""

    def __init__(self, log: artifacts.MetricsLog, board: artifacts.TensorBoard):
        self.log, self.board = log, board

    def write(self, record: dict) -> None:
        self.log.write(record)
        self.board.write(record)

    def close(self) -> None:
        self.board.close()

    def __getattr__(self, name):
        return getattr(self.log, name)
