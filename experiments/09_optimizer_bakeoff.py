"""Optimizer bake-off: every optimizer of optlab on the MNIST-1D CNN, each at its best rate.

Question: with the learning rate tuned for each and everything else at its defaults, which
of optlab's optimizers reaches the lowest validation loss on the MNIST-1D CNN in a fixed
budget of steps, which gets to a common target first (in steps and in seconds), and which
are indistinguishable from the winner over seeds?

What it does, for every name in ``optlab.OPTIMIZERS`` (the registry, in its order; none is
left out: one that cannot run in this setting gets a table row that says why):

1. Calibrate: one short run through the trainer (``build_setup``'s compiled step) times
   the compilation and the step; the chosen budget and its estimated time are printed
   before anything long starts (and a warning with the steps that would fit, if over).
2. Tune: ``optlab.lab.sweep`` trains the CNN at every rate of ONE log grid shared by all
   optimizers (not centred per optimizer) in one vmapped program, seed 0; the rate with
   the lowest final validation loss wins (a diverged run never does). The default grid,
   1e-4 … 10 in steps of about half a decade (1, 3, 10, …), spans the usual rates of SGD
   (0.1–1), of the Adam family (1e-4–1e-2), of the sign methods (Lion: 1e-4–1e-3), of
   ADADELTA and Prodigy (multipliers, 1 = the paper) and of LARS (whose trust coefficient
   0.001 scales the step down, so γ of 1–10). A best rate at either end of the grid is
   flagged in the table: the grid may be too narrow for that optimizer. When the sweep
   cannot run an optimizer, the grid runs one rate at a time through the trainer instead
   (marked ``loop`` with the sweep's error in ``tuning.csv``).
3. Re-run: the tuned rate with seeds 1 … S (fresh seeds, not the tuning seed, so the
   winner is not favoured by the draw it was picked on), each for the same number of
   steps; each seed changes the initial weights and the batch order (the data split is
   seed 0's throughout). The validation loss (400 held-out signals of the paper's 4000) is
   measured every ``--eval-every`` steps; the clock counts training steps only (compiled
   before it starts; evaluations paused out). Schedule-free optimizers are evaluated at
   their averaged point x (``optlab.optimizers.schedule_free_eval_params``), as their
   paper prescribes; the sweep scores them at the trainer's params y = (1 − β)z + βx,
   which lie near x.
4. Summarize: final and best (lowest over the measured points) validation loss, mean ±
   sample standard deviation over the seeds; the TARGET is the median over the optimizers
   of their mean final validation loss (so about half of them reach it), and steps /
   seconds to the target are the first measured point at or below it (mean over the seeds,
   given only when every seed gets there).

Verdicts (computed from the table): the lowest mean final validation loss; the optimizers
indistinguishable from that winner — mean final loss within 2 standard deviations of the
difference, m_i − m_w ≤ 2·√(s_i² + s_w²) with s the seeds' sample std; the fewest steps
and the fewest seconds to the target; and the claim that Adam (the MNIST-1D recipe's
optimizer) is among the indistinguishable (SUPPORTED / NOT SUPPORTED).

Workloads: ``WORKLOADS`` holds one, ``mnist1d_cnn`` (the recipe's CNN: 3 convolutions of
25 channels, batch 100, He init, softmax cross-entropy). A workload is a data set, a model
and a batch size; the bake-off itself never looks inside it.

TODO(tiny GPT): the issue's second workload, a tiny GPT language model, is added when the
LM issue lands (optlab has no GPT model or text data set yet): one more ``Workload`` entry
in ``WORKLOADS`` (its data set, model and options), run with ``--workload tiny_gpt``.

Command::

    .venv/bin/python experiments/09_optimizer_bakeoff.py            # the default budget
    .venv/bin/python experiments/09_optimizer_bakeoff.py --quick    # a smoke test
    .venv/bin/python experiments/09_optimizer_bakeoff.py --full     # larger grid, longer
    # or choose: --grid 1e-3,1e-2 --seeds 2 --steps 500 --optimizers sgd,adam

Budgets (grid points × steps, seeds): default 11 rates (1e-4 … 10) × 1000 steps (28
epochs of the 3600 training signals), 3 seeds, validation every 50 steps; ``--full``:
15 rates (1e-5 … 100) × 6000 steps (the recipe's length), 5 seeds, every 100 steps;
``--quick``: a tiny CNN on 500 signals, 3 optimizers, 2 rates × 8 steps, 2 seeds.

Run time: the default budget is sized for 60 minutes on the 2-core CPU here, from the
calibration of every optimizer (measured on the loaded machine: 5–10 s to compile each of
the 5 programs an optimizer needs, which is a third of the time or more; 1.5–4 ms a step
for all but Shampoo, 20–60 ms, and SOAP, 5–30 ms); the estimate is printed before the run
starts. Measured (loaded shared machine, nice 19, load average about 5): ``--grid
1e-4,1e-3,1e-2,1e-1,1,10 --seeds 2 --steps 200 --eval-every 20`` took 26 min for the 30
optimizers (estimated 14 min; Shampoo and SOAP, swept one rate at a time, 4 min each).
``--quick``: about 40 s. The seconds to the target are wall-clock on the machine that
ran it (noisy on a shared machine; compare them within one run).

Result of that reduced run (200 steps, 2 seeds: short and noisy): Yogi lowest (0.414 ±
0.126), then ADADELTA (at the grid's top, α = 10), Nesterov, RAdam, Prodigy, Shampoo;
20 optimizers within 2 std of Yogi, Adam among them (0.554 ± 0.112); RAdam and Shampoo
fewest steps to the target 0.573 (130), RAdam fewest seconds; SGD, LARS, Adafactor, Adan
and Rprop (a full-batch method) far behind at this length.

Writes into ``experiments/out/09_optimizer_bakeoff`` (or ``--out``): ``table.md`` (the
table, the target's definition, the verdicts and the budget), ``results.csv`` (one row
per optimizer), ``tuning.csv`` (every rate of every optimizer), ``curves.csv`` (every
measured point of every re-run), ``val_loss_vs_steps.png``, ``val_loss_vs_seconds.png``
and ``tuning.png`` (final validation loss against the rate).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, NamedTuple

import _common
import jax
import numpy as np

import optlab
from optlab import config as config_lib
from optlab.config import RunConfig
from optlab.data import load_dataset
from optlab.lab import sweep
from optlab.models import matrix_axes
from optlab.optimizers import schedule_free_eval_params
from optlab.train import evaluate
from optlab.train.setup import build_setup

DATA_SEED = 0  # the train / validation split (and the test split's generator) of every run
TUNE_SEED = 0  # the seed the grid is swept with; the re-runs use seeds 1 … S
CALIBRATION_STEPS = 20
REFERENCE = "adam"  # the recipe's optimizer: the claim is about it
TIE_SIGMAS = 2.0  # "indistinguishable": within this many std of the difference


def log_grid(lo_exp: int, hi_exp: int) -> tuple[float, ...]:
    """1, 3, 10, 30, … from 10^lo_exp to 10^hi_exp: steps of about half a decade (×3, ×3.3).

    Example:
      >>> log_grid(-2, 0)
      (0.01, 0.03, 0.1, 0.3, 1.0)
    """
    values = []
    for e in range(lo_exp, hi_exp + 1):
        values.append(float(f"{10.0**e:g}"))
        if e < hi_exp:
            values.append(float(f"{3 * 10.0**e:g}"))
    return tuple(values)


class Budget(NamedTuple):
    """What one bake-off runs: the shared grid, the seeds, the steps of every run."""

    grid: tuple[float, ...]
    seeds: int
    steps: int
    eval_every: int

    def describe(self) -> str:
        lo, hi = min(self.grid), max(self.grid)
        return (
            f"{len(self.grid)} rates ({lo:g} … {hi:g}, the same for every optimizer) × "
            f"{self.steps} steps to tune, then {self.seeds} seeds × {self.steps} steps at the "
            f"best rate; validation loss every {self.eval_every} steps"
        )


BUDGETS = {
    "default": Budget(grid=log_grid(-4, 1), seeds=3, steps=1000, eval_every=50),
    "full": Budget(grid=log_grid(-5, 2), seeds=5, steps=6000, eval_every=100),
    "quick": Budget(grid=(1e-3, 1e-2), seeds=2, steps=8, eval_every=4),
}
# On the CPU, a sweep that vmaps these over several rates hangs for good: jaxlib's batched
# symmetric eigendecomposition (lapack_ssyevd_ffi run by jax::ParallelBatchMap) waits on
# its thread pool forever (seen here: jax 0.10.2, 2-core CPU). Their grid goes through the
# sweep one rate at a time ("sweep1" in the table), the same program with a 1-run axis.
_EIGH_HANG = "vmapped over several rates the sweep deadlocks in jaxlib's batched CPU eigh"
ONE_RATE_AT_A_TIME = {"shampoo": _EIGH_HANG, "soap": _EIGH_HANG}
QUICK_OPTIMIZERS = ("sgd", "adam", "schedule_free_sgd")  # plain, adaptive, evaluated at x


# --- workloads -------------------------------------------------------------------------------


class Workload(NamedTuple):
    """A model and a data set every optimizer is run on: the bake-off only asks it for the
    data (``load``) and for a run config (``config``)."""

    name: str
    title: str
    dataset: str
    model: str
    batch_size: int
    model_options: Mapping[str, Any]
    data_options: Mapping[str, Any] = MappingProxyType({})
    # --quick: a smaller model and data set, for the smoke test
    quick_model_options: Mapping[str, Any] = MappingProxyType({})
    quick_data_options: Mapping[str, Any] = MappingProxyType({})

    def load(self, quick: bool) -> Any:
        options = {**self.data_options, **(self.quick_data_options if quick else {})}
        return load_dataset(self.dataset, seed=DATA_SEED, **options)

    def config(
        self, optimizer: str, learning_rate: float, steps: int, seed: int, quick: bool
    ) -> RunConfig:
        cfg = RunConfig(out="")
        cfg.data.dataset, cfg.model.model = self.dataset, self.model
        cfg.data.batch_size = self.batch_size
        cfg.data.val_fraction = self.data_options.get("val_fraction", 0.1)
        cfg.model.options = dict(self.quick_model_options if quick else self.model_options)
        cfg.optimizer.optimizer, cfg.optimizer.learning_rate = optimizer, float(learning_rate)
        cfg.train.steps, cfg.train.epochs, cfg.train.seed = steps, None, seed
        return cfg


WORKLOADS: dict[str, Workload] = {
    "mnist1d_cnn": Workload(
        name="mnist1d_cnn",
        title="MNIST-1D CNN (3 × conv 25, k5, s2)",
        dataset="mnist1d",
        model="cnn",
        batch_size=100,
        model_options={"channels": [25, 25, 25]},
        data_options={"val_fraction": 0.1},  # 400 of the paper's 4000 training signals
        quick_model_options={"channels": [4, 4, 4]},
        quick_data_options={"num_samples": 500, "val_fraction": 0.25},
    ),
    # TODO(tiny GPT): "tiny_gpt": Workload(...) when the LM issue lands (see the docstring).
}


# --- one run through the trainer -------------------------------------------------------------


class Unrunnable(Exception):
    """An optimizer that cannot run in this setting; the message says why."""


def _short(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return f"{type(err).__name__}: {text[:240]}"


def _with_matrices(cfg: RunConfig, dataset: Any) -> RunConfig:
    """Muon-like optimizers (those taking ``muon_weight_dimension_numbers``) get the model's
    matrix axes explicitly, so the sweep (which builds the optimizer itself) and the
    trainer assign the same parameters to the matrix update."""
    factory = config_lib.resolve_optimizer(cfg.optimizer.optimizer)
    try:
        import inspect

        takes = config_lib.MATRIX_ARGUMENT in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        takes = False
    if not takes or config_lib.MATRIX_ARGUMENT in cfg.optimizer.args:
        return cfg
    probe = RunConfig(out="")
    probe.data, probe.model = cfg.data, cfg.model  # the model alone: adam needs no matrices
    setup = build_setup(probe, dataset=dataset)
    axes = matrix_axes(setup.model, setup.params_template)
    if axes is not None:
        cfg.optimizer.args[config_lib.MATRIX_ARGUMENT] = config_lib.matrix_dimension_numbers(axes)
    return cfg


def _evaluation_view(state: Any) -> Callable[[Any], Any]:
    """The state to evaluate: a schedule-free optimizer's at its averaged point x."""
    try:
        schedule_free_eval_params(state.opt_state, state.params)
    except ValueError:
        return lambda s: s
    return lambda s: s._replace(params=schedule_free_eval_params(s.opt_state, s.params))


