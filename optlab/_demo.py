"""The demo main job: every optimizer's path on lecture 02's quadratic.

f(x, y) = 5x² + 2xy + 3y², whose gradient at (1, 1) is (12, 8) (lecture 02); its minimum
is (0, 0). Each optimizer's whole path is one compiled ``lax.scan``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

import optlab

# name -> (factory of the rate, rate): every demo form of the registry's optimizers
DEMO_OPTIMIZERS: dict[str, tuple[Callable[[float], optax.GradientTransformation], float]] = {
    form.label: (functools.partial(entry.factory, **form.args), form.learning_rate)
    for entry in optlab.OPTIMIZERS.values()
    for form in entry.demo
}


def lecture02_quadratic(w: jax.Array) -> jax.Array:
    x, y = w[0], w[1]
    return 5 * x**2 + 2 * x * y + 3 * y**2


def optimizer_path(tx: optax.GradientTransformation, start: jax.Array, steps: int) -> jax.Array:
    """The iterates w_0 … w_steps of ``tx`` on the quadratic, in one compiled scan."""

    @jax.jit
    def run(w0):
        def step(carry, _):
            w, state = carry
            updates, state = tx.update(jax.grad(lecture02_quadratic)(w), state, w)
            w = optax.apply_updates(w, updates)
            return (w, state), w

        _, path = jax.lax.scan(step, (w0, tx.init(w0)), length=steps)
        return jnp.concatenate([w0[None], path])

    return run(start)


def run_demo(
    steps: int = 50, learning_rate: float | None = None, names: list[str] | None = None
) -> dict[str, np.ndarray]:
    """Prints each optimizer's path from (1, 1); returns {name: path array (steps+1, 2)}."""
    chosen = names or list(DEMO_OPTIMIZERS)
    unknown = [n for n in chosen if n not in DEMO_OPTIMIZERS]
    if unknown:
        raise ValueError(
            f"--optimizer: unknown {unknown}; choose from {', '.join(DEMO_OPTIMIZERS)}"
        )
    rates = {n: DEMO_OPTIMIZERS[n][1] if learning_rate is None else learning_rate for n in chosen}
    optimizers = {n: DEMO_OPTIMIZERS[n][0](rates[n]) for n in chosen}  # validates before output
    start = jnp.array([1.0, 1.0])
    grad = np.asarray(jax.grad(lecture02_quadratic)(start))
    print(f"f(x, y) = 5x² + 2xy + 3y² (lecture 02), from (1, 1) where ∇f = {grad}; min at (0, 0)")
    shown = sorted({t for t in (0, 1, 5, 20, steps) if t <= steps})
    paths = {}
    for name, tx in optimizers.items():
        path = np.asarray(optimizer_path(tx, start, steps))
        paths[name] = path
        cells = "  ".join(f"t={t}: ({path[t, 0]:+.3f}, {path[t, 1]:+.3f})" for t in shown)
        final = float(lecture02_quadratic(path[-1]))
        print(f"{name:<20} lr={rates[name]:<5g} {cells}  f={final:.1e}")
    return paths
