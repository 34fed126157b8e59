"""What the experiment scripts share: flags, output folder, CSV rows, the verdict, and the
few training pieces several of them use.

An experiment is ``experiments/NN_name.py`` with a module docstring (the claim, the
command, the expected result, the run time on a 2-core CPU) and ``main(argv) -> dict``.
``--quick`` shrinks it to a smoke test (seconds); ``--out`` chooses the folder (default
``experiments/out/NN_name``). The verdict is computed from the run's own numbers.

Training pieces, all on optlab's own parts (``make_eval_step``, ``make_train_step``,
``build_setup``'s compiled step and ``optlab.train.evaluate``):

- ``make_evaluator``: loss and accuracy on any split, the training split included
  (``optlab.train.evaluate`` covers a Setup's "val" and "test"); experiments 02–04.
- ``SGDRunner``: an MLP with one compiled SGD step whose α is data; experiments 03, 04.
- ``train_in_chunks`` and ``fresh_state``: a ``build_setup`` run logged every N steps,
  and a new state from shared initial weights; experiments 05, 07, 08.
"""

from __future__ import annotations

import argparse
import csv
import pathlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import optlab
from optlab.config import RunConfig, build_optimizer
from optlab.models import create_model
from optlab.train import (
    StepSpec,
    TrainState,
    create_state,
    losses,
    make_eval_step,
    make_train_step,
)

# --- script plumbing -------------------------------------------------------------------------


def parser(doc: str | None, default_out: str) -> argparse.ArgumentParser:
    """The shared flags: ``--out`` and ``--quick``; an experiment adds its own."""
    summary = (doc or "").strip().splitlines()[0] if doc else None
    p = argparse.ArgumentParser(description=summary)
    p.add_argument(
        "--out", default=f"experiments/out/{default_out}", help="folder for PNG and CSV files"
    )
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test in seconds")
    return p


def check_positive(p: argparse.ArgumentParser, args: argparse.Namespace, *flags: str) -> None:
    """``p.error`` (exit 2) at the first of ``flags`` (``"--batch-size"`` reads
    ``args.batch_size``) whose value is not > 0: an int must be a positive integer."""
    for flag in flags:
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if not value > 0:
            wanted = "a positive integer" if isinstance(value, int) else "> 0"
            p.error(f"{flag} must be {wanted}, got {value}")


def out_dir(path: str) -> pathlib.Path:
    folder = pathlib.Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_csv(path: pathlib.Path, rows: Sequence[dict[str, Any]]) -> pathlib.Path:
    """Rows of dicts (their keys, in first-seen order, are the header)."""
    header: list[str] = []
    for row in rows:
        header += [k for k in row if k not in header]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return path


def verdict(claim: str, holds: bool, evidence: str) -> str:
    """The line an experiment ends with: whether its numbers support the lecture's claim."""
    line = f"VERDICT: {'SUPPORTED' if holds else 'NOT SUPPORTED'}: {claim} ({evidence})"
    print(line)
    return line


class Timer:
    """``with Timer() as t: ...; t.seconds``."""

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start


# --- training pieces -------------------------------------------------------------------------


def make_evaluator(model: Any, dataset: Any, chunk: int = 512) -> Callable[..., dict]:
    """``evaluate(state, *splits) -> {"<split>_loss": …, "<split>_accuracy": …, …}`` over
    the whole of each split ("train", "val" or "test"), in masked chunks of ``chunk`` rows,
    summed in float64 on the host (as ``optlab.train.evaluate`` does): every split of every
    run shares one compiled ``optlab.train.make_eval_step`` program."""
    step = jax.jit(
        make_eval_step(model.apply, loss="cross_entropy", num_classes=dataset.num_classes)
    )
    data = {
        "train": (dataset.x_train, dataset.y_train),
        "val": (dataset.x_val, dataset.y_val),
        "test": (dataset.x_test, dataset.y_test),
    }

    def evaluate(state: TrainState, *splits: str) -> dict:
        out = {}
        for split in splits:
            x, y = data[split]
            totals: dict = {}
            for i in range(0, len(x), chunk):
                n, pad = len(x[i : i + chunk]), chunk - len(x[i : i + chunk])
                batch = {
                    "x": np.pad(x[i : i + chunk], [(0, pad)] + [(0, 0)] * (x.ndim - 1)),
                    "y": np.pad(y[i : i + chunk], (0, pad)),
                    "mask": np.repeat(np.float32([1, 0]), [n, pad]),
                }
                for k, v in jax.device_get(step(state, batch)).items():
                    totals[k] = totals.get(k, 0) + np.asarray(v, np.float64)
            summary = losses.summarize(split, totals)
            out.update({f"{split}_{k}": summary[f"{split}_{k}"] for k in ("loss", "accuracy")})
        return out

    return evaluate


