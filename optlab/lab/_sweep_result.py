"""What a sweep returns: the table of runs, mean ± std per configuration, the best one, the
plot of the validation metric against each hyper-parameter, and lecture 03's next step, a
finer grid around the best value (``refine``)."""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

METRICS = ("train_loss", "val_loss", "val_accuracy")
# Coefficients in [0, 1) (momentum, decay rates): refined on the scale of 1 − value.
UNIT_INTERVAL = ("mu", "momentum", "b1", "b2", "decay", "beta", "rho")


@dataclasses.dataclass(eq=False)
class SweepResult:
    """The runs of a `sweep`.

    Attributes:
      grid: the swept hyper-parameters (the optimizer's own argument names) and values.
      table: one dict per run, in the order configuration × seed × fold: the
        hyper-parameters, ``seed``, ``fold`` (None without k-fold), ``train_loss`` (mean
        training loss over the last epoch's steps), ``val_loss``, ``val_accuracy``
        (classification; on the held-out fold with k-fold), ``diverged`` (a non-finite
        loss stopped the run; its metrics are NaN), ``skipped`` and ``val_count``.
      losses: training loss of every run at every step, shape (runs, steps).
      params: the final parameters, leading axis the runs padded to a multiple of the
        device count (row i is ``table[i]`` for i < len(table)), sharded over the devices.
      metric: what ``best`` compares: ``val_accuracy`` (higher is better) or ``val_loss``.
      folds: the held-out rows of each fold (indices into the training split), or None.
      steps: updates per run. seconds: wall time of initialization, training and
        evaluation, compilation included; train_seconds: of the compiled training program
        alone. devices: how many devices the runs were spread over.
    """

    grid: dict[str, list[float]]
    table: list[dict[str, Any]]
    losses: np.ndarray
    params: Any
    metric: str
    folds: list[np.ndarray] | None
    steps: int
    seconds: float
    train_seconds: float
    devices: int

    def summary(self) -> list[dict[str, Any]]:
        """One row per configuration: its hyper-parameters, ``runs``, ``diverged`` (how many
        of its runs diverged) and each metric's mean and sample standard deviation
        (``<metric>_std``, 0 for a single run) over seeds and folds."""
        groups: dict[tuple, list[dict]] = {}
        for row in self.table:
            groups.setdefault(tuple(row[k] for k in self.grid), []).append(row)
        out = []
        for values, rows in groups.items():
            s: dict[str, Any] = dict(zip(self.grid, values, strict=True))
            s["runs"] = len(rows)
            s["diverged"] = sum(bool(r["diverged"]) for r in rows)
            for m in METRICS:
                if m in rows[0]:
                    v = np.asarray([r[m] for r in rows], float)
                    s[m] = float(v.mean())
                    s[f"{m}_std"] = float(v.std(ddof=1)) if len(v) > 1 else 0.0
            out.append(s)
        return out

    def best(self, metric: str | None = None) -> dict[str, Any]:
        """The `summary` row with the best mean ``metric`` (default ``self.metric``; an
        accuracy is maximized, a loss minimized); configurations with a diverged run are
        never best."""
        metric = metric or self.metric
        rows = self.summary()
        if metric not in rows[0]:
            raise ValueError(f"best: unknown metric {metric!r}; choose from {list(METRICS)}")
        sign = -1.0 if "accuracy" in metric else 1.0
        finite = [r for r in rows if math.isfinite(r[metric]) and not r["diverged"]]
        if not finite:
            raise ValueError("best: every configuration diverged; try smaller learning rates")
        return min(finite, key=lambda r: sign * r[metric])

    def to_csv(self, path: str | os.PathLike, *, summary: bool = False) -> None:
        """Writes ``table`` (or ``summary()``) as CSV with a header row."""
        rows = self.summary() if summary else self.table
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows([{k: "" if v is None else v for k, v in r.items()} for r in rows])

    def format(self) -> str:
        """The summary as a text table, the best configuration marked ``*``."""
        rows = self.summary()
        try:
            best = self.best()
        except ValueError:
            best = None
        spread = any(r["runs"] > 1 for r in rows)
        metrics = [m for m in ("val_accuracy", "val_loss", "train_loss") if m in rows[0]]
        header = [*self.grid, *metrics] + (["runs"] if spread else [])
        lines = []
        for r in rows:
            cells = [f"{r[k]:g}" for k in self.grid]
            for m in metrics:
                cell = f"{r[m]:.4f}"
                cells.append(f"{cell} ± {r[m + '_std']:.4f}" if spread else cell)
            if spread:
                cells.append(str(r["runs"]))
            is_best = best is not None and all(r[k] == best[k] for k in self.grid)
            mark = "*" if is_best else ("!" if r["diverged"] else " ")
            lines.append((mark, cells))
        widths = [max(len(h), *(len(c[i]) for _, c in lines)) for i, h in enumerate(header)]
        out = ["  " + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
        for mark, cells in lines:
            out.append(
                f"{mark} " + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))
            )
        out.append(
            f"* best {self.metric}; ! diverged. {len(self.table)} runs of {self.steps} steps"
        )
        return "\n".join(out)

    def __str__(self) -> str:
        return self.format()


def _log_axis(name: str, values: Sequence[float]) -> bool:
    values = [v for v in values if v is not None]
    return all(v > 0 for v in values) and (
        name in ("learning_rate", "weight_decay", "eps") or max(values) / min(values) >= 10
    )


