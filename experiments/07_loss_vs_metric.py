"""Loss vs metric, and SGD+momentum vs adaptive methods on held-out accuracy (lecture 03).

Claims:

(a) lecture 03, "Relationship Between Loss and Other Metrics": we optimize a loss, but
    care about a metric such as accuracy, and the two can disagree — "we can have flat
    loss curves but increasing accuracy", since the correct class only has to score
    slightly higher than the others. Late in training the validation loss can even rise
    (over-confident wrong answers cost ever more) while the validation accuracy still
    improves.
(b) lecture 03, "Behavior of Optimizer" (and lecture 04): plain SGD+momentum can
    generalize better than adaptive methods (AdaGrad, RMSProp, Adam) — Wilson et al.
    2017, "The Marginal Value of Adaptive Gradient Methods in Machine Learning".

What it does: MNIST-1D (4000 / 1000, 400 of the 4000 for validation), the paper's CNN
(optlab's default: 3 convolutions of 25 channels), batch 100, 2000 steps, He init, the
same initial weights and batches for every run. SGD with heavy-ball momentum (μ = 0.9), Adam,
RMSProp and AdaGrad, each at two learning rates (lecture 03: always tune; the pairs are the
best two of a coarser grid 1e-2…3e-1, 3e-4…1e-2 searched beforehand, where every
optimizer's best rate lay at an edge until these were added). Training loss and accuracy
are logged every 100 steps, validation loss and accuracy every 100 steps.

(a) From the logged validation curves of every run: all windows of evaluations i < j
    where the accuracy rose (Δaccuracy > 0) while the loss never went below its value at
    i (flat or rising throughout); the run and window with the largest accuracy gain is
    shown. Supported when some window gains at least 2 accuracy points (8 of 400
    validation signals).
(b) Each optimizer at its learning rate with the best final validation accuracy (test data
    untouched by that choice): the test accuracy after equal steps, and the validation
    accuracy at matched training loss (the first evaluation where each run's logged
    training loss is at or below the highest of the runs' lowest training losses).
    Supported when SGD+momentum is ahead of every adaptive method on both.

Command::

    python experiments/07_loss_vs_metric.py          # writes experiments/out/07_loss_vs_metric
    python experiments/07_loss_vs_metric.py --quick  # a smoke test in seconds

Expected result (seed 0): (a) supported — RMSProp (α = 0.01) from step 400 to 1600:
validation accuracy 0.905 → 0.943 while the validation loss rises 0.336 → 0.465 without
ever going below its start (Adam α = 0.01: 0.905 → 0.930, loss 0.306 → 0.430, as its
training loss falls to ~1e-4: over-confident mistakes cost ever more); 21 of 152 logged
intervals over all runs have Δaccuracy > 0 with Δloss ≥ 0. (b) *not* supported in this
setting: test accuracy SGD+momentum 0.916, RMSProp 0.937, Adam 0.927, AdaGrad 0.860; at
matched training loss (≤ 0.03) validation accuracy SGD+momentum 0.890, Adam 0.927 — one
seed, a 2-point gap (21 of 1000 test signals). The verdict reports whichever this run
gives.

Run time: 32 s wall (45 s of CPU time) on the idle 2-core CPU here; ``--quick``: a
few seconds (the smoke test the suite runs).

Writes: ``runs.csv`` (every run: final numbers and its best loss-vs-accuracy window),
``curves.csv`` (the logged curves), ``comparison.csv`` (one row per optimizer),
``loss_vs_metric.png`` and ``sgd_vs_adaptive.png``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import _common
import jax
import numpy as np

from optlab.config import RunConfig
from optlab.data import load_dataset
from optlab.train import evaluate
from optlab.train.setup import build_setup

GRID = {
    "momentum": (0.03, 0.1),
    "adam": (3e-3, 1e-2),
    "rmsprop": (3e-3, 1e-2),
    "adagrad": (3e-2, 1e-1),
}
LABELS = {"momentum": "SGD+momentum", "adam": "Adam", "rmsprop": "RMSProp", "adagrad": "AdaGrad"}
ADAPTIVE = ("adam", "rmsprop", "adagrad")
MIN_GAIN = 0.02  # accuracy points a window must gain to count as evidence for (a)


def fit(setup, start, *, every: int) -> tuple[Any, list[dict]]:
    """optlab's compiled train step over ``setup.total_steps`` batches; every ``every``
    steps the mean training loss and accuracy since the last record, and the validation
    loss and accuracy (``optlab.train.evaluate``)."""
    curve = []
    for step, state, metrics in _common.train_in_chunks(setup, start, every=every):
        loss, acc = np.mean([(m["loss"], m["accuracy"]) for m in metrics], axis=0)
        val = evaluate(setup, state, "val")
        curve.append(
            {
                "step": step,
                "train_loss": float(loss),
                "train_accuracy": float(acc),
                "val_loss": val["val_loss"],
                "val_accuracy": val["val_accuracy"],
            }
        )
    return state, curve


def loss_flat_accuracy_up(curve: list[dict]) -> dict:
    """Windows (i < j) of the validation curve where the accuracy rose while the loss
    never went below its value at i (flat or rising throughout the window).

    Returns the one with the largest accuracy gain (ties: the larger loss rise) and how
    many consecutive evaluation intervals had Δaccuracy > 0 and Δloss ≥ 0.
    """
    loss = np.array([r["val_loss"] for r in curve])
    acc = np.array([r["val_accuracy"] for r in curve])
    best = {"gain": 0.0, "loss_rise": 0.0, "start": None, "end": None}
    for i in range(len(curve)):
        for j in range(i + 1, len(curve)):
            if loss[j] < loss[i]:
                break  # every later window from i has dipped below its start as well
            d_acc, d_loss = acc[j] - acc[i], loss[j] - loss[i]
            if d_acc > 0 and (d_acc, d_loss) > (best["gain"], best["loss_rise"]):
                best = {
                    "gain": float(d_acc),
                    "loss_rise": float(d_loss),
                    "start": curve[i]["step"],
                    "end": curve[j]["step"],
                }
    intervals = int(np.sum((np.diff(acc) > 0) & (np.diff(loss) >= 0)))
    return {**best, "intervals": intervals, "of_intervals": max(len(curve) - 1, 0)}


def train_one(optimizer: str, lr: float, args, dataset, initial: dict) -> dict:
    """One run from the shared initial weights ``initial["params"]`` (drawn by the first
    run's ``init_state``; every later run starts from the same ones)."""
    cfg = RunConfig(out="")
    cfg.data.dataset, cfg.data.batch_size = "mnist1d", args.batch_size
    cfg.model.model = "cnn"
    cfg.model.options = {"channels": [4, 4, 4]} if args.quick else {}
    cfg.optimizer.optimizer, cfg.optimizer.learning_rate = optimizer, lr
    if optimizer == "momentum":
        cfg.optimizer.args = {"mu": 0.9}
    cfg.train.seed, cfg.train.steps = args.seed, args.steps
    setup = build_setup(cfg, dataset=dataset)
    if "params" not in initial:
        state = setup.init_state()
        initial["params"] = jax.device_get(state.params)  # a host copy: the step donates
    else:
        state = _common.fresh_state(setup, cfg, initial["params"])
    state, curve = fit(setup, state, every=args.every)
    return {
        "optimizer": optimizer,
        "learning_rate": lr,
        "curve": curve,
        "test_accuracy": evaluate(setup, state, "test")["test_accuracy"],
        "window": loss_flat_accuracy_up(curve),
    }


def matched_loss(selected: dict[str, dict]) -> tuple[float, dict[str, dict]]:
    """The highest of the runs' lowest logged training losses, and for each run the first
    record at or below it (its step and validation accuracy there)."""
    target = max(min(r["train_loss"] for r in run["curve"]) for run in selected.values())
    at = {}
    for name, run in selected.items():
        first = next(r for r in run["curve"] if r["train_loss"] <= target)
        at[name] = {"step": first["step"], "val_accuracy": first["val_accuracy"]}
    return target, at


def _plot(evidence: dict, selected: dict[str, dict], target: float, out) -> None:
    from matplotlib.figure import Figure

    curve, w = evidence["curve"], evidence["window"]
    steps = [r["step"] for r in curve]
    fig = Figure(figsize=(12, 4))
    left, right = fig.subplots(1, 2)
    for ax, split in ((left, "val"), (right, "train")):
        ax.plot(steps, [r[f"{split}_loss"] for r in curve], color="tab:red", label="loss")
        ax.set(xlabel="step", ylabel=f"{split} loss")
        ax.set_yscale("log" if split == "train" else "linear")
        twin = ax.twinx()
        twin.plot(steps, [r[f"{split}_accuracy"] for r in curve], color="tab:blue")
        twin.set_ylabel(f"{split} accuracy", color="tab:blue")
        ax.set_ylabel(f"{split} loss", color="tab:red")
        if w["start"] is not None:
            ax.axvspan(w["start"], w["end"], color="gold", alpha=0.3)
    name = f"{LABELS[evidence['optimizer']]} α={evidence['learning_rate']:g}"
    left.set_title(
        f"{name}: validation (shaded: accuracy +{100 * w['gain']:.1f} points, loss flat or up)"
    )
    right.set_title(f"{name}: training")
    fig.subplots_adjust(left=0.06, right=0.94, bottom=0.13, top=0.9, wspace=0.4)
    fig.savefig(out / "loss_vs_metric.png", dpi=100)

    fig = Figure(figsize=(12, 4))
    left, right = fig.subplots(1, 2)
    for name, run in selected.items():
        label = f"{LABELS[name]} α={run['learning_rate']:g}"
        c = run["curve"]
        left.plot([r["step"] for r in c], [r["val_accuracy"] for r in c], label=label)
        right.plot([r["train_loss"] for r in c], [r["val_accuracy"] for r in c], label=label)
    left.set(xlabel="step", ylabel="validation accuracy", title="equal steps")
    right.axvline(target, color="gray", linestyle="--")
    right.set(xlabel="training loss", ylabel="validation accuracy", xscale="log")
    right.set_title("at matched training loss (dashed)")
    right.invert_xaxis()
    left.legend()
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.13, top=0.9, wspace=0.2)
    fig.savefig(out / "sgd_vs_adaptive.png", dpi=100)


