"""Trajectories drawn on the surface's contour plot (PNG, animated GIF) and loss curves.

Figures are ``matplotlib.figure.Figure`` objects with an Agg canvas, never pyplot: no
global state, safe in threads and notebooks alike (a notebook displays the returned
figure).
"""

from __future__ import annotations

import os
import pathlib

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from optlab.lab._trajectories import Trajectories

PathLike = str | os.PathLike


def _new_figure(size: tuple[float, float]) -> Figure:
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _check_result(owner: str, result: object) -> None:
    if not isinstance(result, Trajectories):
        raise ValueError(
            f"{owner}: `result` must be the Trajectories returned by optlab.lab.trajectories, "
            f"got {type(result).__name__}."
        )


def _contours(ax, result: Trajectories, levels: int, log_levels: bool, resolution: int) -> None:
    X, Y, Z = result.surface.grid(resolution)
    if log_levels:  # levels spaced evenly in log(f − min f): narrow valleys stay visible
        shifted = Z - Z.min()
        top = float(shifted.max())
        floor = max(top * 1e-5, np.finfo(np.float32).tiny)
        ax.contour(
            X,
            Y,
            shifted + floor,
            levels=np.geomspace(floor * 10, top + floor, levels),
            norm=LogNorm(),
            cmap="viridis",
            linewidths=0.7,
            alpha=0.55,
        )
    else:
        ax.contour(X, Y, Z, levels=levels, cmap="viridis", linewidths=0.7, alpha=0.55)


def _mark_points(ax, result: Trajectories) -> None:
    surface = result.surface
    glob = np.asarray(surface.global_minima).reshape(-1, 2)
    local = [m for m, g in zip(surface.minima, surface.is_global, strict=True) if not g]
    ax.scatter(glob[:, 0], glob[:, 1], marker="*", s=160, c="gold", edgecolors="k", zorder=5)
    if local:
        loc = np.asarray(local)
        ax.scatter(loc[:, 0], loc[:, 1], marker="*", s=90, c="white", edgecolors="k", zorder=5)
    if surface.saddles:
        sad = np.asarray(surface.saddles)
        ax.scatter(sad[:, 0], sad[:, 1], marker="x", s=60, c="k", zorder=5)
    starts = np.asarray([p[0] for p in result.paths.values()])
    ax.scatter(starts[:, 0], starts[:, 1], marker="o", s=40, c="k", zorder=5)


def _colors(n: int) -> list:
    """Distinct colours: tab10 up to 10 lines, tab20 beyond (the lectures' 11 optimizers)."""
    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _frame_steps(steps: int, frames: int) -> np.ndarray:
    """At most ``frames`` step indices from 0 to ``steps`` (both included), evenly spread."""
    return np.unique(np.linspace(0, steps, max(2, min(frames, steps + 1))).round().astype(int))


