"""The layer-wise trust ratio shared by LARS and LAMB (``optlab.optimizers._trust_ratio``):
each layer's step rescaled by the ratio of its weight norm to its update norm, and the
helpers of that ratio."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from optlab import _validation
from optlab.optimizers._base import (
    MaskOrFn,
    abs_sq,
    scalar_like,
)


def _flags(mask: MaskOrFn, params: Any) -> Any:
    """A Python bool per leaf of ``params``: ``mask`` is a bool, a tree of bools like the
    params or a prefix of it, a function of the params returning one, or None (all True)."""
    if mask is None:
        return jax.tree.map(lambda _: True, params)
    flags = mask(params) if callable(mask) else mask
    return jax.tree.map(lambda flag, sub: jax.tree.map(lambda _: bool(flag), sub), flags, params)


def _norm(x: jax.Array) -> jax.Array:
    """‖x‖₂ of the flattened leaf (real, |x| for complex); float16/bfloat16 are summed in
    float32 (the result is cast back to the leaf's dtype by the caller)."""
    if jnp.issubdtype(x.dtype, jnp.floating) and jnp.finfo(x.dtype).bits < 32:
        x = x.astype(jnp.float32)
    return jnp.sqrt(jnp.sum(abs_sq(x)))


def _ratio(numerator: jax.Array, denominator: jax.Array, ok: jax.Array, leaf: jax.Array):
    """numerator/denominator where ``ok``, else 1, in ``leaf``'s dtype (no 0/0 is formed,
    so the unused branch has no NaN, not even in a derivative)."""
    safe = jnp.where(ok, denominator, jnp.ones_like(denominator))
    ratio = jnp.where(ok, numerator / safe, jnp.ones_like(numerator))
    return ratio.astype(leaf.dtype)


def _need_params(owner: str, params: Any) -> None:
    if params is None:
        raise ValueError(f"{owner}: `update` needs `params` (the trust ratio uses ‖θ‖).")


# ----------------------------------------------------------------------------------------
# The trust ratio on its own (optax.scale_by_trust_ratio)


def scale_by_trust_ratio(
    min_norm: float = 0.0,
    trust_coefficient: float = 1.0,
    eps: float = 0.0,
) -> optax.GradientTransformationExtraArgs:
    r"""Scales each leaf's update u by its trust ratio ρ = c·‖θ‖/(‖u‖ + ε).

    ::

        n_θ ← max(‖θ‖, min_norm),  n_u ← max(‖u‖, min_norm)
        ρ   ← c·n_θ / (n_u + ε)     if n_θ > 0 and n_u > 0,  else 1
        u   ← ρ·u

    Symbols → arguments: c = ``trust_coefficient``, ε = ``eps``. The norms are those of
    each flattened leaf (a leaf is a layer). ρ = 1 where either norm is zero keeps a
    zero-initialized layer (θ = 0) trainable and a layer without gradient untouched.
    Names, defaults, state (``optax.EmptyState``) and values are ``optax.scale_by_trust_ratio``'s.

    Args:
      min_norm: a floor for both norms (0: none).
      trust_coefficient: c ≥ 0.
      eps: ε ≥ 0, added to the update norm.

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its ``update`` needs ``params``.

    Example:
      >>> import jax.numpy as jnp, numpy as np, optlab
      >>> tx = optlab.scale_by_trust_ratio()
      >>> params = jnp.array([3.0, 4.0])  # ‖θ‖ = 5
      >>> u, _ = tx.update(jnp.array([0.0, 0.5]), tx.init(params), params)
      >>> print(np.asarray(u, float))  # rescaled to the norm of θ
      [0. 5.]
    """
    owner = "scale_by_trust_ratio"
    _validation.check_non_negative(owner, "min_norm", min_norm, "Use 0 for no floor.")
    _validation.check_non_negative(owner, "trust_coefficient", trust_coefficient, "Use e.g. 1.")
    _validation.check_non_negative(owner, "eps", eps, "Use e.g. 0.")

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        _need_params(owner, params)

        def scale(u, p):
            w_norm, u_norm = _norm(p), _norm(u)
            floor = scalar_like(min_norm, w_norm)
            w_norm, u_norm = jnp.maximum(w_norm, floor), jnp.maximum(u_norm, floor)
            ok = (w_norm > 0) & (u_norm > 0)
            c = scalar_like(trust_coefficient, w_norm)
            return _ratio(c * w_norm, u_norm + scalar_like(eps, u_norm), ok, u) * u

        return jax.tree.map(scale, updates, params), state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


# ----------------------------------------------------------------------------------------
# LARS
