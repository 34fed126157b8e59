"""Schedule-Free's state and core (Defazio et al. 2024): ``ScheduleFreeState``, the evaluation point
x = (y − (1 − β)·z)/β (``schedule_free_eval_params``), the warm-up and the interpolated step
both optimizers share. ``schedule_free_sgd`` and ``schedule_free_adamw`` are in
``optlab.optimizers._schedule_free``."""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab import _validation
from optlab.optimizers._base import (
    check_like,
    learning_rate_at,
    scalar_dtype,
    scalar_like,
    unzip,
)


class ScheduleFreeState(NamedTuple):
    """optax.contrib's ``ScheduleFreeState``: the same fields, in the same order.

    ``b1``: the β that formed the current y (what ``schedule_free_eval_params`` divides
    by); ``weight_sum``: Σ_{i≤t} w_i; ``step_count``: t of the next update (1 for the
    first, optax's convention); ``max_lr``: γ^max_t = max_{i≤t} γ_i; ``base_optimizer_state``:
    ``optax.EmptyState()`` for SGD, ``optax.ScaleByRmsState(nu=v)`` for AdamW; ``z``.
    """

    b1: jax.Array
    weight_sum: jax.Array
    step_count: jax.Array
    max_lr: jax.Array
    base_optimizer_state: Any
    z: Any

    def evaluation_point(self, params: Any) -> Any:
        """x = (y − (1 − β)·z)/β for the held params y: where to evaluate and export."""
        return _eval_point(self, params)


def _is_schedule_free_state(x: Any) -> bool:
    return isinstance(x, (ScheduleFreeState, optax.contrib.ScheduleFreeState))


def schedule_free_eval_params(state: Any, params: Any) -> Any:
    """The evaluation point x = (y − (1 − β)·z)/β of a schedule-free optimizer.

    ``params`` are the params the trainer holds (y); ``state`` is the optimizer state, or
    any state tree that holds exactly one ``ScheduleFreeState`` (ours or optax.contrib's):
    inside ``optax.chain``, ``optax.with_extra_args_support``, ``optax.inject_hyperparams``
    and the like it is found by searching the tree.

    Raises:
      ValueError: when ``state`` holds no schedule-free state, or more than one.

    Example:
      >>> import jax.numpy as jnp, numpy as np, optax
      >>> from optlab.optimizers._schedule_free import (
      ...     schedule_free_eval_params, schedule_free_sgd)
      >>> tx = optax.chain(optax.clip_by_global_norm(10.0), schedule_free_sgd(0.5, b1=0.5))
      >>> y = jnp.array([1.0])
      >>> state = tx.init(y)
      >>> updates, state = tx.update(jnp.array([1.0]), state, y)  # z = 0.5, c = 1: x = 0.5
      >>> y = optax.apply_updates(y, updates)
      >>> print(np.asarray(y), np.asarray(schedule_free_eval_params(state, y)))
      [0.5] [0.5]
    """
    found = [
        s
        for s in jax.tree.leaves(state, is_leaf=_is_schedule_free_state)
        if _is_schedule_free_state(s)
    ]
    if len(found) != 1:
        what = "no ScheduleFreeState" if not found else f"{len(found)} ScheduleFreeStates"
        raise ValueError(
            f"schedule_free_eval_params: `state` holds {what}; pass the state of "
            "schedule_free_sgd / schedule_free_adamw (or of a chain holding exactly one)."
        )
    return _eval_point(found[0], params)


def _eval_point(sf: Any, params: Any) -> Any:
    def leaf(y, z):
        dtype = jnp.result_type(y, z)
        b1 = scalar_like(sf.b1, jnp.zeros((), dtype).real)
        x = (y.astype(dtype) - (1 - b1).astype(dtype) * z.astype(dtype)) / b1.astype(dtype)
        return x.astype(y.dtype)

    return jax.tree.map(leaf, params, sf.z)


def _check(owner, learning_rate, warmup_steps, b1, weight_lr_power, r, like, extra=()):
    check_like(owner, like, ("optax",))
    _validation.check_learning_rate(owner, learning_rate)
    if warmup_steps is not None and _validation.is_concrete_number(warmup_steps):
        if not (float(warmup_steps).is_integer() and warmup_steps >= 0):
            _validation.fail(
                owner, "warmup_steps", warmup_steps, "None or an integer >= 0", "Use e.g. 100."
            )
    if _validation.is_concrete_number(b1) and not 0.0 < b1 <= 1.0:
        _validation.fail(
            owner,
            "b1",
            b1,
            "in (0, 1]",
            "x = (y − (1 − β)·z)/β needs β > 0; Defazio et al. use 0.9.",
        )
    _validation.check_non_negative(owner, "weight_lr_power", weight_lr_power, "Use 2.0.")
    _validation.check_non_negative(owner, "r", r, "Use 0.0 (the authors' default).")
    if like == "optax":
        if _validation.is_concrete_number(r) and r != 0:  # (a traced r is unused there)
            raise ValueError(
                f"{owner}: `r` must be 0 with like='optax' (optax.contrib has no polynomial "
                f"weighting t^r), got {r!r}."
            )
        if warmup_steps is not None and callable(learning_rate):
            raise ValueError(
                f"{owner}: like='optax' warms up to a float peak (optax's "
                "warmup_constant_schedule(0, learning_rate, warmup_steps)); pass a float "
                "`learning_rate` or warmup_steps=None."
            )
    for name, value, check in extra:
        check(owner, name, value)


