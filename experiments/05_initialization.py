"""Initialization (lecture 03): constant vs N(0, 0.01) vs Xavier vs He on a deep MLP.

Claim (lecture 03, "Initialization"): a constant initialization is degenerate: every unit
of a layer gets the same input and the same gradient, so the units stay identical (the
symmetry is never broken). Small Gaussian weights N(0, 0.01²) make the activations of a
deep network shrink layer after layer ("Limitation of Small Weights"), and with them the
gradients, so nothing is learned. Xavier (Glorot & Bengio 2010) keeps the standard
deviation of tanh activations roughly constant through the layers, He ("Xavier2", He et
al. 2015) keeps that of ReLU activations; the training curves rank accordingly.

What it does: an MLP of ``--depth`` hidden layers of ``--width`` units (default 9 × 256,
ten Dense layers with the head) on sklearn's digits, with tanh and with ReLU, initialized
by optlab's ``constant`` (every weight c = 1/width, which keeps the scale finite; any c
gives the same symmetry), ``normal`` (σ = 0.01), ``xavier`` (uniform) and ``he``:

1. at initialization, one forward/backward pass on 512 training examples: per hidden layer
   the activations' mean and standard deviation, their spread across the layer's units
   (std over units, averaged over examples, relative to the mean |activation|), the
   standard deviation of the gradient with respect to the layer's pre-activations
   (back-propagated δ) and of the gradient with respect to its weights. The forward pass
   is written out through the parameters (checked against ``model.apply``) so the
   pre-activations can be differentiated;
2. training with optlab's compiled train step (``build_setup``; SGD with heavy-ball
   momentum, α = 0.01, μ = 0.9, batch 64, 30 epochs), every initialization from the same
   batches: the curves, and the spread of each hidden layer's weight columns after
   training (0 means the units are still copies of each other).

With a constant init even the head's rows are equal, so every logit is the same, the
softmax is uniform and the gradient reaching the hidden layers, Σ_k (p_k − y_k)·c, is 0 at
the first step (its δ is float round-off, ~1e-13); after that the units receive equal,
non-zero gradients and learn — as one unit.

Command::

    python experiments/05_initialization.py            # writes experiments/out/05_initialization
    python experiments/05_initialization.py --quick    # a smoke test in seconds

Expected result (seed 0): constant init — unit spread 0 at initialization and after
training, mean training loss 1.7 (tanh) / 2.0 (ReLU), val accuracy 0.33 / 0.24 (the net
acts as a width-1 network); N(0, 0.01) — activation std falls by ~6.5 orders of
magnitude over 9 tanh layers (~7.5 for ReLU), the first layer's δ ~1e-11 (tanh) /
~4e-13 (ReLU) and weight gradients ~1e-10, the loss stays at log 10 = 2.303 and val
accuracy at chance; Xavier + tanh — last/first hidden-layer std 0.46; He + ReLU — 1.2
(Xavier + ReLU shrinks to 0.07); Xavier and He train (val accuracy 0.96–0.98), He ahead
of Xavier on ReLU (mean training loss 0.09 vs 0.28).

Run time: 23 s wall (30 s of CPU time) on the idle 2-core CPU here; ``--quick``: a
few seconds (the smoke test the suite runs).

Writes: ``init_stats.csv`` (one row per activation, init and hidden layer),
``summary.csv`` (one row per activation and init), ``training_curves.csv``,
``init_statistics.png`` (activation and δ std per layer) and ``training.png``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import _common
import jax
import jax.numpy as jnp
import numpy as np

from optlab.config import RunConfig
from optlab.data import load_dataset
from optlab.models import create_model, initializers
from optlab.train import evaluate, losses
from optlab.train.setup import build_setup

INITS = ("constant", "normal", "xavier", "he")
ACTIVATIONS = ("tanh", "relu")
RECOMMENDED = {"tanh": "xavier", "relu": "he"}  # lecture 03: Xavier for tanh, He for ReLU
LABELS = {"xavier": "Xavier", "he": "He"}
_ACT_FN = {"tanh": jnp.tanh, "relu": jax.nn.relu}
ROUGHLY_CONSTANT = 3.0  # last/first hidden-layer std within this factor
VANISHED = 1e-2  # last/first std below this: "orders of magnitude"
SYMMETRIC = 1e-5  # relative unit spread at or below this: identical units
BROKEN = 0.1  # relative unit spread above this: distinct units


def _forward(params: dict, x: jax.Array, deltas: Sequence[jax.Array], act: str, depth: int):
    """The MLP's forward pass written through its parameters; ``deltas`` are added to the
    pre-activations (zeros: differentiating with respect to them gives δ = ∂L/∂z)."""
    h = x.reshape(x.shape[0], -1)
    pre = []
    for i in range(depth):
        z = h @ params[f"Dense_{i}"]["kernel"] + params[f"Dense_{i}"]["bias"] + deltas[i]
        pre.append(z)
        h = _ACT_FN[act](z)
    head = params[f"Dense_{depth}"]
    return h @ head["kernel"] + head["bias"], pre


def _unit_spread(a: jax.Array) -> jax.Array:
    """Spread of a layer's units: std over units (last axis), averaged over rows, relative
    to the mean |value|. 0 when every unit is a copy of the others."""
    scale = jnp.mean(jnp.abs(a))
    return jnp.where(scale > 0, jnp.mean(jnp.std(a, axis=-1)) / jnp.where(scale > 0, scale, 1), 0)


@functools.partial(jax.jit, static_argnames=("act", "depth"))
def _layer_stats(params: dict, x: jax.Array, y: jax.Array, act: str, depth: int) -> dict:
    zeros = [jnp.zeros((x.shape[0], params[f"Dense_{i}"]["bias"].shape[0])) for i in range(depth)]

    def loss(p, deltas):
        logits, pre = _forward(p, x, deltas, act, depth)
        return losses.per_example_loss("cross_entropy", logits, y).mean(), (logits, pre)

    (_, (logits, pre)), (g_params, g_pre) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(
        params, zeros
    )
    acts = [_ACT_FN[act](z) for z in pre]
    return {
        "logits": logits,
        "act_mean": jnp.stack([a.mean() for a in acts]),
        "act_std": jnp.stack([a.std() for a in acts]),
        "unit_spread": jnp.stack([_unit_spread(a) for a in acts]),
        "delta_std": jnp.stack([g.std() for g in g_pre]),
        "weight_grad_std": jnp.stack(
            [g_params[f"Dense_{i}"]["kernel"].std() for i in range(depth)]
        ),
    }


def init_statistics(params, apply_fn, x, y, act: str, depth: int) -> list[dict[str, Any]]:
    """Per hidden layer at initialization: activation mean/std, unit spread, and the std of
    the gradients with respect to pre-activations (δ) and weights, for one batch. The
    hand-written forward pass is checked against the model's own ``apply``."""
    stats = jax.device_get(_layer_stats(params, x, y, act, depth))
    reference = np.asarray(apply_fn(params, x))
    if not np.allclose(stats.pop("logits"), reference, rtol=1e-4, atol=1e-5):
        raise RuntimeError("the hand-written forward pass disagrees with model.apply")
    return [{"layer": i + 1, **{k: float(v[i]) for k, v in stats.items()}} for i in range(depth)]