class SGDRunner:
    """An MLP, its initial state (a host copy) and one compiled plain-SGD step
    (``optlab.sgd``, lecture 02) whose rate α is part of the optimizer state
    (``optax.inject_hyperparams``): runs that differ only in their batches and α — a batch
    size rule (experiment 03), a schedule (experiment 04) — reuse one program per batch
    shape. Subclasses add the ``run`` loop."""

    def __init__(self, dataset: Any, *, widths: tuple[int, ...], seed: int):
        self.dataset, self.seed = dataset, seed
        model = create_model(
            "mlp", num_classes=dataset.num_classes, input_shape=dataset.input_shape, widths=widths
        )
        tx = optax.inject_hyperparams(optlab.sgd)(learning_rate=0.0)
        # α lives in the optimizer state; the step's own logged rate is not used here.
        spec = StepSpec(learning_rate_fn=lambda _: jnp.zeros([]), nonfinite="skip", monitor=True)
        step = make_train_step(model.apply, tx, spec)
        self.step = jax.jit(step, donate_argnums=0)

        def init():
            key = jax.random.PRNGKey(seed)
            sample = jnp.zeros((1, *dataset.input_shape))
            params = model.init({"params": key, "dropout": key}, sample, train=False)["params"]
            return create_state(params, tx.init(params), seed)

        self.initial = jax.device_get(jax.jit(init)())
        self.evaluate = make_evaluator(model, dataset)

    @staticmethod
    def with_rate(state: TrainState, rate: float) -> TrainState:
        """``state`` whose next updates use α = ``rate`` (as float32)."""
        hyper = {"learning_rate": np.asarray(rate, np.float32)}
        return state._replace(opt_state=state.opt_state._replace(hyperparams=hyper))


def train_in_chunks(setup: Any, state: TrainState, *, every: int) -> Iterator[tuple]:
    """``setup.total_steps`` updates of a ``build_setup`` run's compiled step on its
    training batches, yielding ``(step, state, metrics)`` every ``every`` steps and after
    the last: ``metrics`` are the host values of the steps since the previous yield. The
    step donates its state: use each yielded state before asking for the next."""
    pending = []
    for step in range(1, setup.total_steps + 1):
        batch = jax.device_put(setup.next_batch(), setup.batch_sharding)
        state, metrics = setup.train_step(state, batch)
        pending.append(metrics)
        if step % every == 0 or step == setup.total_steps:
            yield step, state, jax.device_get(pending)
            pending = []


def fresh_state(setup: Any, cfg: RunConfig, params: Any) -> TrainState:
    """A new state for ``setup`` (built from ``cfg``) that starts from ``params`` with a
    fresh optimizer state — what ``setup.init_state()`` makes from its own draw (models
    without batch statistics) — so several runs start from the same weights. ``params``
    may be host copies: the compiled step donates the state it is given."""
    tx, _ = build_optimizer(cfg.optimizer, setup.total_steps)
    params = jax.tree.map(jnp.asarray, params)
    shardings = jax.tree.map(lambda a: a.sharding, setup.abstract_state)
    return jax.device_put(create_state(params, tx.init(params), cfg.train.seed), shardings)