def _warm_up(setup: Any) -> float:
    """Compiles the training step on a throwaway state (the batch order is rewound): the
    compilation's seconds, kept off the run's clock. Two steps: for some optimizers (Shampoo,
    SOAP) the state after the first update has other types than the initial state (weak
    types, say), which compiles the step a second time."""
    start = time.perf_counter()
    position = setup.train_iter.state()
    batch = jax.device_put(setup.next_batch(), setup.batch_sharding)
    state, _ = setup.train_step(setup.init_state(), batch)
    jax.block_until_ready(setup.train_step(state, batch))
    setup.train_iter.restore(position)
    return time.perf_counter() - start


def train_run(
    workload: Workload,
    name: str,
    rate: float,
    budget: Budget,
    seed: int,
    dataset: Any,
    quick: bool,
    *,
    every: int | None = None,
) -> dict:
    """One run through the trainer: its validation-loss curve ``[(step, seconds, loss)]``
    (step 0 first; seconds of training steps only), and ``diverged_at`` (the step of the
    first non-finite loss or gradient, which stops the run) or None."""
    cfg = _with_matrices(workload.config(name, rate, budget.steps, seed, quick), dataset)
    setup = build_setup(cfg, dataset=dataset)
    compile_seconds = _warm_up(setup)
    start = setup.init_state()
    view = _evaluation_view(start)
    curve = [(0, 0.0, float(evaluate(setup, view(start), "val")["val_loss"]))]
    clock, diverged_at = 0.0, None
    mark = time.perf_counter()
    chunks = _common.train_in_chunks(setup, start, every=every or budget.eval_every)
    for step, state, _ in chunks:
        clock += time.perf_counter() - mark  # the chunk's metrics were fetched: steps done
        bad = int(jax.device_get(state.first_nonfinite)[0])
        if bad >= 0:
            diverged_at = bad
            curve.append((step, clock, math.nan))
            break
        curve.append((step, clock, float(evaluate(setup, view(state), "val")["val_loss"])))
        mark = time.perf_counter()
    return {
        "curve": curve,
        "diverged_at": diverged_at,
        "train_seconds": clock,
        "compile_seconds": compile_seconds,
    }