def fit(setup, start, *, log_every: int, eval_every: int) -> tuple[Any, list[dict]]:
    """optlab's compiled train step over ``setup.total_steps`` batches of the setup's
    iterator; the mean training loss every ``log_every`` steps and the validation metrics
    every ``eval_every`` steps (``optlab.train.evaluate``)."""
    curve = []
    for step, state, metrics in _common.train_in_chunks(setup, start, every=log_every):
        row = {"step": step, "train_loss": float(np.mean([m["loss"] for m in metrics]))}
        if step % eval_every == 0 or step == setup.total_steps:
            val = evaluate(setup, state, "val")
            row.update(val_loss=val["val_loss"], val_accuracy=val["val_accuracy"])
        curve.append(row)
    return state, curve


def _plot(stats: list[dict], curves: list[dict], acts: Sequence[str], out) -> list:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5 * len(acts), 7))
    axes = fig.subplots(2, len(acts), squeeze=False)
    for col, act in enumerate(acts):
        for init in INITS:
            rows = [r for r in stats if r["activation"] == act and r["init"] == init]
            layers = [r["layer"] for r in rows]
            for row_i, key in enumerate(("act_std", "delta_std")):
                values = [max(r[key], 1e-30) for r in rows]
                axes[row_i, col].plot(layers, values, marker="o", label=init)
        axes[0, col].set(title=f"{act}: activation std per layer", yscale="log")
        axes[1, col].set(title=f"{act}: std of ∂L/∂(pre-activation)", yscale="log")
        axes[1, col].set_xlabel("hidden layer")
        axes[0, col].legend()
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.08, top=0.95, hspace=0.3, wspace=0.2)
    paths = [out / "init_statistics.png"]
    fig.savefig(paths[0], dpi=100)

    fig = Figure(figsize=(5.5 * len(acts), 4))
    axes = fig.subplots(1, len(acts), squeeze=False)[0]
    for col, act in enumerate(acts):
        for init in INITS:
            rows = [r for r in curves if r["activation"] == act and r["init"] == init]
            axes[col].plot([r["step"] for r in rows], [r["train_loss"] for r in rows], label=init)
        axes[col].set(title=f"{act}: training loss", xlabel="step", ylabel="train loss")
        axes[col].set_yscale("log")
        axes[col].legend()
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.9, wspace=0.2)
    paths.append(out / "training.png")
    fig.savefig(paths[1], dpi=100)
    return paths


