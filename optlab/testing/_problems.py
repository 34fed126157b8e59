"""Small objectives with known minima, real or complex (optax's test targets)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp


def _abs_sq(x: jax.Array) -> jax.Array:
    return (jnp.conj(x) * x).real


def parabola(dtype: Any = jnp.float32) -> tuple[jax.Array, jax.Array, Callable]:
    """f(x) = Σ |x − x*|² from (−1, 10, 1) to x* = (1, −1, 1) (times 1+i if complex)."""
    start = jnp.array([-1.0, 10.0, 1.0], dtype=dtype)
    target = jnp.array([1.0, -1.0, 1.0], dtype=dtype)
    if jnp.iscomplexobj(start):
        target = target * (1 + 1j)

    def objective(x):
        return jnp.sum(_abs_sq(x - target))

    return start, target, objective


def rosenbrock(dtype: Any = jnp.float32) -> tuple[jax.Array, jax.Array, Callable]:
    """f(x, y) = |a − x|² + 100·|y − x²|² from (0, 0) to (a, a²), a = 1 (or 1+i)."""
    a = 1.0 + 1j if jnp.iscomplexobj(jnp.zeros((), dtype)) else 1.0
    start = jnp.zeros(2, dtype)
    target = jnp.array([a, a**2], dtype=dtype)

    def objective(x):
        return _abs_sq(a - x[0]) + 100.0 * _abs_sq(x[1] - x[0] ** 2)

    return start, target, objective


def descent_gradient(objective: Callable, params: Any) -> Any:
    """jax.grad, conjugated for complex parameters (optax's convention for updates)."""
    return jax.tree.map(jnp.conj, jax.grad(objective)(params))
