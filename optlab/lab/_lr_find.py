"""Leslie Smith's learning-rate range test: one short run whose rate grows exponentially.

Lecture 03 reads the loss curve to judge a rate: "tiny loss change → too small of a
learning rate; loss (and then weights) turn to NaNs → too high". The range test (Smith,
"Cyclical Learning Rates for Training Neural Networks", 2017; popularized by fastai) puts
both ends on one plot: step t uses α_t = α_min · (α_max / α_min)^(t / (T − 1)), the loss
is smoothed by a bias-corrected exponential moving average, and the run stops as soon as
the smoothed loss exceeds ``diverge_factor`` × its best value. The whole test is one
compiled ``lax.while_loop``: the rate enters the optimizer state (``optax.inject_hyperparams``)
each step, and the divergence test is decided inside the program, so no step is wasted.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optlab import config as config_lib
from optlab.lab import _sweep_optimizer as sweep_tx


@dataclasses.dataclass(eq=False)
class LRFindResult:
    """A learning-rate range test.

    Attributes:
      learning_rates: the rate of every step taken, shape (n,).
      losses: the training loss at each step (before that step's update), shape (n,).
      smoothed_losses: the bias-corrected moving average of ``losses``:
        a_t = β·a_{t−1} + (1 − β)·loss_t, smoothed_t = a_t / (1 − β^(t+1)).
      suggestion: the suggested rate: ``min_loss_lr / 10`` (see `lr_range_test`).
      stopped_at: the step at which the smoothed loss exceeded ``diverge_factor`` × its
        best (or the loss was not finite); None if the test reached ``max_lr``.
      min_loss_lr: the rate at the minimum of the smoothed loss.
      steepest_lr: the rate where the smoothed loss falls fastest against log α, before
        its minimum (a second opinion, noisier than the suggestion).
      seconds: wall time of the compiled test (compile included).
    """

    learning_rates: np.ndarray
    losses: np.ndarray
    smoothed_losses: np.ndarray
    suggestion: float
    stopped_at: int | None
    min_loss_lr: float
    steepest_lr: float
    seconds: float

    @property
    def diverged(self) -> bool:
        return self.stopped_at is not None

    def to_csv(self, path: str | os.PathLike) -> None:
        """Writes ``step,learning_rate,loss,smoothed_loss`` rows."""
        rows = zip(self.learning_rates, self.losses, self.smoothed_losses, strict=True)
        with open(path, "w") as f:
            f.write("step,learning_rate,loss,smoothed_loss\n")
            for t, (lr, loss, smooth) in enumerate(rows):
                f.write(f"{t},{lr:.6g},{loss:.6g},{smooth:.6g}\n")


def _check(min_lr, max_lr, steps, smoothing, diverge_factor) -> None:
    def bad(name, value, must):
        raise ValueError(f"lr_range_test: `{name}` must be {must}, got {value!r}.")

    if not (isinstance(min_lr, int | float) and 0 < min_lr < math.inf):
        bad("min_lr", min_lr, "a number > 0 (e.g. 1e-7)")
    if not (isinstance(max_lr, int | float) and min_lr < max_lr < math.inf):
        bad("max_lr", max_lr, f"a number > min_lr={min_lr} (e.g. 10)")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        bad("steps", steps, "an integer >= 2 (e.g. 100)")
    if not (isinstance(smoothing, int | float) and 0 <= smoothing < 1):
        bad("smoothing", smoothing, "in [0, 1) (e.g. 0.98; 0 for no smoothing)")
    if not (isinstance(diverge_factor, int | float) and diverge_factor > 1):
        bad("diverge_factor", diverge_factor, "a number > 1 (e.g. 4)")


def _range_program(step: Callable, smoothing: float, diverge_factor: float) -> Callable:
    """``(carry, lrs, *args) -> (steps taken, stopped, losses)``: ``step(carry, lr, t, *args)
    -> (carry, loss)`` in a ``while_loop`` that stops when the smoothed loss diverges."""

    def program(carry, lrs, *args):
        total = lrs.shape[0]

        def cond(c):
            return (c[0] < total) & ~c[4]

        def body(c):
            t, carry, avg, best, _, losses = c
            carry, loss = step(carry, lrs[t], t, *args)
            loss = jnp.asarray(loss, jnp.float32)
            avg = smoothing * avg + (1 - smoothing) * loss
            smooth = avg / (1 - jnp.float32(smoothing) ** (t + 1).astype(jnp.float32))
            finite = jnp.isfinite(smooth)
            best = jnp.where(finite, jnp.minimum(best, smooth), best)
            stop = ~finite | (smooth > diverge_factor * best)
            return t + 1, carry, avg, best, stop, losses.at[t].set(loss)

        init = (
            jnp.zeros([], jnp.int32),
            carry,
            jnp.zeros([], jnp.float32),
            jnp.full([], jnp.inf, jnp.float32),
            jnp.zeros([], bool),
            jnp.full([total], jnp.nan, jnp.float32),
        )
        t, _, _, _, stopped, losses = jax.lax.while_loop(cond, body, init)
        return t, stopped, losses

    return program


def _result(lrs, taken, stopped, losses, smoothing, seconds) -> LRFindResult:
    n = int(taken)
    lrs, losses = np.asarray(lrs[:n], np.float64), np.asarray(losses[:n], np.float64)
    smoothed = np.empty(n)
    avg = 0.0
    for t, loss in enumerate(losses):
        avg = smoothing * avg + (1 - smoothing) * loss
        smoothed[t] = avg / (1 - smoothing ** (t + 1))
    finite = np.where(np.isfinite(smoothed), smoothed, np.inf)
    m = int(np.argmin(finite))
    skip = min(n // 10, max(m - 2, 0))  # the first points are mostly the average warming up
    steepest = lrs[skip]
    if m - skip >= 2:
        slope = np.gradient(smoothed[skip : m + 1], np.log(lrs[skip : m + 1]))
        steepest = lrs[skip + int(np.argmin(slope))]
    return LRFindResult(
        learning_rates=lrs,
        losses=losses,
        smoothed_losses=smoothed,
        suggestion=float(lrs[m] / 10),
        stopped_at=n - 1 if bool(stopped) else None,
        min_loss_lr=float(lrs[m]),
        steepest_lr=float(steepest),
        seconds=seconds,
    )


def _rates(min_lr: float, max_lr: float, steps: int) -> np.ndarray:
    return np.geomspace(min_lr, max_lr, steps).astype(np.float32)


def lr_range_test(
    loss_fn: Callable[[Any, Any], jax.Array],
    params: Any,
    data: Any,
    tx_factory: Callable[..., optax.GradientTransformation] | None = None,
    *,
    stacked: bool = False,
    min_lr: float = 1e-7,
    max_lr: float = 10.0,
    steps: int = 100,
    smoothing: float = 0.98,
    diverge_factor: float = 4.0,
) -> LRFindResult:
    """The learning-rate range test (Smith 2017) on any problem ``loss_fn(params, batch)``.

    Lecture 03 judges a rate by the loss curve: barely moving means too small, rising or
    NaN too large. This test sweeps the rate over one run to find where the two meet.

    Step t (0-based) updates with α_t = ``min_lr`` · (``max_lr`` / ``min_lr``)^(t / (T − 1)),
    T = ``steps``; the test stops once the smoothed loss exceeds ``diverge_factor`` × the
    best smoothed loss so far (or is not finite). All of it is one compiled program.

    The suggestion: the rate at the minimum of the smoothed loss, divided by 10 (Smith's
    "an order of magnitude below where the loss is lowest", fastai's ``lr_min``). It is
    robust because the minimum is a global feature of the smoothed curve (the steepest
    slope, also reported as ``steepest_lr``, depends on the noise of a few points). If
    the test never diverged, the minimum may lie beyond ``max_lr``: raise it.

    Args:
      loss_fn: the loss of ``params`` on a batch (jit-able).
      params: the starting point (a pytree).
      data: one batch used at every step (full-batch, as gradient descent), or with
        ``stacked=True`` batches stacked on a leading axis, step t using batch t mod n.
      tx_factory: ``learning_rate -> GradientTransformation`` (default ``optlab.sgd``);
        e.g. ``lambda learning_rate: optlab.momentum(learning_rate, mu=0.9)``.
      stacked: see ``data``.
      min_lr, max_lr: the first and last rates (0 < min_lr < max_lr).
      steps: the number of steps T (≥ 2).
      smoothing: β of the moving average, in [0, 1).
      diverge_factor: > 1.

    Returns:
      An `LRFindResult`.

    Example:
      >>> import jax.numpy as jnp
      >>> from optlab.lab import lr_range_test
      >>> f = lambda w, _: 0.5 * 4.0 * jnp.sum(w**2)  # λ = 4: GD is stable for α < 0.5
      >>> res = lr_range_test(f, jnp.ones(2), None, min_lr=1e-3, max_lr=10.0, steps=60)
      >>> bool(res.learning_rates[res.stopped_at] > 0.5), bool(res.suggestion < 0.5)
      (True, True)
    """
    import optlab

    _check(min_lr, max_lr, steps, smoothing, diverge_factor)
    injected = optax.inject_hyperparams(tx_factory or optlab.sgd)
    tx = injected(learning_rate=min_lr)
    n = jax.tree.leaves(data)[0].shape[0] if stacked else None

    def step(carry, lr, t, data):
        params, opt_state = carry
        opt_state = sweep_tx.set_hyperparams(opt_state, {"learning_rate": lr})
        batch = jax.tree.map(lambda a: a[t % n], data) if stacked else data
        loss, grads = jax.value_and_grad(loss_fn)(params, batch)
        updates, opt_state = tx.update(grads, opt_state, params, value=loss)
        return (optax.apply_updates(params, updates), opt_state), loss

    lrs = _rates(min_lr, max_lr, steps)
    start = time.perf_counter()
    program = jax.jit(_range_program(step, smoothing, diverge_factor))
    out = jax.device_get(program((params, tx.init(params)), lrs, data))
    return _result(lrs, *out, smoothing, time.perf_counter() - start)


def lr_find(
    cfg: config_lib.RunConfig | None = None,
    *,
    min_lr: float = 1e-7,
    max_lr: float = 10.0,
    steps: int = 100,
    smoothing: float = 0.98,
    diverge_factor: float = 4.0,
    dataset: Any = None,
) -> LRFindResult:
    """The range test on a training run: ``cfg``'s model, data, batch order, optimizer
    chain (clipping, weight decay, state dtype) and seed, exactly as ``optlab train``
    would start it, but with the rate growing from ``min_lr`` to ``max_lr`` over ``steps``
    updates (the config's learning rate and schedule are ignored). See `lr_range_test`
    for the rule behind ``suggestion``.

    Args:
      cfg: the run (default: the digits MLP with Adam).
      min_lr, max_lr, steps, smoothing, diverge_factor: as in `lr_range_test`.
      dataset: your own ``optlab.data.Dataset`` instead of ``cfg.data.dataset``.

    Returns:
      An `LRFindResult`.
    """
    from optlab.lab._sweep_grid import batch_order, init_variables
    from optlab.train.setup import INITIAL_LOSS_SCALE, build_setup
    from optlab.train.state import create_state
    from optlab.train.step import make_train_step

    _check(min_lr, max_lr, steps, smoothing, diverge_factor)
    cfg = copy.deepcopy(cfg or config_lib.RunConfig())
    ocfg = cfg.optimizer
    ocfg.schedule, ocfg.schedule_args, ocfg.learning_rate = "constant", {}, float(min_lr)
    cfg.train.steps, cfg.train.epochs = steps, None
    if cfg.train.mesh or cfg.train.parallel != "jit":
        raise config_lib.ConfigError(
            "lr-find runs on one device: drop train.mesh and train.parallel"
        )
    setup = build_setup(cfg, dataset=dataset)
    cfg = setup.cfg  # with the recipe of its dataset and model
    ocfg, ds, tc = cfg.optimizer, setup.dataset, cfg.train
    tx = sweep_tx.injected_optimizer(ocfg, steps, ("learning_rate",))(learning_rate=min_lr)
    variables = init_variables(setup.model, tc.seed, ds.input_shape)
    params = variables.pop("params")
    scale = INITIAL_LOSS_SCALE if tc.precision == "fp16" else 1.0
    state = create_state(params, tx.init(params), tc.seed, variables, loss_scale=scale)
    index, mask = batch_order(np.arange(len(ds.x_train)), tc.seed, cfg, steps)
    if tc.accumulate > 1:
        index, mask = (a.reshape(steps, tc.accumulate, -1) for a in (index, mask))
    # the trainer's step; the rate is injected each step, and divergence is what the test
    # looks for: a non-finite step is skipped, never a reason to stop
    spec = dataclasses.replace(
        setup.spec, learning_rate_fn=lambda _: jnp.zeros([]), nonfinite="skip"
    )
    step_fn = make_train_step(setup.apply_fn, tx, spec)

    def step(state, lr, t, data, index, mask):
        opt_state = sweep_tx.set_hyperparams(state.opt_state, {"learning_rate": lr})
        i = index[t]
        batch = {"x": data["x"][i], "y": data["y"][i], "mask": mask[t]}
        state, metrics = step_fn(state._replace(opt_state=opt_state), batch)
        return state, metrics["loss"]

    lrs = _rates(min_lr, max_lr, steps)
    data = {"x": ds.x_train, "y": ds.y_train}
    start = time.perf_counter()
    program = jax.jit(_range_program(step, smoothing, diverge_factor))
    out = jax.device_get(program(state, lrs, data, index, mask))
    return _result(lrs, *out, smoothing, time.perf_counter() - start)


def plot_lr_find(result: LRFindResult, path: str | os.PathLike | None = None):
    """The range test's loss against the rate (log-x): raw losses, the smoothed curve, the
    suggestion (dashed) and the minimum of the smoothed loss marked. Returns the
    ``matplotlib.figure.Figure`` (Agg canvas, no pyplot); saves a PNG when ``path`` is
    given."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not isinstance(result, LRFindResult):
        raise ValueError(
            f"plot_lr_find: `result` must be an LRFindResult, got {type(result).__name__}"
        )
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    lrs, smooth = result.learning_rates, result.smoothed_losses
    ax.plot(lrs, result.losses, color="0.7", lw=0.8, label="loss")
    ax.plot(lrs, smooth, color="C0", lw=2, label="smoothed")
    m = int(np.argmin(np.where(np.isfinite(smooth), smooth, np.inf)))
    ax.plot([lrs[m]], [smooth[m]], "o", color="C1", label=f"minimum at {lrs[m]:.3g}")
    ax.axvline(result.suggestion, color="C3", ls="--", label=f"suggestion {result.suggestion:.3g}")
    seen = np.concatenate([result.losses[: m + 1], smooth[: m + 1]])
    seen = seen[np.isfinite(seen)]
    if seen.size:  # the part up to the minimum fills the plot; the divergence leaves it
        low, high = float(seen.min()), float(seen.max())
        pad = 0.05 * max(high - low, 1e-12)
        ax.set_ylim(low - pad, high + 3 * pad)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate α")
    ax.set_ylabel("training loss")
    ax.set_title("learning-rate range test" + (" (stopped: diverged)" if result.diverged else ""))
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig
