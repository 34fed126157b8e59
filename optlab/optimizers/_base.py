"""Pieces every optimizer shares: the step size, dtype handling, the step counter.

The learning rate is a float or a schedule ``count -> rate``. The counter ``count``
is the number of updates already applied, so the first update reads ``schedule(0)``
(optax's convention). Update rules themselves live in the per-algorithm modules; the
``like`` check, moment buffers and the decoupled weight-decay step are shared here.
"""

from __future__ import annotations

import numbers
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


LIBRARIES = {"optax": "optax", "torch": "torch.optim"}


def check_like(owner: str, like: Any, available: tuple[str, ...]) -> None:
    """``like`` is None (the paper) or one of the libraries in ``available``."""
    if like is None or like in available:
        return
    choices = (None, *available)
    if like in LIBRARIES:
        raise ValueError(
            f"{owner}: like={like!r} is not available: {LIBRARIES[like]} has no {owner}. "
            f"Pass one of {choices}."
        )
    _validation.fail(owner, "like", like, f"one of {choices}", "None is the paper's form.")


def moment_zeros(params: Any, dtype: Any = None) -> Any:
    """Zeros like ``params`` (works on ShapeDtypeStructs), in ``dtype`` if given."""
    return jax.tree.map(lambda p: jnp.zeros(p.shape, dtype or p.dtype), params)


def unzip(like_tree: Any, tree_of_tuples: Any, n: int) -> tuple[Any, ...]:
    """Splits a tree (structured like ``like_tree``) of n-tuples into n trees."""
    treedef = jax.tree.structure(like_tree)
    leaves = treedef.flatten_up_to(tree_of_tuples)
    return tuple(treedef.unflatten([leaf[i] for leaf in leaves]) for i in range(n))


def is_zero(value: Any) -> bool:
    """A concrete Python/NumPy 0 (never a traced value): the term can be left out."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and value == 0


def _decay_flags(mask: MaskOrFn, params: Any) -> Any:
    """A bool per leaf of ``params``; ``mask`` may be a full tree, a prefix, or a function."""
    if mask is None:
        return jax.tree.map(lambda _: True, params)
    flags = mask(params) if callable(mask) else mask
    return jax.tree.map(lambda flag, sub: jax.tree.map(lambda _: flag, sub), flags, params)


class DecoupledDecayState(NamedTuple):
    """``count``: updates made, for the learning-rate and weight-decay schedules."""

    count: jax.Array


def decoupled_decay(
    owner: str,
    learning_rate: ScalarOrSchedule,
    weight_decay: ScalarOrSchedule,
    mask: MaskOrFn = None,
    *,
    proximal: bool = False,
) -> optax.GradientTransformationExtraArgs:
    """Direction d → ``−α_t·(d + λ_t·θ)``, or ``−α_t·(d + λ_t·θ)/(1 + λ_t·α_t)`` if
    ``proximal`` (θ ← (θ − α_t·d)/(1 + λ_t·α_t), Adan's step).

    α_t, λ_t: floats or schedules of the number of updates made (0 for the first). ``mask``
    (a tree of bools like the params, a prefix of it, or a function of the params) selects
    the leaves that decay; the others get ``−α_t·d``. ``update`` needs ``params`` unless
    λ is the constant 0 (as ``optax.add_decayed_weights`` + ``scale_by_learning_rate``).
    """
    _validation.check_learning_rate(owner, learning_rate)
    if not callable(weight_decay):
        _validation.check_non_negative(owner, "weight_decay", weight_decay, "Use e.g. 1e-3.")

    def init_fn(params):
        del params
        return DecoupledDecayState(count=init_count())

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        alpha = learning_rate_at(learning_rate, state.count)
        new_state = DecoupledDecayState(count=next_count(state.count))
        if is_zero(weight_decay):
            return jax.tree.map(lambda d: -(scalar_like(alpha, d) * d), updates), new_state
        if params is None:
            raise ValueError(f"{owner}: `update` needs `params` for the weight decay term.")
        lam = learning_rate_at(weight_decay, state.count)

        def step(d, p, decays):
            if not decays:
                return -(scalar_like(alpha, d) * d)
            u = scalar_like(alpha, d) * (d + scalar_like(lam, p) * p)
            if proximal:
                u = u / scalar_like(1.0 + lam * alpha, u)
            return -u

        return jax.tree.map(step, updates, params, _decay_flags(mask, params)), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def real_dtype(dtype: Any) -> Any:
    """float32 for complex64 (|g|² is real), the dtype itself otherwise."""
    return jnp.finfo(dtype).dtype if jnp.issubdtype(dtype, jnp.complexfloating) else dtype


def scalar_dtype(params: Any) -> Any:
    """The dtype of an optimizer's scalar state (sums, step-size estimates): the widest real
    dtype of the params, at least float32 (bfloat16 params keep float32 scalars)."""
    dtype = jnp.dtype(jnp.float32)
    for leaf in jax.tree.leaves(params):
        if jnp.issubdtype(leaf.dtype, jnp.inexact):
            dtype = jnp.promote_types(dtype, real_dtype(leaf.dtype))
    return dtype