def plot_sweep(
    result: SweepResult, path: str | os.PathLike | None = None, *, metric: str | None = None
):
    """The validation metric against each swept hyper-parameter (lecture 03's search plot):
    one panel per hyper-parameter, one line per combination of the others, error bars the
    standard deviation over seeds and folds, log-x for rates; the best point starred.
    Returns the ``matplotlib.figure.Figure`` (Agg canvas, no pyplot) and saves it as PNG
    when ``path`` is given."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not isinstance(result, SweepResult):
        raise ValueError(f"plot_sweep: `result` must be a SweepResult, got {type(result).__name__}")
    metric = metric or result.metric
    keys = list(result.grid) or ["(config)"]
    rows = result.summary()
    fig = Figure(figsize=(4.8 * len(keys), 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    try:
        best = result.best(metric)
    except ValueError:
        best = None
    for ax, key in zip(axes, keys, strict=True):
        others = [k for k in result.grid if k != key]
        lines: dict[tuple, list[dict]] = {}
        for r in rows:
            lines.setdefault(tuple(r[k] for k in others), []).append(r)
        for rest, group in lines.items():
            group = sorted(group, key=lambda r: r.get(key, 0.0))
            x = [r.get(key, 0.0) for r in group]
            label = ", ".join(f"{k}={v:g}" for k, v in zip(others, rest, strict=True)) or None
            ax.errorbar(
                x,
                [r[metric] for r in group],
                yerr=[r[f"{metric}_std"] for r in group],
                marker="o",
                capsize=3,
                label=label,
            )
        if best is not None and key in best:
            ax.plot([best[key]], [best[metric]], "*", color="red", markersize=14, label="best")
        if key in result.grid and _log_axis(key, result.grid[key]):
            ax.set_xscale("log")
        ax.set_xlabel(key)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"sweep: {metric} ({len(result.table)} runs of {result.steps} steps)")
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def _scale(name: str, values: list[float]):
    """(forward, inverse, kind) of the scale a hyper-parameter is refined on."""
    if name in UNIT_INTERVAL and all(0 <= v < 1 for v in values):
        return (lambda v: math.log(1 - v)), (lambda t: 1 - math.exp(t)), "unit"
    if all(v > 0 for v in values):
        return math.log, math.exp, "log"
    return (lambda v: v), (lambda t: t), "linear"


def _beyond(v: float, direction: int, factor: float, kind: str, floor: float | None) -> float:
    """The stand-in neighbour below (-1) or above (+1) an end of the coarse grid."""
    if kind == "log":
        return v * factor**direction
    if kind == "unit":
        return max(1 - (1 - v) * factor ** (-direction), 0.0)
    end = v + direction * (abs(v) * (factor - 1) or 1.0)
    return end if floor is None else max(end, floor)


def refine(
    result: SweepResult,
    factor: float = 3.0,
    points: int = 5,
    *,
    keys: Sequence[str] | None = None,
) -> dict[str, list[float]]:
    """A finer grid around the best configuration (lecture 03: "start with a coarser
    search ... perform finer search around good values").

    For each refined hyper-parameter with best value v, the new values lie strictly
    between v's neighbours in the coarse grid (at an end of the grid, v / ``factor`` or
    v · ``factor`` stands in for the missing neighbour): ``points // 2`` values on each
    side, evenly spaced on a log scale (on the scale of log(1 − v) for momentum-like
    coefficients in [0, 1); linear when a value is ≤ 0, never below 0 if no coarse value
    was), rounded to 4 significant digits, plus v itself, so the best is bracketed. The
    other hyper-parameters are fixed at their best values. For the lecture's coarse
    grid with the best at 0.01 and ``points=5``: 0.004481, 0.006694, 0.01, 0.01442, 0.0208.

    Args:
      result: a coarse `SweepResult`.
      factor: > 1, the reach beyond an end of the coarse grid.
      points: values per refined hyper-parameter (odd; an even number is rounded up).
      keys: which hyper-parameters to refine (default: those with several values).

    Returns:
      A grid for `sweep`.
    """
    if isinstance(factor, bool) or not (isinstance(factor, int | float) and factor > 1):
        raise ValueError(f"refine: `factor` must be a number > 1, got {factor!r}. Use e.g. 3.")
    if isinstance(points, bool) or not isinstance(points, int) or points < 1:
        raise ValueError(f"refine: `points` must be an integer >= 1, got {points!r}. Use e.g. 5.")
    best = result.best()
    if keys is None:
        keys = [k for k, v in result.grid.items() if len(set(v)) > 1] or list(result.grid)
    unknown = [k for k in keys if k not in result.grid]
    if unknown:
        raise ValueError(f"refine: {unknown} were not swept; the grid has {list(result.grid)}")
    side = points // 2
    grid: dict[str, list[float]] = {}
    for key, values in result.grid.items():
        v = best[key]
        if key not in keys:
            grid[key] = [v]
            continue
        coarse = sorted(set(values))
        i = coarse.index(v)
        fwd, inv, kind = _scale(key, coarse)
        floor = 0.0 if coarse[0] >= 0 else None
        lo = coarse[i - 1] if i > 0 else _beyond(v, -1, factor, kind, floor)
        hi = coarse[i + 1] if i + 1 < len(coarse) else _beyond(v, 1, factor, kind, floor)
        new = {v}
        t = fwd(v)
        for end in (lo, hi):
            if end == v:
                continue
            t_end = fwd(end)
            new.update(
                float(f"{inv(t + (t_end - t) * j / (side + 1)):.4g}") for j in range(1, side + 1)
            )
        grid[key] = sorted(new)
    return grid
