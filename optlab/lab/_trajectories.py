"""Several optimizers' paths on a 2-D surface, all in one compiled program."""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optlab.lab._surfaces import Surface


@dataclasses.dataclass(frozen=True, eq=False)
class Trajectories:
    """The iterates and losses of each optimizer from one start.

    Attributes:
      surface: the `Surface` they ran on.
      paths: ``{name: array (steps + 1, 2)}``, w_0 (the start) … w_steps.
      losses: ``{name: array (steps + 1,)}``, the exact f(w_t) (never the noisy estimate).
      steps: the number of updates.
      noise_scale: σ of the gradient noise (0: exact gradients).
      seed: the noise's seed.
    """

    surface: Surface
    paths: dict[str, np.ndarray]
    losses: dict[str, np.ndarray]
    steps: int
    noise_scale: float = 0.0
    seed: int = 0

    @property
    def names(self) -> list[str]:
        return list(self.paths)

    def gaps(self) -> dict[str, np.ndarray]:
        """``{name: f(w_t) − f*}`` per step, f* the surface's global minimum value."""
        return {n: loss - self.surface.f_star for n, loss in self.losses.items()}

    def steps_to(self, threshold: float) -> dict[str, int | None]:
        """``{name: first t with f(w_t) − f* ≤ threshold}``, None if never reached."""
        if not (isinstance(threshold, numbers.Real) and threshold >= 0):
            raise ValueError(f"steps_to: `threshold` must be a number >= 0, got {threshold!r}.")
        reached = {}
        for name, gap in self.gaps().items():
            hits = np.flatnonzero(gap <= threshold)
            reached[name] = int(hits[0]) if hits.size else None
        return reached

    def final_distance(self) -> dict[str, float]:
        """``{name: ‖w_steps − w*‖}``, w* the nearest global minimum (inf if not finite)."""
        minima = np.asarray(self.surface.global_minima, np.float64)
        out = {}
        for name, path in self.paths.items():
            d = np.linalg.norm(minima - path[-1].astype(np.float64), axis=1).min()
            out[name] = float(d) if np.isfinite(d) else math.inf
        return out

    def final_loss(self) -> dict[str, float]:
        """``{name: f(w_steps)}``."""
        return {name: float(loss[-1]) for name, loss in self.losses.items()}


def _path(tx, fn, w0, key, noise_scale, steps: int, noisy: bool):
    """One optimizer's scan: (w_0 … w_steps, f(w_0) … f(w_steps))."""
    value_and_grad = jax.value_and_grad(fn)
    extra_args = isinstance(tx, optax.GradientTransformationExtraArgs)

    def step(carry, t):
        w, state = carry
        value, grad = value_and_grad(w)
        if noisy:  # the same noise sequence for every optimizer (common random numbers)
            noise = jax.random.normal(jax.random.fold_in(key, t), w.shape, w.dtype)
            grad = grad + noise_scale.astype(w.dtype) * noise
        if extra_args:  # L-BFGS's line search needs f itself (optlab.lbfgs, optax.lbfgs)
            updates, state = tx.update(grad, state, w, value=value, grad=grad, value_fn=fn)
        else:
            updates, state = tx.update(grad, state, w)
        w = optax.apply_updates(w, updates)
        return (w, state), (w, fn(w))

    _, (path, losses) = jax.lax.scan(step, (w0, tx.init(w0)), jnp.arange(steps))
    return jnp.concatenate([w0[None], path]), jnp.concatenate([fn(w0)[None], losses])


@functools.lru_cache(maxsize=32)
def _compiled(fn, txs: tuple, steps: int, noisy: bool):
    """One jitted program running every optimizer (a Python loop of scans inside jit).

    Cached on (surface function, transformations, steps, noisy): a second call with the
    same optimizer objects reuses the program for any start, seed and noise scale.
    """

    @jax.jit
    def run(w0, seed, noise_scale):
        key = jax.random.key(seed)
        return [_path(tx, fn, w0, key, noise_scale, steps, noisy) for tx in txs]

    return run