def _checks(summary: list[dict], acts: Sequence[str]) -> tuple[dict[str, bool], str]:
    row = {(r["activation"], r["init"]): r for r in summary}
    scaled, degenerate = ("xavier", "he"), ("constant", "normal")
    checks = {
        "constant_symmetric": all(
            row[a, "constant"]["unit_spread_init"] <= SYMMETRIC
            and row[a, "constant"]["unit_spread_trained"] <= SYMMETRIC
            for a in acts
        )
        and all(
            row[a, i]["unit_spread_init"] > BROKEN and row[a, i]["unit_spread_trained"] > BROKEN
            for a in acts
            for i in INITS
            if i != "constant"
        ),
        "normal_vanishes": all(row[a, "normal"]["std_ratio"] < VANISHED for a in acts),
        **{
            f"{RECOMMENDED[a]}_keeps_{a}": 1 / ROUGHLY_CONSTANT
            <= row[a, RECOMMENDED[a]]["std_ratio"]
            <= ROUGHLY_CONSTANT
            for a in acts
        },
        # Xavier and He train, constant and N(0, 0.01) do not; on ReLU He beats Xavier.
        "training_ranks": all(
            max(row[a, i]["mean_train_loss"] for i in scaled)
            < min(row[a, i]["mean_train_loss"] for i in degenerate)
            for a in acts
        )
        and (
            "relu" not in acts
            or row["relu", "he"]["mean_train_loss"] < row["relu", "xavier"]["mean_train_loss"]
        ),
    }
    others = [row[a, i]["unit_spread_trained"] for a in acts for i in INITS[1:]]
    per_act = "; ".join(
        f"{a}: last/first hidden-layer std "
        + ", ".join(f"{i} {row[a, i]['std_ratio']:.2g}" for i in INITS)
        + ", mean train loss "
        + ", ".join(f"{i} {row[a, i]['mean_train_loss']:.3f}" for i in INITS)
        for a in acts
    )
    evidence = (
        f"unit spread after training: constant "
        f"{max(row[a, 'constant']['unit_spread_trained'] for a in acts):.1g}, others "
        f">= {min(others):.2f}; {per_act}; failed: "
        + (", ".join(k for k, ok in checks.items() if not ok) or "none")
    )
    return checks, evidence


def initial_params(dataset, args, c: float) -> dict[str, Any]:
    """Each initialization's parameters (host copies), drawn as the trainer draws them
    (key ``PRNGKey(seed)``). They do not depend on the activation, so tanh and ReLU start
    from the same weights."""
    key = jax.random.PRNGKey(args.seed)
    sample = jnp.zeros((1, *dataset.input_shape), jnp.float32)
    params = {}
    for init in INITS:
        model = create_model(
            "mlp",
            num_classes=dataset.num_classes,
            input_shape=dataset.input_shape,
            widths=(args.width,) * args.depth,
            init=initializers.constant(c) if init == "constant" else init,
        )
        init_fn = jax.jit(lambda k, m=model: m.init({"params": k, "dropout": k}, sample))
        params[init] = jax.device_get(init_fn(key)["params"])
    return params


