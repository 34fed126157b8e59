"""Batch size 32…512 with a fixed and a linearly scaled learning rate, and a growing batch.

Claims:

- Lecture 05 ("Impact of batch size"): after the same number of epochs with the same
  learning rate, the smallest batch (32) reaches the lowest loss.
- Lecture 03 ("Inter-dependence of hyper-parameters"): the learning rate should change in
  proportion to the batch size. With α = α_ref·B/B_ref the final losses at B = 32…512 are
  closer to each other than with one fixed α (spread = largest / smallest final loss).
- Lecture 04 ("GD vs SGD convergence"): K can be increased over training to be efficient
  in both phases. A batch growing 32 → 64 → 128 → 256 → 512 (each for a fifth of the
  epochs, same α) ends below the fixed batch 512 after the same epochs, and below the
  fixed batch 32 after the same number of updates.

Setup: MNIST-1D (3600 training signals), the default MLP (128, 128), plain SGD, 30 epochs,
one seed and one initial state for every run. Fixed rule: α = 0.1 at every B. Linear
scaling: α = 0.1·B/128 (0.025 … 0.4; B = 128 is the same run in both rules). Growing:
``BatchIterator(batch_size_schedule=[[0, 32], [675, 64], …])`` — what
``cfg.data.batch_growth`` gives the trainer — with α = 0.1. The runs use optlab's own
pieces (``create_model``, ``make_train_step``, ``create_state``, ``BatchIterator``) with
``optax.inject_hyperparams(optlab.sgd)``, so that α is data: one compiled step per batch
shape serves every rule. The training loss is measured on the whole training split after
each epoch.

Command::

    .venv/bin/python experiments/03_batch_size.py [--quick] [--out DIR]

Writes ``curves.csv`` (per run and epoch: steps, batch size, rate, training loss and
accuracy, validation loss and accuracy), ``summary.csv`` (per run: rule, batch size, rate,
steps, final losses and accuracies) and ``batch_size.png`` (loss against epochs for each
rule, against steps, and final loss against B) into ``experiments/out/03_batch_size``.

Expected (measured, seed 0): with α = 0.1 the final training loss grows with B: 0.035,
0.33, 0.75, 1.10, 1.40 for B = 32 … 512 (test accuracy 0.61 … 0.37), a spread of 40; with
α ∝ B it is 0.60, 0.64, 0.75, 1.05, 1.37, a spread of 2.3 (the rule holds up to B = 128;
beyond it 450 and 240 updates at α = 0.2 and 0.4 fall behind). Against updates the fixed-α
curves nearly coincide: at one α each update makes about the same progress, whatever B.
The growing batch makes 1308 updates (B = 32 makes 3390) and ends at 0.39, against 1.40
for B = 512 after the same epochs and 0.55 for B = 32 after the same 1308 updates. Three
SUPPORTED verdicts.

Run time: 12 s wall (15 s of CPU time) on the idle 2-core CPU here; ``--quick``: a
few seconds (the smoke test the suite runs).
"""

from __future__ import annotations

from collections.abc import Sequence

import _common
import jax
import numpy as np

from optlab.data import BatchIterator, load_dataset

BATCH_SIZES = (32, 64, 128, 256, 512)


class Runner(_common.SGDRunner):
    """Runs that differ only in their batches and α, from one initial state through one
    compiled SGD step whose α is part of the state (``_common.SGDRunner``)."""

    def run(self, *, learning_rate: float, batch_size: int, steps: int, growth=None) -> dict:
        """``steps`` SGD updates at rate ``learning_rate`` on batches of ``batch_size``
        (``growth``: ``[[step, size], ...]``); evaluated at every epoch's end."""
        data = self.dataset
        batches = BatchIterator(
            data.x_train,
            data.y_train,
            batch_size=batch_size,
            seed=self.seed,
            batch_size_schedule=growth,
        )
        state = jax.device_put(self.with_rate(self.initial, learning_rate))
        n, seen = len(data.x_train), 0.0
        curve = [self._point(state, 0, 0, batch_size, learning_rate)]
        for t in range(1, steps + 1):
            batch = next(batches)
            state, _ = self.step(state, batch)
            seen += float(batch["mask"].sum())
            if seen >= len(curve) * n - 0.5 or t == steps:  # an epoch's end, or the last
                curve.append(self._point(state, seen / n, t, len(batch["mask"]), learning_rate))
        return {
            "curve": curve,
            "steps": steps,
            "final_train_loss": curve[-1]["train_loss"],
            "final_train_accuracy": curve[-1]["train_accuracy"],
            "final_val_accuracy": curve[-1]["val_accuracy"],
            "test_accuracy": self.evaluate(state, "test")["test_accuracy"],
        }

    def _point(self, state, epoch: float, steps: int, batch_size: int, rate: float) -> dict:
        return {
            "epoch": epoch,
            "steps": steps,
            "batch_size": batch_size,
            "learning_rate": rate,
            **self.evaluate(state, "train", "val"),
        }