def _check(surface, optimizers, start, steps, noise_scale, seed) -> np.ndarray:
    if not isinstance(surface, Surface):
        raise ValueError(
            f"trajectories: `surface` must be an optlab.lab.Surface, got {type(surface)!r}; "
            "e.g. optlab.lab.rosenbrock()."
        )
    if not isinstance(optimizers, Mapping) or not optimizers:
        raise ValueError(
            "trajectories: `optimizers` must be a non-empty mapping {name: transformation}, "
            "e.g. {'sgd': optlab.sgd(0.05)}."
        )
    for name, tx in optimizers.items():
        if not isinstance(name, str) or not hasattr(tx, "init") or not hasattr(tx, "update"):
            raise ValueError(
                f"trajectories: `optimizers[{name!r}]` must be an optax.GradientTransformation "
                f"under a str name, got {type(tx).__name__}."
            )
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise ValueError(f"trajectories: `steps` must be an int >= 1, got {steps!r}.")
    if not (isinstance(noise_scale, numbers.Real) and math.isfinite(noise_scale)) or (
        noise_scale < 0
    ):
        raise ValueError(
            f"trajectories: `noise_scale` must be a finite number >= 0, got {noise_scale!r}."
        )
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**32:
        raise ValueError(f"trajectories: `seed` must be an int in [0, 2**32), got {seed!r}.")
    w0 = np.asarray(surface.start if start is None else start)
    if w0.shape != (2,) or not np.issubdtype(w0.dtype, np.number) or not np.isfinite(w0).all():
        raise ValueError(
            f"trajectories: `start` must be a finite point (x, y) of shape (2,), got {start!r}."
        )
    return w0


def trajectories(
    surface: Surface,
    optimizers: Mapping[str, optax.GradientTransformation],
    start: Sequence[float] | np.ndarray | None = None,
    steps: int = 100,
    *,
    noise_scale: float = 0.0,
    seed: int = 0,
) -> Trajectories:
    """Runs every optimizer from ``start`` for ``steps`` updates on ``surface``.

    All optimizers run in one ``jax.jit`` program, each as a ``lax.scan`` of
    ``w ← w + update(g, state, w)``. With ``noise_scale`` σ > 0 the gradient is
    g = ∇f(w_t) + σ·ε_t, ε_t ~ N(0, I) drawn from ``fold_in(key(seed), t)``: lectures 03
    and 04's noisy steps, the same noise for every optimizer. A
    ``GradientTransformationExtraArgs`` also receives ``value=f(w)``, ``grad=g`` and
    ``value_fn=f``, which L-BFGS's line search needs (``optlab.lbfgs``, ``optax.lbfgs``);
    its line search evaluates the exact f, so noise only perturbs the gradients it sees.

    Args:
      surface: a `Surface`, e.g. ``optlab.lab.rosenbrock()``.
      optimizers: ``{name: transformation}``, e.g. ``{"sgd": optlab.sgd(0.05)}``.
      start: the start (x, y); the surface's default if None. Its float dtype is kept
        (float32 for ints).
      steps: number of updates, >= 1.
      noise_scale: σ of the gradient noise, >= 0.
      seed: the noise's seed.

    Returns:
      `Trajectories` with ``paths`` (steps + 1, 2) and ``losses`` (steps + 1,) per name.

    Example:
      >>> import optlab
      >>> from optlab.lab import lecture02_quadratic, trajectories
      >>> result = trajectories(lecture02_quadratic(), {"sgd": optlab.sgd(0.05)}, steps=50)
      >>> result.paths["sgd"].shape, result.steps_to(1e-3)["sgd"]
      ((51, 2), 12)
    """
    w0 = _check(surface, optimizers, start, steps, noise_scale, seed)
    dtype = w0.dtype if np.issubdtype(w0.dtype, np.floating) else np.float32
    dtype = jax.dtypes.canonicalize_dtype(dtype)  # float64 only with jax_enable_x64
    names = list(optimizers)
    key = (surface.fn, tuple(optimizers.values()), int(steps), noise_scale > 0)
    try:
        run = _compiled(*key)
    except TypeError:  # an unhashable transformation: compile without the cache
        run = _compiled.__wrapped__(*key)
    outputs = run(np.asarray(w0, dtype), np.uint32(seed), np.asarray(noise_scale, dtype))
    outputs = jax.device_get(outputs)
    return Trajectories(
        surface=surface,
        paths={n: np.asarray(p) for n, (p, _) in zip(names, outputs, strict=True)},
        losses={n: np.asarray(loss) for n, (_, loss) in zip(names, outputs, strict=True)},
        steps=int(steps),
        noise_scale=float(noise_scale),
        seed=int(seed),
    )
