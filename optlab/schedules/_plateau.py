"""Reduce the step when the loss stops improving: lecture 03's "graduate student", automated."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab.optimizers._base import scalar_like
from optlab.schedules import _checks


class ReduceOnPlateauState(NamedTuple):
    """``scale``: the factor s on the updates (PyTorch's lr / initial lr), 1 at first;
    ``best_value``: the best monitored value so far (+inf before the first);
    ``plateau_count``: updates without a significant improvement (PyTorch's num_bad_epochs);
    ``cooldown_count``: updates left before a plateau counts again."""

    scale: jax.Array
    best_value: jax.Array
    plateau_count: jax.Array
    cooldown_count: jax.Array


def reduce_on_plateau(
    factor: float = 0.1,
    patience: int = 10,
    *,
    cooldown: int = 0,
    min_scale: float = 0.0,
    rtol: float = 1e-4,
    atol: float = 0.0,
) -> optax.GradientTransformationExtraArgs:
    """Multiplies the updates by a scale that drops by ``factor`` when the loss plateaus.

    Lecture 03's first schedule, the "graduate student" who watches the loss and divides the
    rate by 10 when it stops falling, as a transformation. With f_t the monitored value
    passed to the t-th update (``value=``), s the scale, b the best value, n and c the
    plateau and cooldown counters (s = 1, b = +∞, n = c = 0 at first)::

        if f_t < b·(1 − rtol) − atol:   b ← f_t,  n ← 0        (a significant improvement)
        else:                           n ← n + 1
        if c > 0:                       c ← c − 1,  n ← 0      (cooling down: no plateaus)
        if n > patience:                s ← max(s·factor, s_min),  c ← cooldown,  n ← 0
        updates ← s · updates

    Symbols → arguments: s_min = ``min_scale``; the others are named as the arguments. The
    new scale applies to the update that reported f_t: pass the loss at the current
    parameters (the loss after the previous update), as ``jax.value_and_grad`` gives it.

    Put it after the optimizer, ``optax.chain(optlab.sgd(0.1), reduce_on_plateau(...))``, so
    that it scales the step α·d, i.e. the learning rate. Before an adaptive optimizer (Adam,
    RMSProp) a scaled gradient would be normalized away. The chain passes ``value=loss`` to
    every member: ``tx.update(grads, state, params, value=loss)``.

    Versus the libraries: the scale after each value equals lr / initial lr of
    ``torch.optim.lr_scheduler.ReduceLROnPlateau(mode="min", factor, patience,
    threshold=rtol, threshold_mode="rel", cooldown, min_lr=s_min·lr)`` stepped with the same
    values (with ``atol=0``; PyTorch's ``eps``, which skips reductions smaller than 1e-8 in
    absolute terms, is left out). ``optax.contrib.reduce_on_plateau`` has the same arguments
    plus averaging of the values over ``accumulation_size`` updates.

    Args:
      factor: the reduction in (0, 1].
      patience: how many updates without improvement are tolerated (≥ 0): the scale drops
        at the (patience + 1)-th.
      cooldown: updates after a reduction during which plateaus are not counted (≥ 0).
      min_scale: s_min in [0, 1], the lowest scale.
      rtol: relative improvement that counts, in [0, 1) (PyTorch's ``threshold``).
      atol: absolute improvement that counts, ≥ 0.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose ``update`` needs ``value=``; its
      state is a ``ReduceOnPlateauState`` of 0-d arrays (it jits, vmaps and checkpoints).

    Example:
      >>> import jax.numpy as jnp, optlab.schedules as sch
      >>> tx = sch.reduce_on_plateau(factor=0.5, patience=1)
      >>> state = tx.init(jnp.zeros(1))
      >>> for loss in [3.0, 2.0, 2.0, 2.0, 1.0]:
      ...     updates, state = tx.update(jnp.ones(1), state, value=loss)
      ...     print(loss, float(state.scale), updates)
      3.0 1.0 [1.]
      2.0 1.0 [1.]
      2.0 1.0 [1.]
      2.0 0.5 [0.5]
      1.0 0.5 [0.5]

    References:
      ``torch.optim.lr_scheduler.ReduceLROnPlateau`` (PyTorch documentation).
    """
    owner = "reduce_on_plateau"
    _checks.check_factor(owner, "factor", factor, "Use e.g. 0.1 (divide by 10).")
    _checks.check_non_negative_int(owner, "patience", patience, "Use e.g. 10.")
    _checks.check_non_negative_int(owner, "cooldown", cooldown, "Use e.g. 0.")
    if _checks.is_concrete_number(min_scale) and not 0.0 <= min_scale <= 1.0:
        _checks.fail(owner, "min_scale", min_scale, "in [0, 1]", "A fraction of the start: 1e-3.")
    _checks.check_unit_interval(owner, "rtol", rtol, "PyTorch's default threshold is 1e-4.")
    _checks.check_non_negative(owner, "atol", atol, "Use e.g. 0.0.")

    def init_fn(params):
        del params
        dtype = jnp.result_type(float)
        return ReduceOnPlateauState(
            scale=jnp.ones([], dtype),
            best_value=jnp.full([], jnp.inf, dtype),
            plateau_count=jnp.zeros([], jnp.int32),
            cooldown_count=jnp.zeros([], jnp.int32),
        )

    def update_fn(updates, state, params=None, *, value=None, **extra_args):
        del params, extra_args
        if value is None:
            raise ValueError(
                f"{owner}: `value` (the monitored loss) is missing. Call "
                "tx.update(updates, state, params, value=loss); optax.chain passes it on."
            )
        if jnp.ndim(value) != 0:
            raise ValueError(
                f"{owner}: `value` must be a scalar loss, got shape {jnp.shape(value)}. "
                "Pass the mean loss, e.g. value=loss.mean()."
            )
        value = jnp.asarray(value).astype(state.best_value.dtype)
        improved = value < state.best_value * (1.0 - rtol) - atol
        best_value = jnp.where(improved, value, state.best_value)
        plateau_count = jnp.where(improved, 0, state.plateau_count + 1)
        cooling = state.cooldown_count > 0
        cooldown_count = jnp.where(cooling, state.cooldown_count - 1, state.cooldown_count)
        plateau_count = jnp.where(cooling, 0, plateau_count)
        reduce = plateau_count > patience
        scale = jnp.where(reduce, jnp.maximum(state.scale * factor, min_scale), state.scale)
        cooldown_count = jnp.where(reduce, cooldown, cooldown_count)
        plateau_count = jnp.where(reduce, 0, plateau_count)
        updates = jax.tree.map(lambda u: scalar_like(scale, u) * u, updates)
        new_state = ReduceOnPlateauState(
            scale=scale.astype(state.scale.dtype),
            best_value=best_value,
            plateau_count=plateau_count.astype(jnp.int32),
            cooldown_count=cooldown_count.astype(jnp.int32),
        )
        return updates, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
