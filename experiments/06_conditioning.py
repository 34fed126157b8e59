"""Conditioning (lecture 04): steps to converge against κ, and the remedies measured by the Hessian.

Claims (lecture 04, "Recap: Hessian-based analysis", "Better conditioning", "Momentum"):

- (A) The condition number κ = λmax/λmin of the Hessian sets the speed of first-order
  methods: gradient descent needs about κ·log(1/ε) steps, heavy-ball momentum about
  √κ·log(1/ε) (Polyak 1964), so momentum's advantage grows with κ.
- (B) Centering, standardizing and whitening the data lower κ; whitening makes it 1.
- (C) Batch normalization and shortcut connections give a deep network a better-conditioned
  loss: a smaller top curvature λmax (GD's stable step is α < 2/λmax), and with it faster
  training at the largest stable step.

Part A: quadratics f(w) = ½ wᵀHw, H = Q diag(λ) Qᵀ with d = 50 eigenvalues spaced
geometrically from λmin = 1 to λmax = κ ∈ {10, 100, 1000, 10000}, Q a random rotation
(and Q = I, "axis-aligned", for Adam), from one random start. Steps until
f(w_t) ≤ 10⁻⁶·f(w_0), one compiled ``lax.scan`` per optimizer reused for every κ: GD
(``optlab.sgd``) at α = 2/(λmax + λmin), contraction ρ = (κ − 1)/(κ + 1), bound
T = ⌈ln(10⁶)/(2 ln(1/ρ))⌉ ≈ (κ/4)·ln(10⁶); heavy ball (``optlab.momentum``) at Polyak's
optimal α = 4/(√λmax + √λmin)², μ = ((√κ − 1)/(√κ + 1))², rate ρ = (√κ − 1)/(√κ + 1),
T ≈ (√κ/4)·ln(10⁶) (asymptotic: the iteration matrix is defective at the optimum, which adds
a factor growing like t); Adam (``optlab.adam``) at the best rate of a grid. The
log-log slope of steps against κ is ≈ 1 for GD and ≈ ½ for momentum.

Part B: the wine data (scikit-learn's ``load_wine``: 178 examples, 13 features in raw units
from 0.1 to 1680) fitted by least squares ½·mean((Xw + b − t)²), t = 1[class 0]. Its Hessian
is X̃ᵀX̃/n with X̃ = [X, 1]: computed with ``optlab.lab.hessian`` in float64 and checked
against that formula; κ for the raw, centered, standardized (lecture 03) and PCA-whitened
features, and GD's steps (α = 2/(λmax + λmin), tolerance 10⁻⁶, at most 20000).

Part C: a deep MLP (16 hidden layers of 32 ReLU units, He init) on 512 digits images, four
variants that differ in one switch each: plain, batch norm before each ReLU (as
``create_model("mlp", batchnorm=True)``), shortcut connections h ← h + z/√(L − 1) around
each hidden layer after the first, and both. Lanczos (``optlab.lab.lanczos``, 40 steps)
gives the Hessian's extremes at initialization and after 200 full-batch GD steps at the
variant's own step α = 1/λmax(init) (half the largest stable step). A network away from a
minimum has λmin < 0: the lecture's κ is undefined there (``condition_number`` returns inf),
so the comparison uses λmax and the loss reached; λmin and |λmin|/λmax are reported.

Command::

    .venv/bin/python experiments/06_conditioning.py [--quick] [--out DIR] [--seed 0]

Writes ``quadratics.csv``, ``data_remedies.csv``, ``architecture.csv`` and
``conditioning.png`` into ``experiments/out/06_conditioning``.

Expected (measured, seed 0): GD needs 29, 302, 3122, 31859 steps for κ = 10…10⁴ (bound 35,
346, 3454, 34539; slope 1.01); heavy ball 14, 53, 193, 679 (asymptotic prediction 11, 35,
110, 346; slope 0.56, the measured/predicted ratio 1.3 → 2.0 is the defective iteration's
factor t). Adam's best rate needs ~121 steps whatever κ on the axis-aligned quadratic but
122 → 647 on the rotated one (slope 0.23): a per-coordinate step cures axis-aligned
ill-conditioning only. Wine: κ = 4.6·10⁸ raw, 1.2·10⁷ centered, 45.5 standardized, 1
whitened; GD does not converge in 20000 steps on the raw or centered data, needs 147 steps
standardized and 1 whitened. Deep MLP, λmax at init → after 200 steps (loss): plain 206 →
554 (1.41), batch norm 246 → 823 (1.51), shortcuts 792 → 224 (1.95; the unnormalized
residual stream grows, initial loss 10.6), both 31.8 → 6.73 (0.26). Seeds 1 and 2 agree
(both: λmax 31 → 6.3 and 29.7 → 4.9, loss 0.25 and 0.18; plain 70 → 111 and 63 → 222, loss
1.13 and 0.60): batch norm and shortcuts together flatten the top of the spectrum by an
order of magnitude, while batch norm alone in a deep plain net makes it sharper at init
(216–998; the gradient explosion of Yang et al., ICLR 2019) and shortcuts alone vary. The
verdict compares the plain net with both remedies; all three parts SUPPORTED for seeds 0–2.

Run time: 20 s wall (25 s of CPU time) on the idle 2-core CPU here; ``--quick``: a
few seconds (the smoke test the suite runs).
"""