def main(argv: Sequence[str] | None = None) -> dict:
    p = _common.parser(__doc__, "07_loss_vs_metric")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    args.every, grid, options = 100, GRID, {}
    if args.quick:  # two optimizers, a tenth of the data, a tiny CNN: a smoke test
        # (val_fraction 0.25: validation and test then share one evaluation shape)
        args.steps, args.every, options = 8, 2, {"num_samples": 500, "val_fraction": 0.25}
        grid = {name: GRID[name][-1:] for name in ("momentum", "adam")}
    out = _common.out_dir(args.out)
    dataset = load_dataset("mnist1d", seed=args.seed, **options)

    with _common.Timer() as timer:
        initial: dict = {}
        runs = [
            train_one(name, lr, args, dataset, initial) for name, lrs in grid.items() for lr in lrs
        ]

    # (a) the strongest window of rising accuracy under a flat or rising loss, any run.
    evidence = max(runs, key=lambda r: (r["window"]["gain"], r["window"]["loss_rise"]))
    w = evidence["window"]
    # (b) each optimizer at its best final validation accuracy.
    selected = {}
    for run in runs:
        best = selected.get(run["optimizer"])
        if best is None or run["curve"][-1]["val_accuracy"] > best["curve"][-1]["val_accuracy"]:
            selected[run["optimizer"]] = run
    target, at = matched_loss(selected)

    run_rows = [
        {
            "optimizer": r["optimizer"],
            "learning_rate": r["learning_rate"],
            "selected": selected[r["optimizer"]] is r,
            "final_train_loss": r["curve"][-1]["train_loss"],
            "final_val_loss": r["curve"][-1]["val_loss"],
            "final_val_accuracy": r["curve"][-1]["val_accuracy"],
            "test_accuracy": r["test_accuracy"],
            "window_start": r["window"]["start"],
            "window_end": r["window"]["end"],
            "window_accuracy_gain": r["window"]["gain"],
            "window_loss_rise": r["window"]["loss_rise"],
            "intervals_loss_flat_accuracy_up": r["window"]["intervals"],
            "intervals": r["window"]["of_intervals"],
        }
        for r in runs
    ]
    curve_rows = [
        {"optimizer": r["optimizer"], "learning_rate": r["learning_rate"], **c}
        for r in runs
        for c in r["curve"]
    ]
    comparison = [
        {
            "optimizer": name,
            "label": LABELS[name],
            "learning_rate": run["learning_rate"],
            "steps": run["curve"][-1]["step"],
            "final_train_loss": run["curve"][-1]["train_loss"],
            "final_val_accuracy": run["curve"][-1]["val_accuracy"],
            "test_accuracy": run["test_accuracy"],
            "matched_train_loss": target,
            "matched_step": at[name]["step"],
            "val_accuracy_at_matched_loss": at[name]["val_accuracy"],
        }
        for name, run in selected.items()
    ]
    _common.write_csv(out / "runs.csv", run_rows)
    _common.write_csv(out / "curves.csv", curve_rows)
    _common.write_csv(out / "comparison.csv", comparison)
    _plot(evidence, selected, target, out)

    for row in comparison:
        print(
            f"{row['label']:>12} α={row['learning_rate']:<6g} test {row['test_accuracy']:.3f}, "
            f"val {row['final_val_accuracy']:.3f}, val at train loss ≤ {target:.3g}: "
            f"{row['val_accuracy_at_matched_loss']:.3f} (step {row['matched_step']})"
        )
    name = f"{LABELS[evidence['optimizer']]} α={evidence['learning_rate']:g}"
    if w["start"] is None:
        found = "no window with rising accuracy and a flat or rising loss in any run"
    else:
        start = next(r for r in evidence["curve"] if r["step"] == w["start"])
        end = next(r for r in evidence["curve"] if r["step"] == w["end"])
        found = (
            f"{name}, steps {w['start']}→{w['end']}: val accuracy {start['val_accuracy']:.3f}→"
            f"{end['val_accuracy']:.3f} while val loss {start['val_loss']:.3f}→"
            f"{end['val_loss']:.3f}; {sum(r['window']['intervals'] for r in runs)} of "
            f"{sum(r['window']['of_intervals'] for r in runs)} logged intervals over all runs "
            "had Δaccuracy > 0 and Δloss ≥ 0"
        )
    line_a = _common.verdict(
        "validation accuracy can rise while the loss is flat or rising (lecture 03)",
        w["gain"] >= MIN_GAIN,
        found,
    )
    test = {row["optimizer"]: row["test_accuracy"] for row in comparison}
    matched = {row["optimizer"]: row["val_accuracy_at_matched_loss"] for row in comparison}
    adaptive = [name for name in ADAPTIVE if name in test]
    best_test = max(adaptive, key=test.get)
    best_matched = max(adaptive, key=matched.get)
    line_b = _common.verdict(
        "SGD+momentum generalizes better than adaptive methods (Wilson et al. 2017, lecture 03)",
        test["momentum"] > test[best_test] and matched["momentum"] > matched[best_matched],
        f"test accuracy after {args.steps} steps: SGD+momentum {test['momentum']:.3f} vs best "
        f"adaptive {LABELS[best_test]} {test[best_test]:.3f}; val accuracy at train loss ≤ "
        f"{target:.3g}: SGD+momentum {matched['momentum']:.3f} vs {LABELS[best_matched]} "
        f"{matched[best_matched]:.3f}",
    )
    print(f"({timer.seconds:.0f} s of training)")
    return {
        "runs": run_rows,
        "comparison": comparison,
        "matched_train_loss": target,
        "evidence": {"optimizer": evidence["optimizer"], **w},
        "verdicts": {"loss_vs_metric": line_a, "sgd_vs_adaptive": line_b},
        "verdict": line_a + "\n" + line_b,
        "seconds": timer.seconds,
    }


if __name__ == "__main__":
    main()
