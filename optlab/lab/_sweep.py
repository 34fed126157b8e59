"""Vectorized hyper-parameter sweeps: a whole grid trained at once in one compiled program.

Lecture 03: "always tune hyper-parameters" — start with a coarse grid of learning rates
{0.1, 0.05, 0.03, 0.01, 0.003, 0.001, 0.0005, 0.0001}, then search finer around the good
values (``refine``); with little data, decide by cross-validation (``folds``). Here every
configuration of the grid (× seeds × folds) is one row of a configuration axis: the
hyper-parameters live as arrays in the optimizer state (``optax.inject_hyperparams``), the
trainer's own step (``optlab.train.make_train_step``) is ``vmap``-ped over that axis, and
all steps of all runs are one jitted ``lax.scan`` over device-resident data, batches
gathered from per-run index arrays. With several devices the configuration axis is
sharded over a 1-D mesh of all of them.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from optlab import config as config_lib
from optlab.lab import _sweep_optimizer as sweep_tx
from optlab.lab._sweep_grid import (
    batch_order,
    check_config,
    grid_points,
    init_variables,
    kfold_indices,
    pad_stack,
    seed_list,
)
from optlab.lab._sweep_result import METRICS, SweepResult

AXIS = "config"  # the mesh axis the configurations are sharded over
EVAL_CHUNK = 256  # evaluation rows per vmapped chunk
INDEX_BYTES = 64 * 2**20  # above this many bytes of batch indices, the scan runs in chunks


def sweep(
    cfg: config_lib.RunConfig | None = None,
    grid: Mapping[str, Sequence[float]] | None = None,
    *,
    seeds: int | Sequence[int] | None = None,
    folds: int | None = None,
    devices: Sequence[Any] | None = None,
    dataset: Any = None,
) -> SweepResult:
    """Trains every configuration of ``grid`` × ``seeds`` (× ``folds``) at once (lecture 03).

    Each run is exactly the run ``optlab train`` would make with those values (same model,
    data, optimizer chain, batch order, dropout keys and number of steps), and the results
    equal those runs made one at a time up to float32 rounding; but all runs are rows of a
    configuration axis of one compiled program: ``vmap`` of the trainer's step over the
    axis, ``lax.scan`` over the steps, the data on the device. With several devices the
    axis is sharded over a 1-D mesh of all of them (padded with copies of the last run to a
    multiple of the device count).

    Args:
      cfg: the base run (``optlab.config.RunConfig``; the default is the digits MLP).
      grid: ``{name: [values]}``: ``learning_rate``, ``weight_decay`` or any numeric
        argument of the optimizer (``mu``/``momentum`` for momentum and Nesterov, ``b1``,
        ``b2``, ``eps`` for Adam, ...); the runs are the Cartesian product. A swept rate
        under a non-constant schedule becomes the schedule's peak (the shape is kept).
      seeds: an int n (seeds ``cfg.train.seed`` … ``+ n − 1``) or a list of seeds; each
        seed changes the initialization, the dropout keys and the data order (the data
        split is always ``cfg.train.seed``'s). Default: ``cfg.train.seed`` alone.
      folds: k for k-fold cross-validation: the training split is cut into k disjoint folds
        (`kfold_indices`) and every configuration is trained k times, each time with one
        fold held out and evaluated on it. Every run makes the same number of updates,
        ``epochs × ⌈n / B⌉`` with n the largest training part. Without folds, runs are
        evaluated on the validation split.
      devices: devices to shard the configurations over (default ``jax.devices()``).
      dataset: your own ``optlab.data.Dataset`` instead of ``cfg.data.dataset``.

    Returns:
      A `SweepResult`: ``table`` (one row per run: the hyper-parameters, seed, fold,
      train_loss — the mean loss over the last epoch's steps —, val_loss, val_accuracy,
      diverged), ``summary()`` (mean ± std over seeds and folds), ``best()``,
      ``to_csv``, the per-step losses and the final params (leading axis: the runs,
      sharded over the devices).

    Raises:
      ConfigError: a grid key the optimizer does not take (the message lists those it
        does), a bad value, or a config the trainer would reject.
    """
    from optlab.data import BatchIterator
    from optlab.train.losses import batch_counts
    from optlab.train.setup import INITIAL_LOSS_SCALE, build_setup
    from optlab.train.state import create_state
    from optlab.train.step import make_train_step

    cfg = copy.deepcopy(cfg or config_lib.RunConfig())
    check_config(cfg)
    setup = build_setup(cfg, dataset=dataset)  # validates the run; model, data, step counts
    cfg = setup.cfg  # with the recipe of its dataset and model
    dc, tc = cfg.data, cfg.train
    resolved, points = grid_points(cfg.optimizer, grid)
    seeds_used = seed_list(seeds, tc.seed)
    ds, model = setup.dataset, setup.model
    n = len(ds.x_train)
    fold_rows = None if folds is None else kfold_indices(n, folds, tc.seed)
    train_parts = (
        [np.arange(n)] if fold_rows is None else [np.setdiff1d(np.arange(n), f) for f in fold_rows]
    )
    if fold_rows is None and len(ds.x_val) == 0:
        raise config_lib.ConfigError(
            "sweep: no validation split to compare runs on; use data.val_fraction > 0 or --folds k"
        )
    per_epoch = setup.steps_per_epoch  # the trainer's, or with folds the longest part's
    if fold_rows is not None and dc.mode != "full":
        longest = max(len(r) for r in train_parts)
        size = None if dc.mode == "online" else dc.batch_size * tc.accumulate
        probe = BatchIterator(np.arange(longest), np.zeros(longest), batch_size=size)
        per_epoch = max(1, probe.steps_per_epoch)
    steps = tc.steps if tc.steps is not None else tc.epochs * per_epoch
    names = tuple(resolved)
    for point in points:  # each value through the trainer's own checks
        config_lib.build_optimizer(sweep_tx.with_values(cfg.optimizer, point), steps)
    injected = sweep_tx.injected_optimizer(cfg.optimizer, steps, names)

    runs = [
        {"point": p, "seed": s, "fold": f}
        for p in points
        for s in seeds_used
        for f in (range(len(fold_rows)) if fold_rows is not None else [None])
    ]
    devs = list(devices) if devices is not None else jax.devices()
    width = math.ceil(len(runs) / len(devs)) * len(devs)
    padded = runs + [runs[-1]] * (width - len(runs))
    mesh = Mesh(np.array(devs), (AXIS,))
    by_run, by_step = NamedSharding(mesh, P(AXIS)), NamedSharding(mesh, P(None, AXIS))
    replicated = NamedSharding(mesh, P())

    # -- data and per-run batch indices (host), then on the device once ------------------
    pool_x = np.concatenate([ds.x_train, ds.x_val])
    pool_y = np.concatenate([ds.y_train, ds.y_val])
    data = jax.device_put({"x": pool_x, "y": pool_y}, replicated)
    orders = {}
    for r in padded:
        key = (r["seed"], r["fold"])
        if key not in orders:
            orders[key] = batch_order(train_parts[r["fold"] or 0], r["seed"], cfg, steps)
    # One data order for all runs (one seed, no folds: a sweep of hyper-parameters alone):
    # each step gathers its batch once and every run reads it. vmap then folds the
    # configuration axis into the first layer's matrix product (x @ [W_1 … W_R]), one
    # larger product instead of R small ones.
    shared = len(orders) == 1
    if shared:
        index, mask = next(iter(orders.values()))  # (steps, B)
    else:
        batch_width = max(o[0].shape[1] for o in orders.values())
        index = pad_stack([orders[(r["seed"], r["fold"])][0] for r in padded], batch_width)
        mask = pad_stack([orders[(r["seed"], r["fold"])][1] for r in padded], batch_width)
        index, mask = np.swapaxes(index, 0, 1), np.swapaxes(mask, 0, 1)  # (steps, runs, B)
    if tc.accumulate > 1:
        shape = (steps, *(() if shared else (width,)), tc.accumulate, -1)
        index, mask = index.reshape(shape), mask.reshape(shape)

    eval_rows = [
        (n + np.arange(len(ds.x_val))) if r["fold"] is None else fold_rows[r["fold"]]
        for r in padded
    ]
    longest_eval = max(len(e) for e in eval_rows)
    chunk = min(EVAL_CHUNK, longest_eval)
    chunks = math.ceil(longest_eval / chunk)
    eval_index = pad_stack(eval_rows, chunks * chunk).reshape(width, chunks, chunk)
    eval_mask = pad_stack([np.ones(len(e), np.float32) for e in eval_rows], chunks * chunk)
    eval_mask = eval_mask.reshape(width, chunks, chunk)

    # -- the programs ---------------------------------------------------------------------
    loss = setup.spec.loss
    tx = injected(**{k: v[0] for k, v in resolved.items()})  # updates read the state's values
    # the trainer's step; its rate lives in each run's injected state, not in a schedule
    spec = dataclasses.replace(setup.spec, learning_rate_fn=lambda _: jnp.zeros([]))
    step_fn = make_train_step(model.apply, tx, spec)
    classes = max(ds.num_classes, 1)

    def init_run(variables, seed, hp):  # one run's state from its seed's variables
        variables = dict(variables)
        params = variables.pop("params")
        scale = INITIAL_LOSS_SCALE if spec.loss_scaling else 1.0
        opt_state = injected(**hp).init(params)
        return create_state(params, opt_state, seed, variables, loss_scale=scale)

    def init_all(per_seed, which, seeds, hp):  # each run takes its seed's variables
        variables = jax.tree.map(lambda *v: jnp.stack(v)[which], *per_seed)
        return jax.vmap(init_run)(variables, seeds, hp)

    def train_all(states, data, index, mask):
        def one(state, batch):
            return step_fn(state, batch)

        def body(states, xs):
            i, m = xs
            batch = {"x": data["x"][i], "y": data["y"][i], "mask": m}
            batch_axis = None if shared else 0
            states, metrics = jax.vmap(one, in_axes=(0, batch_axis))(states, batch)
            return states, metrics["loss"]

        return jax.lax.scan(body, states, (index, mask))

    def evaluate_all(states, data, index, mask):
        def one(state, index, mask):
            def chunk_counts(xs):
                i, m = xs
                variables = {"params": state.params, **state.model_state}
                logits = model.apply(variables, data["x"][i], train=False)
                counts = batch_counts(loss, logits, {"y": data["y"][i], "mask": m}, classes)
                return {k: counts[k] for k in ("loss_sum", "count", "correct") if k in counts}

            return jax.tree.map(lambda a: a.sum(0), jax.lax.map(chunk_counts, (index, mask)))

        return jax.vmap(one)(states, index, mask)

    hp = {k: np.asarray([r["point"][k] for r in padded], np.float32) for k in names}
    seed_array = np.asarray([r["seed"] for r in padded], np.int32)
    start = time.perf_counter()
    per_seed = tuple(init_variables(model, s, ds.input_shape) for s in seeds_used)
    which = np.asarray([seeds_used.index(r["seed"]) for r in padded], np.int32)
    init = jax.jit(init_all, out_shardings=by_run)
    states = init(per_seed, *jax.device_put((which, seed_array, hp), by_run))
    by_index = replicated if shared else by_step  # a shared order is every device's
    train = jax.jit(
        train_all,
        in_shardings=(by_run, replicated, by_index, by_index),
        out_shardings=(by_run, by_step),
        donate_argnums=0,
    )
    per_call = max(1, min(steps, INDEX_BYTES // max(index[0].nbytes, 1)))
    parts = [
        jax.device_put((index[lo : lo + per_call], mask[lo : lo + per_call]), by_index)
        for lo in range(0, steps, per_call)  # one part unless the indices are very large
    ]
    compiled = train.lower(states, data, *parts[0]).compile()  # compiled apart: timed apart
    jax.block_until_ready(states)
    train_start = time.perf_counter()
    losses = []
    for part in parts:
        run = compiled if part[0].shape[0] == per_call else train
        states, step_losses = run(states, data, *part)
        losses.append(step_losses)
    jax.block_until_ready(states)
    train_seconds = time.perf_counter() - train_start
    counts = jax.jit(evaluate_all, in_shardings=(by_run, replicated, by_run, by_run))(
        states, data, *jax.device_put((eval_index, eval_mask), by_run)
    )
    losses_host = np.concatenate(jax.device_get(losses), axis=0).T[: len(runs)]
    counts, first_bad, skipped = jax.device_get((counts, states.first_nonfinite, states.skipped))
    first_bad = first_bad[:, 0]
    seconds = time.perf_counter() - start

    table = []
    last = min(per_epoch, steps)
    for i, r in enumerate(runs):
        diverged = bool(first_bad[i] >= 0) and tc.nonfinite == "stop"
        count = max(float(counts["count"][i]), 1.0)
        row = {**r["point"], "seed": r["seed"], "fold": r["fold"]}
        row["train_loss"] = float(np.mean(losses_host[i, -last:]))
        row["val_loss"] = float(counts["loss_sum"][i]) / count
        if "correct" in counts:
            row["val_accuracy"] = float(counts["correct"][i]) / count
        if diverged:
            row.update({k: float("nan") for k in METRICS if k in row})
        row.update(diverged=diverged, skipped=int(skipped[i]), val_count=int(count))
        table.append(row)
    return SweepResult(
        grid=resolved,
        table=table,
        losses=losses_host,
        params=states.params,
        metric="val_accuracy" if loss == "cross_entropy" else "val_loss",
        folds=fold_rows,
        steps=steps,
        seconds=seconds,
        train_seconds=train_seconds,
        devices=len(devs),
    )