def growth_schedule(sizes: Sequence[int], epochs: int, n: int) -> tuple[list, int]:
    """``([[step, size], ...], total steps)``: each size for ``epochs / len(sizes)`` epochs
    of ``n`` examples (rounded to whole steps)."""
    phase_epochs = epochs / len(sizes)
    schedule, step = [], 0
    for size in sizes:
        schedule.append([step, size])
        step += max(1, round(phase_epochs * n / size))
    return schedule, step


def loss_at_steps(curve: list[dict], steps: int) -> float:
    """The training loss of a run after ``steps`` updates, interpolated linearly in steps
    between its per-epoch measurements."""
    xs = [p["steps"] for p in curve]
    return float(np.interp(steps, xs, [p["train_loss"] for p in curve]))


def spread(values: Sequence[float]) -> float:
    """Largest over smallest: 1 when all final losses agree."""
    return float(max(values) / min(values))


def plot(runs: dict, sizes: Sequence[int], path, dpi: int = 110) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 8.5), layout="constrained")
    (ax_fixed, ax_scaled), (ax_steps, ax_final) = fig.subplots(2, 2)
    colors = {b: f"C{i}" for i, b in enumerate(sizes)}
    for rule, ax in (("fixed", ax_fixed), ("scaled", ax_scaled)):
        for b in sizes:
            r = runs[f"{rule}_B{b}"]
            ax.plot(
                [p["epoch"] for p in r["curve"]],
                [p["train_loss"] for p in r["curve"]],
                color=colors[b],
                label=f"B={b}, α={r['learning_rate']:.3g}",
            )
        ax.set(xlabel="epoch", ylabel="training loss", yscale="log")
    grow = runs["growing"]
    for ax in (ax_fixed, ax_steps):
        ax.plot(
            [p["epoch"] if ax is ax_fixed else max(p["steps"], 1) for p in grow["curve"]],
            [p["train_loss"] for p in grow["curve"]],
            "k--",
            lw=2,
            zorder=3,
            label=f"growing {sizes[0]}→{sizes[-1]}",
        )
    for b in sizes:
        r = runs[f"fixed_B{b}"]
        ax_steps.plot(
            [max(p["steps"], 1) for p in r["curve"]],
            [p["train_loss"] for p in r["curve"]],
            color=colors[b],
            label=f"B={b}",
        )
    ax_fixed.set_title("fixed α (lecture 05)")
    ax_scaled.set_title("α ∝ B, linear scaling (lecture 03)")
    ax_steps.set(xlabel="updates", ylabel="training loss", xscale="log", yscale="log")
    ax_steps.set_title("fixed α against updates, growing batch (lecture 04)")
    for rule, marker in (("fixed", "o"), ("scaled", "s")):
        ax_final.plot(
            sizes,
            [runs[f"{rule}_B{b}"]["final_train_loss"] for b in sizes],
            marker=marker,
            label={"fixed": "fixed α", "scaled": "α ∝ B"}[rule],
        )
    ax_final.axhline(grow["final_train_loss"], color="k", ls="--", label="growing batch")
    ax_final.set(xscale="log", yscale="log", xlabel="batch size B", ylabel="final training loss")
    ax_final.minorticks_off()
    ax_final.set_xticks(list(sizes), [str(b) for b in sizes])
    ax_final.set_title("final training loss after the same epochs")
    for ax in (ax_fixed, ax_scaled, ax_steps, ax_final):
        ax.legend(fontsize=8)
    fig.suptitle("MNIST-1D MLP, SGD: batch size, linear scaling, growing batch")
    fig.savefig(path, dpi=dpi)


