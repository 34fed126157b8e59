"""Spike skipping around any optimizer: a step whose loss or gradient norm jumps far above its
running statistics is skipped (``skip_spikes``). Lookahead and the EMA of the weights are in
``optlab.optimizers._wrappers``."""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab import _validation
from optlab.optimizers._base import abs_sq, init_count, next_count
from optlab.optimizers._wrapper_base import (
    _debiased_weight,
    _inner,
    _where,
)

SPIKE_METRICS = ("loss", "grad_norm")


class SkipSpikesState(NamedTuple):
    """``inner_state``: the wrapped optimizer's state (unchanged by a skipped step);
    ``mean``, ``var``: μ, σ², the running mean and variance of the metric over the accepted
    steps; ``count``: update calls; ``skipped``: how many of them were skipped."""

    inner_state: Any
    mean: jax.Array
    var: jax.Array
    count: jax.Array
    skipped: jax.Array


def _stats_dtype(params: Any) -> Any:
    """The widest real dtype of the params, at least float32."""
    dtype = jnp.dtype(jnp.float32)
    for leaf in jax.tree.leaves(params):
        if jnp.issubdtype(leaf.dtype, jnp.inexact):
            dtype = jnp.promote_types(dtype, jnp.finfo(leaf.dtype).dtype)
    return dtype


def _global_norm(tree: Any, dtype: Any) -> jax.Array:
    """‖g‖₂ over all leaves, summed in ``dtype`` (float32 at least: no bfloat16 overflow)."""
    total = jnp.zeros([], dtype)
    for leaf in jax.tree.leaves(tree):
        total = total + jnp.sum(abs_sq(leaf).astype(dtype))
    return jnp.sqrt(total)