def plot_trajectories(
    result: Trajectories,
    path: PathLike | None = None,
    *,
    gif: PathLike | None = None,
    levels: int = 30,
    log_levels: bool = True,
    resolution: int = 200,
    frames: int = 40,
    fps: int = 10,
    dpi: int = 100,
    title: str | None = None,
) -> Figure:
    """Each optimizer's path on the contour plot of its surface (lectures 01–04's pictures).

    One line per optimizer (with a legend), the global minima as gold stars, local minima
    as white stars, saddles as crosses and the start as a black dot. Contour levels are
    spaced evenly in log(f − min f) by default, which shows Rosenbrock's and Beale's flat
    valleys; ``log_levels=False`` spaces them linearly.

    Args:
      result: what `trajectories` returned.
      path: write a PNG here (folders are created).
      gif: also write an animated GIF here (Pillow, matplotlib's own dependency): the
        paths grow over at most ``frames`` frames at ``fps`` frames per second, so a
        long run stays a small file.
      levels: number of contour levels.
      log_levels: log-spaced levels (default) or linear ones.
      resolution: grid points per axis for the contours.
      frames, fps: the GIF's frame count (subsampled steps) and speed.
      dpi: resolution of the PNG (the GIF uses 2/3 of it).
      title: the axes' title; the surface's name and the step count if None.

    Returns:
      The ``matplotlib.figure.Figure`` (its one axes holds the contour and path lines).
    """
    _check_result("plot_trajectories", result)
    checks = [("levels", levels, 2), ("resolution", resolution, 10), ("frames", frames, 2)]
    for name, value, least in [*checks, ("fps", fps, 1), ("dpi", dpi, 10)]:
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(
                f"plot_trajectories: `{name}` must be an int >= {least}, got {value!r}."
            )
    surface = result.surface
    fig = _new_figure((6.4, 5.2))
    ax = fig.add_subplot()
    _contours(ax, result, levels, log_levels, resolution)
    _mark_points(ax, result)
    lines = {}
    for (name, p), color in zip(result.paths.items(), _colors(len(result.paths)), strict=True):
        (lines[name],) = ax.plot(
            p[:, 0], p[:, 1], marker=".", markersize=3, lw=1.5, color=color, label=name
        )
    (x0, x1), (y0, y1) = surface.bounds
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    noise = f", gradient noise σ = {result.noise_scale:g}" if result.noise_scale else ""
    ax.set_title(title or f"{surface.name}: {result.steps} steps{noise}", fontsize=10)
    ax.legend(fontsize=7, loc="best", framealpha=0.8)
    if path is not None:
        pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi)
    if gif is not None:
        _write_gif(fig, ax, result, lines, gif, frames=frames, fps=fps, dpi=max(10, dpi * 2 // 3))
    return fig


def _write_gif(fig, ax, result: Trajectories, lines, gif, *, frames: int, fps: int, dpi: int):
    """Blits the growing paths onto the contour background drawn once, then writes all
    frames with one shared palette (Pillow stores only each frame's changes)."""
    from PIL import Image

    pathlib.Path(gif).parent.mkdir(parents=True, exist_ok=True)
    canvas, old_dpi = fig.canvas, fig.dpi
    clock = ax.text(0.02, 0.02, "", transform=ax.transAxes, fontsize=8,
                    bbox={"facecolor": "white", "alpha": 0.8, "lw": 0})  # fmt: skip
    images = []
    try:
        fig.set_dpi(dpi)
        for line in lines.values():
            line.set_visible(False)
        canvas.draw()
        background = canvas.copy_from_bbox(fig.bbox)
        for t in _frame_steps(result.steps, frames):
            canvas.restore_region(background)
            for name, line in lines.items():
                p = result.paths[name][: t + 1]
                line.set_data(p[:, 0], p[:, 1])
                line.set_visible(True)
                ax.draw_artist(line)
            clock.set_text(f"t = {t}")
            ax.draw_artist(clock)
            images.append(Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3].copy()))
    finally:
        clock.remove()
        fig.set_dpi(old_dpi)
        for name, line in lines.items():  # the returned figure shows the whole paths
            line.set_data(result.paths[name][:, 0], result.paths[name][:, 1])
            line.set_visible(True)
    palette = images[-1].quantize(colors=255, method=Image.Quantize.FASTOCTREE)
    frames_p = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in images]
    frames_p[0].save(
        gif, save_all=True, append_images=frames_p[1:], duration=round(1000 / fps), loop=0
    )


def plot_losses(
    result: Trajectories, path: PathLike | None = None, *, floor: float = 1e-12, dpi: int = 100
) -> Figure:
    """f(w_t) − f* against the step t on a log scale, one line per optimizer.

    f* is the surface's global minimum value; gaps below ``floor`` (exact convergence in
    float32) are drawn at ``floor``. A path that settles in a local minimum levels off
    at that minimum's gap.

    Args:
      result: what `trajectories` returned.
      path: write a PNG here (folders are created).
      floor: the smallest gap drawn, > 0.
      dpi: the PNG's resolution.

    Returns:
      The ``matplotlib.figure.Figure``.
    """
    _check_result("plot_losses", result)
    if not (isinstance(floor, int | float) and floor > 0):
        raise ValueError(f"plot_losses: `floor` must be a number > 0, got {floor!r}.")
    fig = _new_figure((6.4, 4.2))
    ax = fig.add_subplot()
    steps = np.arange(result.steps + 1)
    for (name, gap), color in zip(result.gaps().items(), _colors(len(result.paths)), strict=True):
        ax.plot(steps, np.maximum(gap.astype(np.float64), floor), lw=1.2, color=color, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("step t")
    ax.set_ylabel("f(w_t) − f*")
    ax.set_title(f"{result.surface.name}: loss gap", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    if path is not None:
        pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi)
    return fig