# No ``from __future__ import annotations``: DeepMLP is a flax dataclass, and string
# annotations make dataclasses look the module up in sys.modules, where a script loaded
# by path (tests/experiments/conftest.py) is not.
import functools
import math
from collections.abc import Sequence
from typing import Any

import _common
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

import optlab
from optlab.lab import condition_number, hessian, lanczos
from optlab.models import create_model, initializers
from optlab.train import losses

TOLERANCE = 1e-6  # f(w_t) − f* ≤ TOLERANCE·(f(w_0) − f*)
GD_THEORY = (0.5, 1.05)  # measured / bound for GD (the bound holds; the start is generic)
HB_THEORY = (0.5, 3.0)  # measured / asymptotic rate prediction for heavy ball
SLOPES = {"gd": (0.8, 1.2), "heavy_ball": (0.35, 0.65)}


# --- part A: quadratics of growing κ -------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("kind", "steps"))
def _rollout(H, w0, lr, mu, *, kind: str, steps: int):
    """f(w_t) for t = 1..steps of one optimizer on ½ wᵀHw (lr, mu traced: one compile)."""
    tx = {
        "gd": lambda: optlab.sgd(lr),
        "heavy_ball": lambda: optlab.momentum(lr, mu, form="heavy_ball"),
        "adam": lambda: optlab.adam(lr),
    }[kind]()

    def body(carry, _):
        w, state = carry
        updates, state = tx.update(H @ w, state, w)
        w = w + updates
        return (w, state), 0.5 * w @ H @ w

    _, values = jax.lax.scan(body, (w0, tx.init(w0)), None, length=steps)
    return values


def _steps_to(values, f0: float) -> int | None:
    hit = np.flatnonzero(np.asarray(values, np.float64) <= TOLERANCE * f0)
    return int(hit[0]) + 1 if len(hit) else None