def _warmup_factor(warmup_steps, t):
    """min(1, t/T_warmup); 1 without warmup (None or 0). ``t``: a float array."""
    if warmup_steps is None:
        return 1.0
    w = jnp.asarray(warmup_steps, t.dtype)
    return jnp.where(w > 0, jnp.minimum(1.0, t / jnp.where(w > 0, w, 1.0)), 1.0)


def _optax_rate(learning_rate, warmup_steps, n, dtype):
    """optax's rate at count n: ``warmup_constant_schedule(0, α, W)(n)`` (optax evaluates
    it in float32, even with 64-bit floats on: the same function is called here), or the
    schedule α(n)."""
    if warmup_steps is None:
        return learning_rate_at(learning_rate, n)
    if _validation.is_concrete_number(warmup_steps):
        return optax.schedules.warmup_constant_schedule(0.0, learning_rate, int(warmup_steps))(n)
    w = jnp.asarray(warmup_steps, dtype)  # traced (inject_hyperparams): the same formula
    frac = 1 - jnp.clip(n.astype(dtype), 0, w) / jnp.where(w > 0, w, 1)
    return jnp.where(w > 0, (0 - learning_rate) * frac + learning_rate, learning_rate)


def _schedule_free(
    owner, learning_rate, warmup_steps, b1, weight_lr_power, state_dtype, r, like, base
):
    """The schedule-free wrapper around a z step; ``base`` = (init, direction, bias_factor).

    ``direction(g, y, base_state, t) -> (d tree, new base state)``: z_{t+1} = z_t − γ_t·d.
    ``bias_factor(t)`` multiplies γ_t (√(1 − β2^t) in the paper's AdamW, else 1).
    """
    base_init, direction, bias_factor = base

    def init_fn(params):
        dtype = scalar_dtype(params)
        z = params if state_dtype is None else optax.tree.cast(params, state_dtype)
        z = jax.tree.map(lambda p: jnp.array(p, copy=True), z)
        return ScheduleFreeState(
            b1=jnp.asarray(b1, dtype),
            weight_sum=jnp.zeros([], dtype),
            step_count=jnp.ones([], jnp.int32),
            max_lr=jnp.zeros([], dtype),
            base_optimizer_state=base_init(params),
            z=z,
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        if params is None:
            raise ValueError(f"{owner}: `update` needs `params` (the point y the gradient is at).")
        dtype = state.max_lr.dtype
        t = state.step_count  # t of this update, from 1
        tf = t.astype(dtype)
        if like == "optax":
            gamma_z = _optax_rate(learning_rate, warmup_steps, t - 1, dtype)  # the base's own count
            gamma_w = jnp.asarray(_optax_rate(learning_rate, warmup_steps, t, dtype), dtype)
            b_old = b_new = jnp.asarray(b1, dtype)  # optax's update reads the closure's b1
        else:
            gamma_z = (
                learning_rate_at(learning_rate, t - 1) * _warmup_factor(warmup_steps, tf)
            ) * bias_factor(tf)
            gamma_w = jnp.asarray(gamma_z, dtype)
            b_old, b_new = state.b1, jnp.asarray(b1, dtype)
        max_lr = jnp.maximum(state.max_lr, gamma_w)
        weight = max_lr**weight_lr_power
        if like != "optax" and not (_validation.is_concrete_number(r) and r == 0):
            weight = tf**r * weight
        weight_sum = state.weight_sum + weight
        if like == "optax":  # optax.contrib's guard, term by term
            c = jnp.where(
                jnp.isnan(weight) | jnp.isnan(weight_sum),
                jnp.full(weight.shape, jnp.nan, dtype),
                jnp.nan_to_num(weight / weight_sum, nan=0.0, posinf=jnp.inf),
            )
        else:  # c_{t+1} = w_t / Σ w_i, and 0 while every weight is 0 (the authors' code)
            c = jnp.where(weight_sum > 0, weight / jnp.where(weight_sum > 0, weight_sum, 1), 0.0)
        d, base_state = direction(updates, params, state.base_optimizer_state, tf)

        def leaf(g, y, z, d):
            f = jnp.result_type(y, z)
            real = jnp.zeros((), f).real
            one = scalar_like(1.0, real)
            z_new = (z.astype(f) - scalar_like(gamma_z, real).astype(f) * d.astype(f)).astype(
                z.dtype
            )
            bo, bn, ck = (scalar_like(v, real).astype(f) for v in (b_old, b_new, c))
            x = (y.astype(f) - (one.astype(f) - bo) * z.astype(f)) / bo
            x = (one.astype(f) - ck) * x + ck * z_new.astype(f)
            y_new = bn * x + (one.astype(f) - bn) * z_new.astype(f)
            return (y_new - y.astype(f)).astype(g.dtype), z_new

        out = jax.tree.map(leaf, updates, params, state.z, d)
        new_updates, z = unzip(updates, out, 2)
        new_state = ScheduleFreeState(
            b1=b_new if like != "optax" else state.b1,
            weight_sum=weight_sum,
            step_count=optax.safe_increment(state.step_count),
            max_lr=max_lr,
            base_optimizer_state=base_state,
            z=z,
        )
        return new_updates, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _decay_term(weight_decay):
    """λ·y added to the direction, or nothing for None/0."""
    if weight_decay is None or (
        isinstance(weight_decay, numbers.Real)
        and not isinstance(weight_decay, bool)
        and weight_decay == 0
    ):
        return None
    return weight_decay
