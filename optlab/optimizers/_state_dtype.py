"""Keep an optimizer's state in a smaller dtype (memory), computing in the params' dtype."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax


def with_state_dtype(
    tx: optax.GradientTransformation, dtype: Any
) -> optax.GradientTransformationExtraArgs:
    """``tx`` whose floating-point state is stored as ``dtype`` (e.g. ``jnp.bfloat16``).

    Before each update the state is cast up to the gradients' dtype, the update is computed
    there, and the new state is cast back down: Adam's m and v in bfloat16 halve the state's
    memory at the price of bfloat16 rounding of the stored moments (8 bits of mantissa).
    Integer leaves (step counters) and scalars (injected hyper-parameters, running sums)
    are left alone: they cost nothing, and β2 = 0.999 would round to 1 in bfloat16. Like
    ``mu_dtype`` of ``optax.adam``, but for any transformation.

    Example:
      >>> import jax.numpy as jnp, optlab
      >>> tx = optlab.with_state_dtype(optlab.adam(1e-3), jnp.bfloat16)
      >>> state = tx.init(jnp.zeros(3))
        >>> import jax
      >>> sorted({str(x.dtype) for x in jax.tree.leaves(state)})
      ['bfloat16', 'int32']
    """
    dtype = jnp.dtype(dtype)

    def stored(x) -> bool:
        # Scalars keep their dtype: injected hyper-parameters (β2 = 0.999 is 1.0 in
        # bfloat16), schedule-free's weight sum, Prodigy's d cost nothing to keep exact.
        return jnp.issubdtype(x.dtype, jnp.floating) and jnp.ndim(x) > 0

    def down(tree):
        return jax.tree.map(lambda x: x.astype(dtype) if stored(x) else x, tree)

    def init_fn(params):
        return down(tx.init(params))

    def update_fn(updates, state, params=None, **extra_args):
        leaves = jax.tree.leaves(updates)
        compute = leaves[0].dtype if leaves else jnp.float32
        up = jax.tree.map(lambda x: x.astype(compute) if stored(x) else x, state)
        updates, new_state = optax.with_extra_args_support(tx).update(
            updates, up, params, **extra_args
        )
        return updates, down(new_state)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