def _rotation(d: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return q * np.sign(np.diag(r))


def part_quadratics(args) -> list[dict[str, Any]]:
    rng = np.random.default_rng(args.seed)
    d = args.dim
    Q, w0 = _rotation(d, rng), rng.normal(size=d)
    log_eps = math.log(1 / TOLERANCE)
    rows = []
    for kappa in args.kappas:
        lam = np.geomspace(1.0, kappa, d)
        for aligned in (False, True):
            H = np.diag(lam) if aligned else (Q * lam) @ Q.T
            f0 = 0.5 * w0 @ H @ w0
            Hj, wj = jnp.asarray(H, jnp.float32), jnp.asarray(w0, jnp.float32)
            runs = []
            if not aligned:  # GD and momentum are rotation invariant: the rotated H only
                rho = (kappa - 1) / (kappa + 1)
                alpha = 2 / (kappa + 1)
                runs.append(("gd", alpha, 0.0, math.ceil(log_eps / (2 * math.log(1 / rho)))))
                root = math.sqrt(kappa)
                rho_hb = (root - 1) / (root + 1)
                runs.append(
                    (
                        "heavy_ball",
                        4 / (root + 1) ** 2,
                        rho_hb**2,
                        math.ceil(log_eps / (2 * math.log(1 / rho_hb))),
                    )
                )
            for kind, lr, mu, predicted in runs:
                steps = _steps_to(_rollout(Hj, wj, lr, mu, kind=kind, steps=args.max_steps), f0)
                rows.append(
                    {
                        "kappa": kappa,
                        "hessian": "rotated",
                        "optimizer": kind,
                        "learning_rate": lr,
                        "mu": mu,
                        "steps": steps,
                        "predicted_steps": predicted,
                        "ratio": steps / predicted if steps else None,
                    }
                )
            best = None
            for lr in args.adam_rates:
                steps = _steps_to(_rollout(Hj, wj, lr, 0.0, kind="adam", steps=args.max_steps), f0)
                if steps is not None and (best is None or steps < best[1]):
                    best = (lr, steps)
            rows.append(
                {
                    "kappa": kappa,
                    "hessian": "axis_aligned" if aligned else "rotated",
                    "optimizer": "adam",
                    "learning_rate": best[0] if best else None,
                    "mu": None,
                    "steps": best[1] if best else None,
                    "predicted_steps": None,
                    "ratio": None,
                }
            )
    return rows


def _slope(rows: list[dict], optimizer: str, hessian_kind: str = "rotated") -> float:
    """Least-squares slope of log(steps) against log(κ)."""
    pts = [
        (math.log(r["kappa"]), math.log(r["steps"]))
        for r in rows
        if r["optimizer"] == optimizer and r["hessian"] == hessian_kind and r["steps"]
    ]
    if len(pts) < 2:
        return float("nan")
    x, y = np.array(pts).T
    return float(np.polyfit(x, y, 1)[0])


# --- part B: centering, standardizing, whitening the data ---------------------------------


def _least_squares(params, batch):
    x, t = batch
    return 0.5 * jnp.mean((x @ params["w"] + params["b"] - t) ** 2)


def part_data(args) -> list[dict[str, Any]]:
    from sklearn.datasets import load_wine

    x, y = load_wine(return_X_y=True)
    t = (y == 0).astype(np.float64)
    mean, std = x.mean(0), x.std(0)
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov((x - mean).T, bias=True))
    variants = {
        "raw": x,
        "centered": x - mean,
        "standardized": (x - mean) / std,
        "whitened": (x - mean) @ (eigenvectors / np.sqrt(eigenvalues)),
    }
    rows = []
    with jax.enable_x64(True):  # κ up to ~10⁹: float32 would lose λmin
        params = {"w": jnp.zeros(x.shape[1], jnp.float64), "b": jnp.zeros((), jnp.float64)}
        for name, features in variants.items():
            batch = (jnp.asarray(features), jnp.asarray(t))
            H = np.asarray(hessian(_least_squares, params, batch=batch))
            # ravel_pytree orders {"b", "w"} by key: the bias is the first coordinate
            augmented = np.hstack([np.ones((len(features), 1)), features])
            formula = augmented.T @ augmented / len(features)  # X̃ᵀX̃/n
            error = float(np.abs(H - formula).max() / np.abs(formula).max())
            if error > 1e-10:
                raise RuntimeError(f"{name}: the Hessian differs from X̃ᵀX̃/n by {error:.1e}")
            lam = np.linalg.eigvalsh(H)
            kappa = condition_number(_least_squares, params, method="exact", batch=batch)
            alpha = 2 / (lam[-1] + lam[0])
            rho = (kappa - 1) / (kappa + 1)
            rows.append(
                {
                    "features": name,
                    "lambda_min": float(lam[0]),
                    "lambda_max": float(lam[-1]),
                    "kappa": kappa,
                    "hessian_vs_formula": error,
                    "gd_steps": _gd_least_squares(augmented, t, alpha, args.data_steps),
                    "predicted_gd_steps": (
                        1
                        if rho <= 0
                        else math.ceil(
                            math.log(1 / TOLERANCE) / (2 * -math.log1p(-2 / (kappa + 1)))
                        )
                    ),
                }
            )
    return rows


@functools.partial(jax.jit, static_argnames="steps")
def _gd_gaps(X, target, theta_star, alpha, *, steps: int):
    """f(θ_t) − f* for t = 0..steps of GD on ½·mean((X̃θ − t)²) from θ = 0."""

    def loss(theta):
        return 0.5 * jnp.mean((X @ theta - target) ** 2)

    f_star = loss(theta_star)

    def body(theta, _):
        theta = theta - alpha * jax.grad(loss)(theta)
        return theta, loss(theta) - f_star

    theta0 = jnp.zeros(X.shape[1], X.dtype)
    return loss(theta0) - f_star, jax.lax.scan(body, theta0, None, length=steps)[1]