def calibrate(workload: Workload, name: str, dataset: Any, quick: bool, steps: int) -> dict:
    """Compilation seconds and seconds per step of one short run (at rate 1e-3)."""
    cfg = _with_matrices(workload.config(name, 1e-3, steps, TUNE_SEED, quick), dataset)
    setup = build_setup(cfg, dataset=dataset)
    compile_seconds = _warm_up(setup)
    state = setup.init_state()
    start = time.perf_counter()
    for _ in range(steps):
        state, _ = setup.train_step(state, jax.device_put(setup.next_batch(), setup.batch_sharding))
    jax.block_until_ready(state)
    return {
        "compile_seconds": compile_seconds,
        "step_seconds": (time.perf_counter() - start) / steps,
    }


def estimate_seconds(calibration: Mapping[str, dict], budget: Budget) -> float:
    """The run's time from the calibration: per optimizer, the sweep (one compilation, the
    grid's runs at about one run's step cost each) and the seeds' runs (one compilation
    each). Evaluations are not counted (a few percent)."""
    total = 0.0
    for c in calibration.values():
        if "step_seconds" not in c:
            continue
        runs = len(budget.grid) + budget.seeds
        total += (1 + budget.seeds) * c["compile_seconds"] + runs * budget.steps * c["step_seconds"]
    return total