def run_activation(act: str, args, dataset, initial: dict[str, Any]) -> tuple[list, list, list]:
    """Every initialization with one activation: statistics at init, then training. One
    ``build_setup`` per activation: its compiled step is reused for each initialization,
    whose parameters (and fresh optimizer state) are swapped in."""
    cfg = RunConfig(out="")
    cfg.data.dataset, cfg.data.batch_size = "digits", args.batch_size
    cfg.model.activation, cfg.model.init = act, "he"
    cfg.model.options = {"widths": [args.width] * args.depth}
    cfg.optimizer.optimizer, cfg.optimizer.learning_rate = "momentum", args.learning_rate
    cfg.optimizer.args = {"mu": 0.9}
    cfg.train.seed, cfg.train.epochs, cfg.train.steps = args.seed, args.epochs, args.steps
    setup = build_setup(cfg, dataset=dataset)
    data_start = setup.train_iter.state()
    x = jnp.asarray(dataset.x_train[: args.stats_batch])
    y = jnp.asarray(dataset.y_train[: args.stats_batch])
    apply_fn = jax.jit(lambda p, x: setup.model.apply({"params": p}, x, train=False))
    stats, summary, curves = [], [], []
    for init in INITS:
        params = jax.tree.map(jnp.asarray, initial[init])  # fresh buffers: the step donates
        rows = init_statistics(params, apply_fn, x, y, act, args.depth)
        stats += [{"activation": act, "init": init, **r} for r in rows]

        state = _common.fresh_state(setup, cfg, params)
        setup.train_iter.restore(data_start)  # every initialization sees the same batches
        state, curve = fit(setup, state, log_every=args.log_every, eval_every=args.eval_every)
        curves += [{"activation": act, "init": init, **r} for r in curve]
        train_losses = [r["train_loss"] for r in curve]
        trained = state.params
        summary.append(
            {
                "activation": act,
                "init": init,
                "init_detail": f"constant c={args.constant_value:g}"
                if init == "constant"
                else init,
                "act_std_first": rows[0]["act_std"],
                "act_std_last": rows[-1]["act_std"],
                "std_ratio": rows[-1]["act_std"] / max(rows[0]["act_std"], 1e-30),
                "weight_grad_std_last": rows[-1]["weight_grad_std"],
                "unit_spread_init": max(r["unit_spread"] for r in rows),
                "unit_spread_trained": max(
                    float(_unit_spread(trained[f"Dense_{i}"]["kernel"])) for i in range(args.depth)
                ),
                "mean_train_loss": float(np.mean(train_losses)),
                "final_train_loss": train_losses[-1],
                "val_accuracy": curve[-1]["val_accuracy"],  # fit evaluates the last step
                "test_accuracy": evaluate(setup, state, "test")["test_accuracy"],
            }
        )
    return stats, summary, curves


def main(argv: Sequence[str] | None = None) -> dict:
    p = _common.parser(__doc__, "05_initialization")
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--depth", type=int, default=9, help="hidden layers")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--learning-rate", type=float, default=0.01)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--constant-value", type=float, default=None, help="default: 1/width")
    p.add_argument(
        "--activations", default=",".join(ACTIVATIONS), help="comma-separated: tanh, relu"
    )
    args = p.parse_args(argv)
    acts = [a.strip() for a in args.activations.split(",") if a.strip()]
    if not acts or any(a not in ACTIVATIONS for a in acts):
        p.error(f"--activations: choose from {', '.join(ACTIVATIONS)}, got {args.activations!r}")
    args.steps, args.log_every, args.eval_every, args.stats_batch = None, 10, 100, 512
    if args.quick:
        args.width, args.depth, args.epochs = 16, 3, None
        args.steps, args.log_every, args.eval_every, args.stats_batch = 6, 2, 3, 64
        acts = ["relu"]  # one activation: the same code paths at half the compiles
    out = _common.out_dir(args.out)
    if args.constant_value is None:
        args.constant_value = 1.0 / args.width

    # Quick: validation and test share one evaluation batch shape (one compile fewer).
    dataset = load_dataset("digits", seed=args.seed, val_fraction=0.2 if args.quick else 0.1)
    stats, summary, curves = [], [], []
    with _common.Timer() as timer:
        initial = initial_params(dataset, args, args.constant_value)
        for act in acts:
            s, m, cu = run_activation(act, args, dataset, initial)
            stats, summary, curves = stats + s, summary + m, curves + cu
    for r in summary:
        r["log10_std_ratio"] = math.log10(max(r["std_ratio"], 1e-30))
    _common.write_csv(out / "init_stats.csv", stats)
    _common.write_csv(out / "summary.csv", summary)
    _common.write_csv(out / "training_curves.csv", curves)
    _plot(stats, curves, acts, out)
    for r in summary:
        print(
            f"{r['activation']:>4} {r['init']:>8}: std first→last {r['act_std_first']:.2g}→"
            f"{r['act_std_last']:.2g}, unit spread init/trained {r['unit_spread_init']:.2g}/"
            f"{r['unit_spread_trained']:.2g}, mean train loss {r['mean_train_loss']:.3f}, "
            f"val acc {r['val_accuracy']:.3f}"
        )
    checks, evidence = _checks(summary, acts)
    keeps = " and ".join(f"{LABELS[RECOMMENDED[a]]} keeps {a}'s" for a in acts)
    line = _common.verdict(
        f"constant init keeps units identical, N(0,0.01) vanishes with depth, {keeps} "
        "activation scale, and training ranks accordingly (lecture 03)",
        all(checks.values()),
        evidence,
    )
    print(f"({timer.seconds:.0f} s)")
    return {
        "summary": summary,
        "init_stats": stats,
        "checks": checks,
        "seconds": timer.seconds,
        "verdict": line,
    }


if __name__ == "__main__":
    main()
