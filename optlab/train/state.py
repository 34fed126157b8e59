"""The training state: a pytree of arrays, nothing else (it jits, shards and checkpoints)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


class TrainState(NamedTuple):
    """``step``: updates applied; ``params``; ``opt_state``; ``rng``: the run's base key
    (raw uint32, per-step keys are ``fold_in(rng, step)``); ``model_state``: non-trainable
    collections such as batch-norm statistics ({} when none); ``first_nonfinite``: the step
    and layer of the first non-finite gradient (−1, −1 while all is finite); ``skipped``:
    updates skipped because a gradient was non-finite; ``loss_scale``, ``good_steps``:
    dynamic loss scaling for float16 (1.0 and unused otherwise)."""

    step: jax.Array
    params: Any
    opt_state: Any
    rng: jax.Array
    model_state: Any
    first_nonfinite: jax.Array
    skipped: jax.Array
    loss_scale: jax.Array
    good_steps: jax.Array


def create_state(
    params: Any, opt_state: Any, seed: int, model_state: Any = None, loss_scale: float = 1.0
) -> TrainState:
    return TrainState(
        step=jnp.zeros([], jnp.int32),
        params=params,
        opt_state=opt_state,
        rng=jax.random.PRNGKey(seed),
        model_state={} if model_state is None else model_state,
        first_nonfinite=jnp.full([2], -1, jnp.int32),
        skipped=jnp.zeros([], jnp.int32),
        loss_scale=jnp.asarray(loss_scale, jnp.float32),
        good_steps=jnp.zeros([], jnp.int32),
    )


@jax.jit
def _all_finite(leaves: list[jax.Array]) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def is_finite(tree: Any) -> jax.Array:
    """True when every floating leaf of ``tree`` is finite: one compiled reduction.

    Compiled, not eager: on a sharded state each eager per-leaf reduction would be its own
    collective program (about 90 for a small GPT), and on CPU devices sharing two cores
    XLA's rendezvous of so many small programs timed out ("only 3 of 8 threads arrived")
    while a checkpoint was being saved."""
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    if not leaves:
        return jnp.ones([], bool)
    return _all_finite(leaves)