def _gd_least_squares(augmented: np.ndarray, t: np.ndarray, alpha: float, steps: int):
    """GD steps on ½·mean((X̃θ − t)²) until the gap to the optimum ≤ TOLERANCE × the first."""
    theta_star = np.linalg.lstsq(augmented, t, rcond=None)[0]
    X, target = jnp.asarray(augmented), jnp.asarray(t)
    gap0, gaps = _gd_gaps(X, target, jnp.asarray(theta_star), alpha, steps=steps)
    return _steps_to(gaps, float(gap0))


# --- part C: batch norm and shortcut connections on a deep MLP -----------------------------


class DeepMLP(nn.Module):
    """optlab's MLP layer for layer (Dense → [BatchNorm] → ReLU, He init, then a dense
    head, the same parameter names), plus optional shortcuts h ← h + z/√(depth − 1) around
    every hidden layer after the first (the first changes the width)."""

    depth: int
    width: int
    num_classes: int
    batchnorm: bool
    shortcut: bool

    @nn.compact
    def __call__(self, x, *, train: bool = True):
        h = x.reshape(x.shape[0], -1)
        init = initializers.get("he")  # lecture 03's N(0, 1)·√(2/n_j), as optlab's MLP
        for i in range(self.depth):
            z = nn.Dense(self.width, use_bias=not self.batchnorm, kernel_init=init)(h)
            if self.batchnorm:
                z = nn.BatchNorm(use_running_average=not train, momentum=0.9)(z)
            z = nn.relu(z)
            h = h + z / math.sqrt(self.depth - 1) if self.shortcut and i > 0 else z
        return nn.Dense(self.num_classes, kernel_init=init)(h)


VARIANTS = {
    "plain": (False, False),
    "batchnorm": (True, False),
    "shortcut": (False, True),
    "batchnorm+shortcut": (True, True),
}


def part_architecture(args) -> list[dict[str, Any]]:
    from optlab.data import load_dataset

    ds = load_dataset("digits", seed=args.seed)
    batch = (jnp.asarray(ds.x_train[: args.examples]), jnp.asarray(ds.y_train[: args.examples]))
    rows = []
    for name in args.variants:
        batchnorm, shortcut = VARIANTS[name]
        model = DeepMLP(args.depth, args.width, ds.num_classes, batchnorm, shortcut)
        variables = model.init(jax.random.PRNGKey(args.seed), batch[0][:2], train=False)
        if not shortcut:  # the same network as optlab's own MLP with these options
            reference = create_model(
                "mlp",
                num_classes=ds.num_classes,
                input_shape=ds.input_shape,
                widths=(args.width,) * args.depth,
                batchnorm=batchnorm,
            )
            logits = jax.jit(
                lambda v, x, reference=reference, model=model: (
                    reference.apply(v, x, train=False),
                    model.apply(v, x, train=False),
                )
            )(variables, batch[0])
            same = np.allclose(*logits, rtol=1e-5, atol=1e-5)
            if not same:
                raise RuntimeError(f"{name}: DeepMLP differs from optlab's MLP")
        stats = {k: v for k, v in variables.items() if k != "params"}

        def loss(params, batch, model=model, stats=stats):
            """The training loss (batch norm with the batch's statistics)."""
            x, y = batch
            out = model.apply({"params": params, **stats}, x, train=True, mutable=list(stats))
            return losses.per_example_loss("cross_entropy", out[0], y).mean()

        params = variables["params"]
        loss_value = jax.jit(loss)
        key = jax.random.PRNGKey(args.seed + 1)
        ritz = lanczos(loss, params, k=args.lanczos_steps, key=key, batch=batch)
        alpha = 1.0 / ritz[-1]
        step = jax.jit(
            lambda p, b, lr, loss=loss: jax.tree.map(
                lambda w, g: w - lr * g, p, jax.grad(loss)(p, b)
            )
        )
        start_loss = float(loss_value(params, batch))
        for _ in range(args.train_steps):
            params = step(params, batch, alpha)
        after = lanczos(loss, params, k=args.lanczos_steps, key=key, batch=batch)
        for phase, values, value in (
            ("init", ritz, start_loss),
            ("trained", after, float(loss_value(params, batch))),
        ):
            lam_min, lam_max = float(values[0]), float(values[-1])
            rows.append(
                {
                    "variant": name,
                    "phase": phase,
                    "gd_steps": 0 if phase == "init" else args.train_steps,
                    "learning_rate": float(alpha),
                    "loss": value,
                    "lambda_min": lam_min,
                    "lambda_max": lam_max,
                    "kappa": lam_max / lam_min if lam_min > 0 else math.inf,
                    "abs_min_over_max": abs(lam_min) / lam_max,
                }
            )
    return rows