# --- tune, re-run, summarize -----------------------------------------------------------------


def tune(
    workload: Workload, name: str, budget: Budget, dataset: Any, quick: bool
) -> tuple[float, list[dict]]:
    """The best rate of the grid (lowest final validation loss) and one row per rate:
    ``optlab.lab.sweep`` (the grid in one vmapped program) or, when the sweep cannot run
    this optimizer, the trainer one rate at a time."""
    rows: list[dict] = []
    cfg = _with_matrices(
        workload.config(name, budget.grid[0], budget.steps, TUNE_SEED, quick), dataset
    )
    serial = name in ONE_RATE_AT_A_TIME and jax.default_backend() == "cpu"
    grids = [[rate] for rate in budget.grid] if serial else [list(budget.grid)]
    how, note = ("sweep1", ONE_RATE_AT_A_TIME[name]) if serial else ("sweep", "")
    try:
        for grid in grids:
            result = sweep(cfg, {"learning_rate": grid}, dataset=dataset)
            for r in result.table:
                rows.append(
                    {
                        "optimizer": name,
                        "learning_rate": r["learning_rate"],
                        "val_loss": r["val_loss"],
                        "diverged": bool(r["diverged"]),
                        "tuned_by": how,
                        "note": note,
                    }
                )
    except Exception as err:  # recorded, then the hand loop
        note = f"sweep failed ({_short(err)}); tuned one rate at a time"
        for rate in budget.grid:
            try:
                run = train_run(
                    workload, name, rate, budget, TUNE_SEED, dataset, quick, every=budget.steps
                )
                loss, diverged = run["curve"][-1][2], run["diverged_at"] is not None
            except Exception as run_err:
                raise Unrunnable(f"{note}; the trainer failed too: {_short(run_err)}") from run_err
            rows.append(
                {
                    "optimizer": name,
                    "learning_rate": rate,
                    "val_loss": loss,
                    "diverged": diverged,
                    "tuned_by": "loop",
                    "note": note,
                }
            )
    finite = [r for r in rows if not r["diverged"] and math.isfinite(r["val_loss"])]
    if not finite:
        raise Unrunnable("every rate of the grid diverged")
    return min(finite, key=lambda r: r["val_loss"])["learning_rate"], rows


