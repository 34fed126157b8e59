"""The pieces the wrappers share (``optlab.optimizers._wrappers``, ``_skip_spikes``): the inner
transformation with extra arguments, copies and selects over trees, the debiased EMA weight."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from optlab import _validation


def _inner(tx: Any, owner: str, name: str) -> optax.GradientTransformationExtraArgs:
    if not (hasattr(tx, "init") and hasattr(tx, "update")):
        _validation.fail(
            owner,
            name,
            tx,
            "an optax.GradientTransformation",
            "Pass e.g. optlab.adam(1e-3) or optax.sgd(0.1).",
        )
    return optax.with_extra_args_support(tx)


def _copy(params: Any, dtype: Any = None) -> Any:
    """A fresh buffer per leaf (state and params must not alias: a trainer donates both)."""
    return jax.tree.map(lambda p: jnp.array(p, dtype=dtype or p.dtype, copy=True), params)


def _where(cond: jax.Array, new: Any, old: Any) -> Any:
    """Leafwise ``new if cond else old`` (a traced cond: no recompilation)."""
    return jax.tree.map(lambda n, o: jnp.where(cond, n, o).astype(jnp.asarray(n).dtype), new, old)


def _need_params(owner: str, params: Any) -> None:
    if params is None:
        raise ValueError(
            f"{owner}: `update` needs `params` (tx.update(grads, state, params)); the "
            "wrapper forms θ + u from them."
        )


def _debiased_weight(decay: Any, n: jax.Array, dtype: Any) -> jax.Array:
    """w_n = (1 − β)/(1 − β^n), the weight of the n-th value in a bias-corrected EMA
    (w_1 = 1). At β = 1 (a traced β rounded up, e.g. 0.999 in bfloat16) its limit 1/n: the
    uniform average, instead of 0/0."""
    beta = jnp.asarray(decay, dtype)
    n = jnp.asarray(n).astype(dtype)
    safe = jnp.where(beta == 1, jnp.zeros_like(beta), beta)
    return jnp.where(beta == 1, 1 / n, (1 - safe) / (1 - safe**n))


def _apply(p: jax.Array, u: jax.Array) -> jax.Array:
    """θ + u in θ's dtype, as ``optax.apply_updates``."""
    return jnp.asarray(p + u).astype(jnp.asarray(p).dtype)


# ----------------------------------------------------------------------------- lookahead