# --- verdict and plot ------------------------------------------------------------------------


def _checks(quad: list[dict], data: list[dict], arch: list[dict]) -> tuple[dict, str, dict]:
    rot = {(r["optimizer"], r["kappa"]): r for r in quad if r["hessian"] == "rotated"}
    kappas = sorted({r["kappa"] for r in quad})
    slopes = {name: _slope(quad, name) for name in ("gd", "heavy_ball", "adam")}
    slopes["adam_axis_aligned"] = _slope(quad, "adam", "axis_aligned")
    ratios = {kind: [rot[kind, k]["ratio"] for k in kappas] for kind in ("gd", "heavy_ball")}
    speed = (
        all(lo <= slopes[kind] <= hi for kind, (lo, hi) in SLOPES.items())
        and all(
            rot["heavy_ball", k]["steps"] is not None
            and rot["gd", k]["steps"] is not None
            and rot["heavy_ball", k]["steps"] < rot["gd", k]["steps"]
            for k in kappas
            if k >= 100
        )
        and all(r is not None and GD_THEORY[0] <= r <= GD_THEORY[1] for r in ratios["gd"])
        and all(r is not None and HB_THEORY[0] <= r <= HB_THEORY[1] for r in ratios["heavy_ball"])
    )
    kappa = {r["features"]: r["kappa"] for r in data}
    remedies = (
        abs(kappa["whitened"] - 1) < 1e-6
        and kappa["standardized"] * 100 <= kappa["raw"]
        and kappa["centered"] < kappa["raw"]
    )
    row = {(r["variant"], r["phase"]): r for r in arch}
    both, plain = "batchnorm+shortcut", "plain"
    architecture = (
        all(
            row[both, phase]["lambda_max"] < row[plain, phase]["lambda_max"]
            for phase in ("init", "trained")
        )
        and row[both, "trained"]["loss"] < row[plain, "trained"]["loss"]
    )
    checks = {"steps_follow_kappa": speed, "data_remedies": remedies, "architecture": architecture}
    evidence = (
        f"steps vs κ slopes: GD {slopes['gd']:.2f}, heavy ball {slopes['heavy_ball']:.2f}, "
        f"Adam rotated {slopes['adam']:.2f} / axis-aligned {slopes['adam_axis_aligned']:.2f}; "
        f"measured/theory GD {', '.join(f'{r:.2f}' for r in ratios['gd'] if r)}, heavy ball "
        f"{', '.join(f'{r:.2f}' for r in ratios['heavy_ball'] if r)}; wine κ raw "
        f"{kappa['raw']:.3g}, centered {kappa['centered']:.3g}, standardized "
        f"{kappa['standardized']:.3g}, whitened {kappa['whitened']:.6g}; deep MLP λmax "
        + ", ".join(
            f"{v} {row[v, 'init']['lambda_max']:.3g}→{row[v, 'trained']['lambda_max']:.3g} "
            f"(loss {row[v, 'trained']['loss']:.3f})"
            for v in dict.fromkeys(r["variant"] for r in arch)
        )
        + "; failed: "
        + (", ".join(k for k, ok in checks.items() if not ok) or "none")
    )
    return checks, evidence, slopes