def main(argv: Sequence[str] | None = None) -> dict:
    p = _common.parser(__doc__, "03_batch_size")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--learning-rate", type=float, default=0.1, help="α of the fixed rule")
    p.add_argument("--reference-batch", type=int, default=128, help="B_ref of α·B/B_ref")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    sizes, widths, samples = BATCH_SIZES, (128, 128), {}
    if args.quick:
        args.epochs, sizes, widths, samples = 2, (32, 128), (32,), {"num_samples": 500}
    _common.check_positive(p, args, "--epochs", "--reference-batch", "--learning-rate")
    out = _common.out_dir(args.out)
    dataset = load_dataset("mnist1d", seed=args.seed, **samples)
    n = len(dataset.x_train)

    with _common.Timer() as timer:
        runner = Runner(dataset, widths=widths, seed=args.seed)
        runs: dict[str, dict] = {}
        for rule in ("fixed", "scaled"):
            for b in sizes:
                scale = b / args.reference_batch if rule == "scaled" else 1.0
                rate = args.learning_rate * scale
                same = f"fixed_B{b}"
                if rule == "scaled" and runs[same]["learning_rate"] == rate:
                    runs[f"{rule}_B{b}"] = {**runs[same], "rule": rule}  # the same run
                    continue
                spe = -(-n // b)
                result = runner.run(learning_rate=rate, batch_size=b, steps=args.epochs * spe)
                runs[f"{rule}_B{b}"] = {
                    "rule": rule,
                    "batch_size": str(b),
                    "learning_rate": rate,
                    **result,
                }
        growth, total = growth_schedule(sizes, args.epochs, n)
        grown = runner.run(
            learning_rate=args.learning_rate, batch_size=sizes[0], steps=total, growth=growth
        )
        runs["growing"] = {
            "rule": "growing",
            "batch_size": "→".join(str(b) for b in sizes),
            "learning_rate": args.learning_rate,
            **grown,
        }

    keys = (
        "rule",
        "batch_size",
        "learning_rate",
        "steps",
        "final_train_loss",
        "final_train_accuracy",
        "final_val_accuracy",
        "test_accuracy",
    )
    summary = {name: {k: r[k] for k in keys} for name, r in runs.items()}
    curves = [
        {"run": name, "rule": r["rule"], **point}
        for name, r in runs.items()
        for point in r["curve"]
    ]
    files = [
        _common.write_csv(out / "curves.csv", curves),
        _common.write_csv(out / "summary.csv", [{"run": k, **v} for k, v in summary.items()]),
        out / "batch_size.png",
    ]
    plot(runs, sizes, files[-1], dpi=40 if args.quick else 110)

    fixed = {b: summary[f"fixed_B{b}"]["final_train_loss"] for b in sizes}
    scaled = {b: summary[f"scaled_B{b}"]["final_train_loss"] for b in sizes}
    spreads = {"fixed": spread(list(fixed.values())), "scaled": spread(list(scaled.values()))}
    small, large = sizes[0], sizes[-1]
    grow = summary["growing"]
    small_same_steps = loss_at_steps(runs[f"fixed_B{small}"]["curve"], grow["steps"])
    comparison = {
        "growing_final_train_loss": grow["final_train_loss"],
        "growing_steps": grow["steps"],
        "large_final_train_loss": fixed[large],
        "small_loss_at_growing_steps": small_same_steps,
    }
    best = min(fixed, key=fixed.get)
    claims = {
        "smallest_batch_best": best == small,
        "linear_scaling_closer": spreads["scaled"] < spreads["fixed"],
        "growing_batch_efficient": grow["final_train_loss"] < fixed[large]
        and grow["final_train_loss"] < small_same_steps,
    }
    verdicts = [
        _common.verdict(
            f"with a fixed α the smallest batch ({small}) reaches the lowest loss after the "
            "same epochs (lecture 05)",
            claims["smallest_batch_best"],
            "final training loss "
            + ", ".join(f"B={b}: {v:.3f}" for b, v in fixed.items())
            + f" (α = {args.learning_rate:g}, {args.epochs} epochs)",
        ),
        _common.verdict(
            "scaling α linearly with B brings the final losses at different B closer together "
            "than a fixed α (lecture 03)",
            claims["linear_scaling_closer"],
            f"largest/smallest final loss: α ∝ B {spreads['scaled']:.2f}, fixed α "
            f"{spreads['fixed']:.2f}",
        ),
        _common.verdict(
            f"a batch growing {small}→{large} ends below the fixed batch {large} after the same "
            f"epochs and below the fixed batch {small} after the same number of updates "
            "(lecture 04)",
            claims["growing_batch_efficient"],
            f"growing {grow['final_train_loss']:.3f} after {grow['steps']} updates; B={large} "
            f"{fixed[large]:.3f} after the same {args.epochs} epochs; B={small} "
            f"{small_same_steps:.3f} after the same {grow['steps']} updates",
        ),
    ]
    print(f"({timer.seconds:.1f} s of training and evaluation; files in {out})")
    return {
        "runs": summary,
        "spread": spreads,
        "growing": comparison,
        "growth_schedule": growth,
        "curves": curves,
        "claims": claims,
        "verdicts": verdicts,
        "files": [str(f) for f in files],
        "seconds": timer.seconds,
    }


if __name__ == "__main__":
    main()
