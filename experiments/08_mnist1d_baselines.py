"""MNIST-1D baselines: logistic regression, MLP and CNN beside the paper's published table.

Claim (Greydanus 2020, "Scaling down deep learning", the MNIST-1D paper; its table is in
the ``mnist1d`` package's README): MNIST-1D separates models by their inductive biases —
test accuracy of logistic regression ≈ 32%, MLP ≈ 68%, CNN ≈ 94% (GRU ≈ 91%, human
expert ≈ 96%), so a linear model < an MLP < a CNN.

What it does: trains, with optlab's trainer, on the paper's 4000 / 1000 split (400 of the
4000 held out for validation):

- logistic regression: optlab's MLP with no hidden layer (``widths=[]``), a linear map
  from the 40 inputs to the 10 logits under softmax cross-entropy;
- MLP: two hidden layers of 256 ReLU units (the mnist1d repository's ``hidden_size``);
- CNN: optlab's default CNN, the paper's (3 convolutions of 25 channels, kernel 5,
  stride 2, ReLU, a linear head);

each with Adam (α = 0.01, as the mnist1d repository's ``get_model_args``), batch 100,
6000 steps (the repository's script runs 8000), He initialization; the test accuracy at
the end is compared with the published one.

Command::

    python experiments/08_mnist1d_baselines.py   # writes experiments/out/08_mnist1d_baselines
    python experiments/08_mnist1d_baselines.py --quick   # a smoke test in seconds

Expected result (seed 0): test accuracy logistic 0.330, MLP 0.717, CNN 0.920 — gaps to
the paper's 32 / 68 / 94 % of +1.0, +3.7 and −2.0 points, in the paper's order.
``--seeds N`` averages N seeds (N times the run time).

Run time: 20 s wall (29 s of CPU time) on the idle 2-core CPU here; ``--quick``: a
few seconds (the smoke test the suite runs).

Writes: ``baselines.csv`` (our accuracies beside the paper's, and the paper's GRU and
human rows), ``baselines.png`` (bar plot) and ``curves.png`` (validation accuracy).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import _common
import jax
import numpy as np

from optlab.config import RunConfig
from optlab.data import load_dataset
from optlab.train import evaluate
from optlab.train.setup import build_setup

# Greydanus 2020, table "Comparing MNIST and MNIST-1D", test accuracy on MNIST-1D.
PAPER = {"logistic": 0.32, "mlp": 0.68, "cnn": 0.94, "gru": 0.91, "human": 0.96}
PAPER_SOURCE = "Greydanus 2020, Scaling down deep learning (MNIST-1D table)"
_COLUMNS = ("logistic", "mlp", "cnn", "gru", "human")  # the README table's column order

MODELS = {
    "logistic": ("mlp", {"widths": []}, "linear 40→10 (MLP with no hidden layer)"),
    "mlp": ("mlp", {"widths": [256, 256]}, "MLP 40→256→256→10, ReLU"),
    "cnn": ("cnn", {}, "CNN 3×conv(25, k5, s2), ReLU, linear head"),
}


def published_table() -> tuple[dict[str, float], str]:
    """The paper's MNIST-1D row, read from the installed ``mnist1d`` package's README when
    it carries it, else the numbers above (both from Greydanus 2020)."""
    try:
        from importlib.metadata import PackageNotFoundError, metadata

        text = metadata("mnist1d").get_payload() or ""
    except (ImportError, PackageNotFoundError, AttributeError):
        text = ""
    for line in str(text).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == "MNIST-1D" and len(cells) == 1 + len(_COLUMNS):
            values = [re.fullmatch(r"~?(\d+(?:\.\d+)?)%", c) for c in cells[1:]]
            if all(values):
                table = {k: float(v.group(1)) / 100 for k, v in zip(_COLUMNS, values, strict=True)}
                return table, f"{PAPER_SOURCE}, as printed in the mnist1d package README"
    return dict(PAPER), PAPER_SOURCE


def train_model(name: str, args, seed: int, dataset) -> dict:
    """One baseline trained with optlab (``build_setup``'s compiled step and evaluation);
    its final accuracies and validation curve."""
    model, options, _ = MODELS[name]
    cfg = RunConfig(out="")
    cfg.data.dataset, cfg.data.batch_size = "mnist1d", args.batch_size
    cfg.model.model, cfg.model.options = model, dict(options)
    if args.quick and name == "mlp":
        cfg.model.options = {"widths": [32, 32]}
    if args.quick and name == "cnn":
        cfg.model.options = {"channels": [4, 4, 4]}
    cfg.optimizer.optimizer, cfg.optimizer.learning_rate = "adam", args.learning_rate
    cfg.train.seed, cfg.train.steps = seed, args.steps
    setup = build_setup(cfg, dataset=dataset)
    start, curve = setup.init_state(), []
    with _common.Timer() as timer:
        for step, state, metrics in _common.train_in_chunks(setup, start, every=args.eval_every):
            train_accuracy = float(np.mean([m["accuracy"] for m in metrics]))
            curve.append((step, evaluate(setup, state, "val")["val_accuracy"]))
        test = evaluate(setup, state, "test")["test_accuracy"]
    return {
        "test_accuracy": test,
        "val_accuracy": curve[-1][1],
        "train_accuracy": train_accuracy,
        "params": int(sum(np.size(p) for p in jax.tree.leaves(state.params))),
        "steps": setup.total_steps,
        "wall_seconds": timer.seconds,
        "curve": curve,
    }


def _plot(rows: list[dict], curves: dict, out) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    names = [r["model"] for r in rows]
    xs = np.arange(len(names))
    ours = [r.get("test_accuracy", np.nan) for r in rows]
    paper = [r["paper_test_accuracy"] for r in rows]
    ax.bar(xs - 0.2, ours, 0.4, label="optlab (this run)")
    ax.bar(xs + 0.2, paper, 0.4, label="paper (Greydanus 2020)")
    for x, v in zip(xs, ours, strict=True):
        if np.isfinite(v):
            ax.text(x - 0.2, v + 0.01, f"{v:.2f}", ha="center", fontsize=8)
    for x, v in zip(xs, paper, strict=True):
        ax.text(x + 0.2, v + 0.01, f"{v:.2f}", ha="center", fontsize=8)
    ax.set_xticks(xs, names)
    ax.set(ylabel="test accuracy", ylim=(0, 1.08), title="MNIST-1D: optlab vs the paper")
    ax.legend(loc="upper left")
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.1, top=0.9)
    fig.savefig(out / "baselines.png", dpi=100)

    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for name, curve in curves.items():
        ax.plot(*zip(*curve, strict=True), label=name)
    ax.set(xlabel="step", ylabel="validation accuracy", title="MNIST-1D baselines")
    ax.legend()
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.12, top=0.9)
    fig.savefig(out / "curves.png", dpi=100)


def main(argv: Sequence[str] | None = None) -> dict:
    p = _common.parser(__doc__, "08_mnist1d_baselines")
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--learning-rate", type=float, default=1e-2)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--seeds", type=int, default=1, help="seeds per model (mean is reported)")
    args = p.parse_args(argv)
    args.eval_every, options = 250, {}
    if args.quick:  # a tenth of the data, tiny models: a smoke test
        # (val_fraction 0.25: validation and test then share one evaluation shape)
        args.steps, args.eval_every, args.seeds = 8, 4, 1
        options = {"num_samples": 500, "val_fraction": 0.25}
    out = _common.out_dir(args.out)
    paper, source = published_table()

    rows, curves = [], {}
    with _common.Timer() as timer:
        for name in MODELS:
            runs = [
                train_model(name, args, seed, load_dataset("mnist1d", seed=seed, **options))
                for seed in range(args.seeds)
            ]
            curves[name] = runs[0]["curve"]
            test = [r["test_accuracy"] for r in runs]
            rows.append(
                {
                    "model": name,
                    "description": MODELS[name][2],
                    "params": runs[0]["params"],
                    "steps": runs[0]["steps"],
                    "seeds": args.seeds,
                    "test_accuracy": float(np.mean(test)),
                    "test_accuracy_std": float(np.std(test)),
                    "val_accuracy": float(np.mean([r["val_accuracy"] for r in runs])),
                    "train_accuracy": float(np.mean([r["train_accuracy"] for r in runs])),
                    "paper_test_accuracy": paper[name],
                    "gap_points": 100 * (float(np.mean(test)) - paper[name]),
                    "wall_seconds": float(sum(r["wall_seconds"] for r in runs)),
                    "paper_source": source,
                }
            )
    paper_only = [
        {"model": name, "paper_test_accuracy": paper[name], "paper_source": source}
        for name in ("gru", "human")
    ]
    _common.write_csv(out / "baselines.csv", rows + paper_only)
    _plot(rows + paper_only, curves, out)
    for r in rows:
        print(
            f"{r['model']:>8}: test {r['test_accuracy']:.3f} "
            f"(paper {r['paper_test_accuracy']:.2f}, gap {r['gap_points']:+.1f} points), "
            f"{r['params']} params, {r['wall_seconds']:.0f} s"
        )
    acc = {r["model"]: r["test_accuracy"] for r in rows}
    gaps = ", ".join(f"{r['model']} {r['gap_points']:+.1f}" for r in rows)
    line = _common.verdict(
        "on MNIST-1D logistic regression < MLP < CNN in test accuracy, as in the paper's table",
        acc["logistic"] < acc["mlp"] < acc["cnn"],
        f"test accuracy logistic {acc['logistic']:.3f}, MLP {acc['mlp']:.3f}, "
        f"CNN {acc['cnn']:.3f}; gap to the paper in points: {gaps}",
    )
    return {
        "rows": rows,
        "paper": paper,
        "paper_source": source,
        "seconds": timer.seconds,
        "verdict": line,
    }


if __name__ == "__main__":
    main()