def _plot(quad, data, arch, out) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(15, 4.2))
    ax_q, ax_d, ax_a = fig.subplots(1, 3)
    for (kind, hess), style in {
        ("gd", "rotated"): "o-",
        ("heavy_ball", "rotated"): "s-",
        ("adam", "rotated"): "^-",
        ("adam", "axis_aligned"): "v--",
    }.items():
        pts = [
            (r["kappa"], r["steps"])
            for r in quad
            if r["optimizer"] == kind and r["hessian"] == hess and r["steps"]
        ]
        if pts:
            ax_q.plot(*zip(*pts, strict=True), style, label=f"{kind} ({hess})")
        if kind != "adam":
            theory = [(r["kappa"], r["predicted_steps"]) for r in quad if r["optimizer"] == kind]
            ax_q.plot(*zip(*theory, strict=True), ":", color="gray")
    ax_q.set(xscale="log", yscale="log", xlabel="κ = λmax/λmin", ylabel="steps to 1e-6")
    ax_q.set_title("A: steps vs κ (dotted: theory)")
    ax_q.legend(fontsize=8)

    names = [r["features"] for r in data]
    ax_d.bar(names, [math.log10(r["kappa"]) for r in data])
    ax_d.set(ylabel="log10 κ", title="B: least squares on wine, κ of X̃ᵀX̃/n")

    variants = list(dict.fromkeys(r["variant"] for r in arch))
    index = np.arange(len(variants))
    for offset, phase in ((-0.2, "init"), (0.2, "trained")):
        values = [
            next(r["lambda_max"] for r in arch if r["variant"] == v and r["phase"] == phase)
            for v in variants
        ]
        ax_a.bar(index + offset, values, width=0.4, label=phase)
    ax_a.set_xticks(index, variants, fontsize=8)
    ax_a.set(yscale="log", ylabel="λmax (Lanczos)", title="C: deep MLP, top curvature")
    ax_a.legend()
    fig.tight_layout()
    fig.savefig(out / "conditioning.png", dpi=100)


def main(argv: Sequence[str] | None = None) -> dict:
    p = _common.parser(__doc__, "06_conditioning")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    args.dim, args.kappas, args.max_steps = 50, (10.0, 100.0, 1000.0, 10000.0), 60000
    args.adam_rates = (1.0, 0.3, 0.1, 0.03, 0.01)
    args.data_steps = 20000
    args.depth, args.width, args.examples = 16, 32, 512
    args.lanczos_steps, args.train_steps = 40, 200
    args.variants = tuple(VARIANTS)
    if args.quick:
        args.dim, args.kappas, args.max_steps = 10, (10.0, 100.0), 2000
        args.adam_rates, args.data_steps = (1.0, 0.3), 2000
        args.depth, args.width, args.examples = 3, 8, 64
        args.lanczos_steps, args.train_steps = 8, 5
        args.variants = ("plain", "batchnorm+shortcut")  # the two the verdict compares
    out = _common.out_dir(args.out)
    with _common.Timer() as timer:
        quad = part_quadratics(args)
        data = part_data(args)
        arch = part_architecture(args)
    _common.write_csv(out / "quadratics.csv", quad)
    _common.write_csv(out / "data_remedies.csv", data)
    _common.write_csv(out / "architecture.csv", arch)
    _plot(quad, data, arch, out)
    for r in quad:
        print(
            f"κ={r['kappa']:>7g} {r['hessian']:>12} {r['optimizer']:>10}: steps {r['steps']}"
            + (f" (theory {r['predicted_steps']})" if r["predicted_steps"] else "")
        )
    for r in data:
        print(f"wine {r['features']:>12}: κ {r['kappa']:.4g}, GD steps {r['gd_steps']}")
    for r in arch:
        print(
            f"{r['variant']:>18} {r['phase']:>7}: loss {r['loss']:.3f}, λmin {r['lambda_min']:.3g}"
            f", λmax {r['lambda_max']:.3g}"
        )
    checks, evidence, slopes = _checks(quad, data, arch)
    line = _common.verdict(
        "steps grow like κ for GD and √κ for momentum; centering/standardizing/whitening lower "
        "κ to 1; batch norm with shortcuts lowers a deep MLP's top curvature (lecture 04)",
        all(checks.values()),
        evidence,
    )
    print(f"({timer.seconds:.0f} s)")
    return {
        "quadratics": quad,
        "data_remedies": data,
        "architecture": arch,
        "slopes": slopes,
        "checks": checks,
        "seconds": timer.seconds,
        "verdict": line,
    }


if __name__ == "__main__":
    main()