def skip_spikes(
    optimizer: optax.GradientTransformation,
    k: float = 6.0,
    decay: float = 0.99,
    warmup: int = 50,
    *,
    metric: str = "loss",
) -> optax.GradientTransformationExtraArgs:
    r"""``optimizer``, skipping the steps whose loss or gradient norm spikes.

    ::

        x_t ← the loss (update's ``value=``)  or  ‖g_t‖₂ (the global norm of the gradients)
        skip step t  if  x_t is not finite,  or  t > warmup and n ≥ 1 and x_t > μ + k·σ
        accepted:  u_t ← optimizer's update;  n ← n + 1,  w ← (1 − β)/(1 − β^n)
                   δ ← x_t − μ;  μ ← μ + w·δ;  σ² ← (1 − w)·(σ² + w·δ²)
        skipped:   u_t ← 0;  the optimizer's state, μ, σ² stay as they are

    Symbols → arguments: k = ``k``, β = ``decay``, ``warmup`` (steps counted from 1; none of
    the first ``warmup`` is skipped unless non-finite), ``metric`` ∈ {"loss", "grad_norm"};
    n: the accepted steps so far. μ and σ² are the exponentially weighted mean and
    (population) variance of the accepted x's, with weight β^{n−i} on the i-th of them
    (West's incremental weighted statistics; w_1 = 1, so no bias towards 0 at the start).
    This is the spike skipping of large-model trainers (PaLM restarts before a spike and
    skips its batches; OLMo skips a step whose loss or gradient norm is more than 6 standard
    deviations above a running window of earlier ones); optax and torch.optim have none.

    A NaN or ±inf metric is always skipped: it would poison μ and σ² (all later tests would
    be false) and the weights. A skipped step leaves the weights, and hence the next
    gradient on the same batch, as they were: with a deterministic objective a skip repeats
    forever, and a lasting rise of the metric (say by more than k·σ) is skipped from then on,
    since the statistics learn from accepted steps only. ``state.skipped`` counts the skips
    (log it); raise k, or re-initialize the wrapper's statistics, if it grows steadily.

    Args:
      optimizer: the wrapped optimizer (an ``optax.GradientTransformation``).
      k: the threshold in standard deviations, > 0.
      decay: β in [0, 1), the statistics' decay.
      warmup: the first steps, ≥ 0, that are never skipped (for a finite metric).
      metric: ``"loss"`` (``update(..., value=loss)`` required) or ``"grad_norm"``.

    Returns:
      An ``optax.GradientTransformationExtraArgs``; with ``metric="loss"`` its ``update``
      needs ``value=`` (the loss at the params the gradients were taken at).

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from optlab.optimizers._skip_spikes import skip_spikes
      >>> tx = skip_spikes(optax.sgd(0.1), k=3.0, warmup=3)
      >>> params = jnp.zeros(2)
      >>> state = tx.init(params)
      >>> for loss in (1.0, 1.1, 0.9, 1.0, 50.0):
      ...     updates, state = tx.update(jnp.ones(2), state, params, value=jnp.asarray(loss))
      >>> print(int(state.skipped), updates)  # the loss of 50 is skipped: zero update
      1 [0. 0.]

    References:
      Chowdhery et al., "PaLM: scaling language modeling with pathways", JMLR 2023 (§5.1,
      loss spikes); Groeneveld et al., "OLMo: accelerating the science of language models",
      ACL 2024, and OLMo 2 (2024); West, "Updating mean and variance estimates: an improved
      method", Commun. ACM 22(9), 1979.
    """
    _validation.check_choice("skip_spikes", "metric", metric, SPIKE_METRICS)
    if _validation.is_concrete_number(k) and not k > 0:
        _validation.fail("skip_spikes", "k", k, "> 0", "Large-model trainers use k = 6.")
    _validation.check_unit_interval("skip_spikes", "decay", decay, "Typical values: 0.99.")
    if isinstance(warmup, bool) or (
        isinstance(warmup, numbers.Number)
        and not (isinstance(warmup, numbers.Integral) and warmup >= 0)
    ):
        _validation.fail("skip_spikes", "warmup", warmup, "an integer >= 0", "Use e.g. 50 steps.")
    inner = _inner(optimizer, "skip_spikes", "optimizer")

    def init_fn(params):
        dtype = _stats_dtype(params)
        zero = jnp.zeros([], dtype)
        return SkipSpikesState(inner.init(params), zero, zero, init_count(), init_count())

    def update_fn(updates, state, params=None, **extra_args):
        dtype = state.mean.dtype
        if metric == "loss":
            value = extra_args.get("value")
            if value is None:
                raise ValueError(
                    "skip_spikes(metric='loss'): `update` needs the loss as `value=`: "
                    "tx.update(grads, state, params, value=loss). Use metric='grad_norm' "
                    "to judge the gradient norm instead."
                )
            if jnp.ndim(value) != 0:
                raise ValueError(
                    f"skip_spikes: `value` must be a scalar loss, got shape {jnp.shape(value)}."
                )
            x = jnp.asarray(value).astype(dtype)
        else:
            x = _global_norm(updates, dtype)
        n = state.count - state.skipped  # accepted steps so far
        threshold = state.mean + jnp.asarray(k, dtype) * jnp.sqrt(state.var)
        accept = jnp.isfinite(x) & ((state.count < warmup) | (n == 0) | (x <= threshold))

        new_updates, inner_state = inner.update(updates, state.inner_state, params, **extra_args)
        new_updates = jax.tree.map(lambda u: jnp.where(accept, u, jnp.zeros_like(u)), new_updates)
        inner_state = _where(accept, inner_state, state.inner_state)

        w = _debiased_weight(decay, n + 1, dtype)
        delta = jnp.where(accept, x - state.mean, 0)  # 0 keeps NaN/inf out of the stats
        mean = jnp.where(accept, state.mean + w * delta, state.mean)
        var = jnp.where(accept, (1 - w) * (state.var + w * delta * delta), state.var)
        skipped = state.skipped + jnp.where(accept, 0, 1).astype(state.skipped.dtype)
        new_state = SkipSpikesState(inner_state, mean, var, next_count(state.count), skipped)
        return new_updates, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