def reach(curve: Sequence[tuple[int, float, float]], target: float) -> tuple[int, float] | None:
    """(step, seconds) of the first measured point at or below ``target``, or None."""
    for step, seconds, loss in curve:
        if loss <= target:
            return step, seconds
    return None


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    v = np.asarray(values, np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def summarize(
    name: str, rate: float, tuned_by: str, runs: Sequence[dict], grid: Sequence[float]
) -> dict:
    """One table row from an optimizer's re-runs (steps and seconds to the target are
    filled in by ``with_target`` once every optimizer has run)."""
    finals = [r["curve"][-1][2] for r in runs]
    bests = [min(p[2] for p in r["curve"]) for r in runs]
    diverged = [
        (s, r["diverged_at"]) for s, r in enumerate(runs, 1) if r["diverged_at"] is not None
    ]
    row = {
        "optimizer": name,
        "status": "diverged" if diverged else "ok",
        "reason": "; ".join(
            f"seed {s} diverged at step {k} at the tuned rate" for s, k in diverged
        ),
        "learning_rate": rate,
        "at_grid_edge": rate in (min(grid), max(grid)),
        "tuned_by": tuned_by,
        "seeds": len(runs),
        "final_mean": math.nan,
        "final_std": math.nan,
        "best_mean": math.nan,
        "best_std": math.nan,
        "step_ms": 1000 * float(np.mean([r["train_seconds"] / r["curve"][-1][0] for r in runs])),
    }
    if not diverged:
        row["final_mean"], row["final_std"] = _mean_std(finals)
        row["best_mean"], row["best_std"] = _mean_std(bests)
    return row


def failed_row(name: str, reason: str) -> dict:
    return {"optimizer": name, "status": "failed", "reason": reason, "seeds": 0}


def target_loss(rows: Sequence[dict]) -> float:
    """The median over the optimizers that ran of their mean final validation loss."""
    finals = [r["final_mean"] for r in rows if r["status"] == "ok"]
    if not finals:
        raise ValueError("target_loss: no optimizer ran to the end")
    return float(np.median(finals))


def with_target(row: dict, runs: Sequence[dict], target: float) -> dict:
    """``row`` with the steps and seconds to ``target`` (means over the seeds, None unless
    every seed reaches it) and how many seeds reached it."""
    hits = [reach(r["curve"], target) for r in runs]
    got = [h for h in hits if h is not None]
    row = dict(row, reached=len(got))
    complete = bool(runs) and len(got) == len(runs)
    row["steps_to_target"] = float(np.mean([h[0] for h in got])) if complete else None
    row["seconds_to_target"] = float(np.mean([h[1] for h in got])) if complete else None
    return row


def indistinguishable(row: dict, best: dict, sigmas: float = TIE_SIGMAS) -> bool:
    """Mean final loss within ``sigmas`` standard deviations of the difference of one run
    of each: m − m_best ≤ sigmas·√(s² + s_best²)."""
    spread = math.hypot(row["final_std"], best["final_std"])
    return row["final_mean"] - best["final_mean"] <= sigmas * spread


def verdicts(rows: Sequence[dict], reference: str = REFERENCE) -> dict:
    """The verdicts, from the table's numbers alone: ``winner`` (lowest mean final
    validation loss), ``ties`` (indistinguishable from it, the winner excluded),
    ``fastest_steps`` / ``fastest_seconds`` (fewest mean steps / seconds to the target,
    among the optimizers every seed of which reached it; None if none did),
    ``reference_ties`` (whether ``reference`` is the winner or one of the ties) and
    ``lines``, the printed sentences."""
    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        raise ValueError("verdicts: no optimizer ran to the end")
    best = min(ok, key=lambda r: r["final_mean"])
    ties = [
        r["optimizer"]
        for r in sorted(ok, key=lambda r: r["final_mean"])
        if r is not best and indistinguishable(r, best)
    ]
    complete = [r for r in ok if r.get("steps_to_target") is not None]
    fast_steps = min(complete, key=lambda r: r["steps_to_target"]) if complete else None
    fast_seconds = min(complete, key=lambda r: r["seconds_to_target"]) if complete else None

    def stat(r: dict) -> str:
        return f"{r['final_mean']:.4f} ± {r['final_std']:.4f}, α = {r['learning_rate']:g}"

    lines = [
        f"VERDICT: lowest mean final validation loss: {best['optimizer']} ({stat(best)}, "
        f"{best['seeds']} seeds)",
        f"VERDICT: indistinguishable from {best['optimizer']} (mean within {TIE_SIGMAS:g} std "
        f"of the difference): " + (", ".join(ties) if ties else "none"),
    ]
    for label, r, key, unit in (
        ("fewest steps", fast_steps, "steps_to_target", "steps"),
        ("fewest seconds", fast_seconds, "seconds_to_target", "s"),
    ):
        if r is None:
            lines.append(
                f"VERDICT: {label} to the target: none (no optimizer got there on every seed)"
            )
        else:
            level = [x["optimizer"] for x in complete if x[key] == r[key] and x is not r]
            tied = f", tied with {', '.join(level)}" if level else ""
            lines.append(
                f"VERDICT: {label} to the target: {r['optimizer']} ({r[key]:.4g} {unit}{tied})"
            )
    for line in lines:
        print(line)
    by_name = {r["optimizer"]: r for r in ok}
    holds = reference == best["optimizer"] or reference in ties
    evidence = (
        f"{reference} {stat(by_name[reference])}; winner {best['optimizer']} {stat(best)}"
        if reference in by_name
        else f"{reference} did not run to the end"
    )
    lines.append(
        _common.verdict(
            f"{reference}, the MNIST-1D recipe's optimizer, is indistinguishable from the "
            "bake-off's winner on final validation loss",
            holds,
            evidence,
        )
    )
    return {
        "winner": best["optimizer"],
        "ties": ties,
        "fastest_steps": fast_steps["optimizer"] if fast_steps else None,
        "fastest_seconds": fast_seconds["optimizer"] if fast_seconds else None,
        "reference_ties": holds,
        "lines": lines,
    }


# --- the table and the plots -----------------------------------------------------------------

TABLE_HEADER = (
    "| rank | optimizer | tuned α | final val loss | best val loss | steps to target "
    "| seconds to target | ms/step | note |"
)


def _pm(mean: float, std: float) -> str:
    return f"{mean:.4f} ± {std:.4f}"


def markdown_table(rows: Sequence[dict], target: float) -> str:
    """One line per optimizer: those that ran, by mean final validation loss, then the
    rest with the reason."""
    ok = sorted((r for r in rows if r["status"] == "ok"), key=lambda r: r["final_mean"])
    rest = [r for r in rows if r["status"] != "ok"]
    lines = [TABLE_HEADER, "|" + "---|" * 9]
    for rank, r in enumerate(ok, 1):
        notes = []
        if r.get("at_grid_edge"):
            notes.append("α at the grid's edge")
        if r.get("tuned_by") == "loop":
            notes.append("tuned one rate at a time (sweep failed)")
        if r.get("tuned_by") == "sweep1":
            notes.append("swept one rate at a time (batched CPU eigh hangs)")
        if r.get("steps_to_target") is None:
            notes.append(f"target reached by {r.get('reached', 0)}/{r['seeds']} seeds")
        steps = "—" if r.get("steps_to_target") is None else f"{r['steps_to_target']:.0f}"
        seconds = "—" if r.get("seconds_to_target") is None else f"{r['seconds_to_target']:.2f}"
        lines.append(
            f"| {rank} | {r['optimizer']} | {r['learning_rate']:g} | "
            f"{_pm(r['final_mean'], r['final_std'])} | {_pm(r['best_mean'], r['best_std'])} | "
            f"{steps} | {seconds} | {r['step_ms']:.2f} | {'; '.join(notes)} |"
        )
    for r in rest:
        rate = f"{r['learning_rate']:g}" if "learning_rate" in r else "—"
        lines.append(
            f"| — | {r['optimizer']} | {rate} | — | — | — | — | — | {r['status']}: {r['reason']} |"
        )
    lines.append("")
    lines.append(
        f"Target validation loss {target:.4f}: the median over the optimizers that ran of "
        "their mean final validation loss. Mean ± sample std over the seeds; steps and "
        "seconds to the target are means over the seeds (— unless every seed got there); "
        "seconds count training steps only (no compilation, no evaluation)."
    )
    return "\n".join(lines)


def _styles(n: int) -> list[tuple[Any, str]]:
    from matplotlib import colormaps

    colors = colormaps["tab10"].colors
    dashes = ("-", "--", ":", "-.")
    return [(colors[i % 10], dashes[(i // 10) % 4]) for i in range(n)]


def _plot_curves(curves: Mapping[str, list[dict]], target: float, x: str, path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 5.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for (name, runs), (color, dash) in zip(curves.items(), _styles(len(curves)), strict=True):
        steps = np.asarray([p[0] for p in runs[0]["curve"]], float)
        n = min(len(r["curve"]) for r in runs)
        loss = np.mean([[p[2] for p in r["curve"][:n]] for r in runs], axis=0)
        seconds = np.mean([[p[1] for p in r["curve"][:n]] for r in runs], axis=0)
        xs = steps[:n] if x == "steps" else seconds
        ax.plot(xs, loss, dash, color=color, lw=1.2, label=name)
    ax.axhline(target, color="k", lw=0.8, ls=":", label=f"target {target:.3f}")
    ax.set_yscale("log")
    ax.set_xlabel("training step" if x == "steps" else "training seconds (no compile, no eval)")
    ax.set_ylabel("validation loss (mean over seeds)")
    ax.set_title(f"each optimizer at its tuned rate, vs {x}", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=1, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.savefig(path, dpi=100)


def _plot_tuning(tuning: Sequence[dict], path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(dict.fromkeys(r["optimizer"] for r in tuning))
    fig = Figure(figsize=(10, 5.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, (color, dash) in zip(names, _styles(len(names)), strict=True):
        rows = [r for r in tuning if r["optimizer"] == name]
        loss = [math.nan if r["diverged"] else r["val_loss"] for r in rows]
        ax.plot([r["learning_rate"] for r in rows], loss, dash, color=color, marker=".", label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("learning rate (the shared grid)")
    ax.set_ylabel("final validation loss (tuning seed; diverged: not drawn)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.savefig(path, dpi=100)


# --- main ------------------------------------------------------------------------------------


def _numbers(p, flag: str, raw: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in raw.split(",") if v.strip())
    except ValueError:
        p.error(f"{flag}: expected numbers separated by commas, got {raw!r}")
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        p.error(f"{flag}: expected positive finite numbers, got {raw!r}")
    return tuple(sorted(set(values)))


def parse(argv: Sequence[str] | None):
    p = _common.parser(__doc__, "09_optimizer_bakeoff")
    p.add_argument("--full", action="store_true", help="larger grid, 5 seeds, 6000 steps")
    p.add_argument("--workload", default="mnist1d_cnn", choices=sorted(WORKLOADS))
    p.add_argument("--optimizers", help="comma list (default: every registered optimizer)")
    p.add_argument("--grid", help="comma list of learning rates (replaces the budget's)")
    p.add_argument("--seeds", type=int, help="re-runs at the tuned rate (seeds 1 … N)")
    p.add_argument("--steps", type=int, help="steps of every run")
    p.add_argument("--eval-every", type=int, help="steps between validation measurements")
    p.add_argument("--budget-minutes", type=float, default=60.0, help="warn above this (60)")
    args = p.parse_args(argv)
    if args.quick and args.full:
        p.error("--quick and --full exclude each other")
    budget = BUDGETS["quick" if args.quick else "full" if args.full else "default"]
    if args.grid is not None:
        budget = budget._replace(grid=_numbers(p, "--grid", args.grid))
    for flag in ("seeds", "steps", "eval_every"):
        if getattr(args, flag) is not None:
            _common.check_positive(p, args, "--" + flag.replace("_", "-"))
            budget = budget._replace(**{flag: getattr(args, flag)})
    if args.optimizers is None:
        names = QUICK_OPTIMIZERS if args.quick else tuple(optlab.OPTIMIZERS)
    else:
        names = tuple(n.strip() for n in args.optimizers.split(",") if n.strip())
        unknown = [n for n in names if n not in optlab.OPTIMIZERS]
        if unknown or not names:
            p.error(f"--optimizers: unknown {unknown}; choose from {', '.join(optlab.OPTIMIZERS)}")
    return args, budget, names


def main(argv: Sequence[str] | None = None) -> dict:
    args, budget, names = parse(argv)
    workload = WORKLOADS[args.workload]
    out = _common.out_dir(args.out)
    started = time.perf_counter()
    dataset = workload.load(args.quick)
    print(
        f"workload: {workload.title}; {len(dataset.x_train)} training, {len(dataset.x_val)} "
        f"validation examples; {len(names)} optimizers"
    )
    print(f"budget: {budget.describe()}")

    # 1. calibrate: one short run each (and whether it can run here at all)
    steps = 2 if args.quick else CALIBRATION_STEPS
    calibration: dict[str, dict] = {}
    for name in names:
        try:
            calibration[name] = calibrate(workload, name, dataset, args.quick, steps)
        except Exception as err:
            calibration[name] = {"error": _short(err)}
        c = calibration[name]
        shown = (
            f"compile {c['compile_seconds']:.1f} s, {1000 * c['step_seconds']:.2f} ms/step"
            if "error" not in c
            else f"cannot run: {c['error']}"
        )
        print(f"  calibrate {name}: {shown}")
    estimate = estimate_seconds(calibration, budget)
    print(
        f"estimated time: {estimate / 60:.1f} min for the budget above "
        f"(calibration took {time.perf_counter() - started:.0f} s)"
    )
    limit = 60 * args.budget_minutes
    per_step = sum(
        (len(budget.grid) + budget.seeds) * c["step_seconds"]
        for c in calibration.values()
        if "step_seconds" in c
    )
    if estimate > limit and per_step > 0:
        fit = int((limit - (estimate - budget.steps * per_step)) / per_step)
        print(
            f"WARNING: over --budget-minutes {args.budget_minutes:g}; --steps "
            f"{max(fit, 0)} would fit"
        )

    # 2.–3. tune and re-run, optimizer by optimizer
    rows, tuning, runs_of = [], [], {}
    for name in names:
        t0 = time.perf_counter()
        if "error" in calibration[name]:
            rows.append(failed_row(name, f"cannot run here: {calibration[name]['error']}"))
            print(f"{name}: cannot run here ({calibration[name]['error']})")
            continue
        try:
            rate, tried = tune(workload, name, budget, dataset, args.quick)
            tuning += tried
            runs = [
                train_run(workload, name, rate, budget, seed, dataset, args.quick)
                for seed in range(1, budget.seeds + 1)
            ]
        except Exception as err:
            reason = str(err) if isinstance(err, Unrunnable) else _short(err)
            rows.append(failed_row(name, reason))
            print(f"{name}: failed ({reason})")
            continue
        runs_of[name] = runs
        rows.append(summarize(name, rate, tried[0]["tuned_by"], runs, budget.grid))
        r = rows[-1]
        print(
            f"{name}: α = {rate:g} ({r['tuned_by']}), final val loss "
            f"{_pm(r['final_mean'], r['final_std'])} [{time.perf_counter() - t0:.0f} s]"
        )

    # 4. the target, the table, the verdicts
    target = target_loss(rows)
    rows = [
        with_target(r, runs_of[r["optimizer"]], target) if r["status"] == "ok" else r for r in rows
    ]
    table = markdown_table(rows, target)
    print("\n" + table + "\n")
    decided = verdicts(rows)
    seconds = time.perf_counter() - started
    with open(out / "table.md", "w") as f:
        f.write(f"# Optimizer bake-off: {workload.title}\n\n{table}\n\n")
        f.write("\n".join(f"- {line}" for line in decided["lines"]) + "\n\n")
        f.write(
            f"Budget: {budget.describe()}. Tuning seed {TUNE_SEED}, re-run seeds "
            f"1 … {budget.seeds}, data split seed {DATA_SEED}. Run time {seconds / 60:.1f} "
            f"min (estimated {estimate / 60:.1f}).\n"
        )
    curve_rows = [
        {"optimizer": n, "seed": s, "step": p[0], "seconds": p[1], "val_loss": p[2]}
        for n, runs in runs_of.items()
        for s, r in enumerate(runs, 1)
        for p in r["curve"]
    ]
    files = [
        out / "table.md",
        _common.write_csv(out / "results.csv", rows),
        _common.write_csv(out / "tuning.csv", tuning),
        _common.write_csv(out / "curves.csv", curve_rows),
    ]
    ran = {
        n: runs
        for n, runs in runs_of.items()
        if any(r["optimizer"] == n and r["status"] == "ok" for r in rows)
    }
    for x in ("steps", "seconds"):
        path = out / f"val_loss_vs_{x}.png"
        _plot_curves(ran, target, x, path)
        files.append(path)
    _plot_tuning(tuning, out / "tuning.png")
    files.append(out / "tuning.png")
    print(f"({seconds:.0f} s; files in {out})")
    return {
        "rows": rows,
        "target": target,
        "verdicts": decided,
        "budget": budget._asdict(),
        "estimate_seconds": estimate,
        "calibration": calibration,
        "files": [str(f) for f in files],
        "seconds": seconds,
    }


if __name__ == "__main__":
    main()
