"""Pieces every optimizer shares: the step size, dtype handling, the step counter.

The learning rate is a float or a schedule ``count -> rate``. The counter ``count``
is the number of updates already applied, so the first update reads ``schedule(0)``
(optax's convention). Update rules themselves live in the per-algorithm modules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab import _validation

ScalarOrSchedule = float | jax.Array | Callable[[jax.Array], jax.Array]
# A mask: None (every leaf), a pytree of bools like the params, or a function params -> that.
MaskOrFn = Any | Callable[[Any], Any] | None


def resolve_mask(mask: MaskOrFn, params: Any) -> Any:
    """The pytree of Python bools that ``mask`` selects for ``params`` (None: all True)."""
    if mask is None:
        return jax.tree.map(lambda _: True, params)
    return mask(params) if callable(mask) else mask


def learning_rate_at(learning_rate: ScalarOrSchedule, count: jax.Array) -> jax.Array:
    """The step size for the update that follows ``count`` earlier updates."""
    return learning_rate(count) if callable(learning_rate) else learning_rate


def scalar_like(value: Any, leaf: jax.Array) -> jax.Array:
    """``value`` as a 0-d array of ``leaf``'s dtype, so no update changes a dtype."""
    return jnp.asarray(value).astype(leaf.dtype)


def abs_sq(x: jax.Array) -> jax.Array:
    """g ⊙ g for real g, |g|² = conj(g)·g for complex g (optax's convention)."""
    return (jnp.conj(x) * x).real if jnp.iscomplexobj(x) else x * x


def zeros_like(params: Any) -> Any:
    """A state buffer with the params' structure, shape and dtype (works on ShapeDtypeStructs)."""
    return jax.tree.map(lambda p: jnp.zeros(p.shape, p.dtype), params)


def init_count() -> jax.Array:
    return jnp.zeros([], jnp.int32)


def next_count(count: jax.Array) -> jax.Array:
    """``count + 1`` that saturates instead of overflowing int32."""
    return optax.safe_increment(count)


class ScaleByLearningRateState(NamedTuple):
    """Counts updates so that a schedule knows its step."""

    count: jax.Array


def scale_by_learning_rate(
    learning_rate: ScalarOrSchedule, *, flip_sign: bool = True
) -> optax.GradientTransformationExtraArgs:
    """Multiplies updates by ``-learning_rate`` (or ``+`` with ``flip_sign=False``).

    ``learning_rate`` is a float or a schedule ``count -> rate`` evaluated at the
    number of updates already made (0 for the first update). The factor is cast to
    each update's dtype, so bfloat16 stays bfloat16.

    Example:
      >>> import jax.numpy as jnp, numpy as np, optlab
      >>> tx = optlab.scale_by_learning_rate(0.1)
      >>> u, _ = tx.update(jnp.ones(2), tx.init(jnp.zeros(2)))
      >>> print(u)
      [-0.1 -0.1]
    """
    _validation.check_learning_rate("scale_by_learning_rate", learning_rate)
    sign = -1.0 if flip_sign else 1.0

    def init_fn(params):
        del params
        return ScaleByLearningRateState(count=init_count())

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        step_size = sign * learning_rate_at(learning_rate, state.count)
        updates = jax.tree.map(lambda u: scalar_like(step_size, u) * u, updates)
        return updates, ScaleByLearningRateState(count=next_count(state.count))

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def with_learning_rate(
    direction: optax.GradientTransformation, learning_rate: ScalarOrSchedule
) -> optax.GradientTransformationExtraArgs:
    """``direction`` followed by the step ``-learning_rate · direction``."""
    return optax.chain(direction, scale_by_learning_rate(learning_rate))
