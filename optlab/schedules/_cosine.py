"""Cosine schedules: cosine decay with a linear warm-up, and SGDR's warm restarts.

Pure functions ``t -> value`` of the step t (updates already made, from 0), jnp only.
"""

from __future__ import annotations

import jax.numpy as jnp

from optlab._validation import is_concrete_number
from optlab.schedules import _checks
from optlab.schedules._basic import Schedule
from optlab.schedules._checks import float_step


def _half_cosine(fraction):
    """½(1 + cos(π·u)): 1 at u = 0, 0 at u = 1."""
    return 0.5 * (1.0 + jnp.cos(jnp.pi * fraction))


def cosine_decay(
    init: float,
    steps: int,
    *,
    alpha: float = 0.0,
    warmup_steps: int = 0,
    warmup_init: float = 0.0,
) -> Schedule:
    """Cosine decay (lecture 03's "cosine scheduler") after an optional linear warm-up.

    ::

        γ_t = γ_w + (γ_0 − γ_w)·t / W                                   t < W
        γ_t = γ_0 · (α + (1 − α)·½(1 + cos(π·min(t − W, T − W)/(T − W))))   t ≥ W

    Symbols → arguments: γ_0 = ``init`` (the peak), T = ``steps`` (the whole schedule,
    warm-up included), α = ``alpha`` (the end value is α·γ_0), W = ``warmup_steps``,
    γ_w = ``warmup_init``. From step T on the value stays α·γ_0.

    Versus the libraries: with W = 0, ``optax.cosine_decay_schedule(γ_0, T, α)`` and, for
    t ≤ T, ``torch.optim.lr_scheduler.CosineAnnealingLR(T_max=T, eta_min=α·γ_0)``; with a
    warm-up, ``optax.warmup_cosine_decay_schedule(γ_w, γ_0, W, T, α·γ_0)``.

    Args:
      init: γ_0 ≥ 0.
      steps: T ≥ 1, greater than ``warmup_steps``.
      alpha: α ≥ 0, the final value as a fraction of γ_0.
      warmup_steps: W ≥ 0.
      warmup_init: γ_w ≥ 0, the value at step 0 when W > 0.

    Returns:
      A schedule ``t -> γ_t``.

    Example:
      >>> import jax.numpy as jnp, numpy as np, optlab.schedules as sch
      >>> lr = sch.cosine_decay(1.0, steps=6, warmup_steps=2)
      >>> print(np.round(np.asarray(lr(jnp.arange(8))), 4))
      [0.     0.5    1.     0.8536 0.5    0.1464 0.     0.    ]

    References:
      Loshchilov & Hutter, "SGDR: Stochastic gradient descent with warm restarts", ICLR 2017.
    """
    owner = "cosine_decay"
    _checks.check_non_negative(owner, "init", init, "Use e.g. 0.1.")
    _checks.check_positive_int(owner, "steps", steps, "Use the length of the schedule.")
    _checks.check_non_negative(owner, "alpha", alpha, "Use e.g. 0.0 (decay to zero).")
    _checks.check_non_negative_int(owner, "warmup_steps", warmup_steps, "Use e.g. 0.")
    _checks.check_non_negative(owner, "warmup_init", warmup_init, "Use e.g. 0.0.")
    if is_concrete_number(steps) and is_concrete_number(warmup_steps) and warmup_steps >= steps:
        raise ValueError(
            f"{owner}: `warmup_steps` must be < `steps` ({steps!r}), got {warmup_steps!r}. "
            "`steps` is the whole schedule, warm-up included."
        )

    def schedule(step):
        t = float_step(step)
        warm = warmup_init + (init - warmup_init) * t / jnp.maximum(warmup_steps, 1)
        fraction = jnp.clip(t - warmup_steps, 0.0, steps - warmup_steps) / (steps - warmup_steps)
        decayed = init * (alpha + (1.0 - alpha) * _half_cosine(fraction))
        return jnp.where(t < warmup_steps, warm, decayed)

    return schedule


def _periods_before(first_period, period_mult, n):
    """T_0·(1 + m + … + m^{n−1}): the step at which period n starts (n from 0)."""
    ratio = jnp.where(period_mult == 1, 2.0, period_mult)
    geometric = jnp.where(period_mult == 1, n, (jnp.power(ratio, n) - 1.0) / (ratio - 1.0))
    return first_period * geometric


def sgdr(
    init: float,
    first_period: int,
    *,
    period_mult: float = 1,
    min_value: float = 0.0,
    decay: float = 1.0,
) -> Schedule:
    """Cosine annealing with warm restarts (SGDR, Loshchilov & Hutter).

    ::

        η_t = η_min + (η_max − η_min)·d^i·½(1 + cos(π·T_cur / T_i))
        T_i = T_0·m^i,   T_cur = t − T_0·(1 + m + … + m^{i−1})

    where i is the index of the period (restart) that contains step t, found in closed form,
    i = ⌊log_m(1 + t·(m − 1)/T_0)⌋ (i = ⌊t/T_0⌋ for m = 1), then corrected by one where
    rounding put t on the wrong side of a restart; no loop over t.

    Symbols → arguments: η_max = ``init``, T_0 = ``first_period``, m = ``period_mult``,
    η_min = ``min_value``, d = ``decay`` (the height above η_min shrinks by d at each
    restart; d = 1 is the paper's schedule).

    Versus the libraries: with d = 1 and integer m, the same values as
    ``torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(T_0, T_mult=m, eta_min=η_min)``
    stepped once per update (its value before the first ``step()`` is η_0). optax's
    ``sgdr_schedule`` takes a list of explicit periods instead.

    Args:
      init: η_max ≥ 0, the value at every restart (before ``decay``).
      first_period: T_0 > 0, the length of the first period in steps.
      period_mult: m ≥ 1, each period is m times the previous one.
      min_value: η_min ≥ 0, the value the cosine tends to at the end of each period.
      decay: d in (0, 1].

    Returns:
      A schedule ``t -> η_t``.

    Example:
      >>> import jax.numpy as jnp, numpy as np, optlab.schedules as sch
      >>> lr = sch.sgdr(1.0, first_period=2, period_mult=2)  # restarts at t = 2, 6, 14
      >>> print(np.round(np.asarray(lr(jnp.arange(8))), 4))
      [1.     0.5    1.     0.8536 0.5    0.1464 1.     0.9619]

    References:
      Loshchilov & Hutter, "SGDR: Stochastic gradient descent with warm restarts", ICLR 2017.
    """
    owner = "sgdr"
    _checks.check_non_negative(owner, "init", init, "Use e.g. 0.1.")
    _checks.check_positive(owner, "first_period", first_period, "Use e.g. 10 steps.")
    _checks.check_at_least(owner, "period_mult", period_mult, 1, "Use 1 or 2.")
    _checks.check_non_negative(owner, "min_value", min_value, "Use e.g. 0.0.")
    _checks.check_factor(owner, "decay", decay, "Use 1.0 (the paper's SGDR).")

    def schedule(step):
        t = float_step(step)
        log_mult = jnp.log(jnp.where(period_mult == 1, 2.0, period_mult))
        grown = jnp.log1p(t * (period_mult - 1.0) / first_period) / log_mult
        i = jnp.floor(jnp.where(period_mult == 1, t / first_period, grown))
        i = jnp.where(_periods_before(first_period, period_mult, i + 1) <= t, i + 1, i)
        i = jnp.where(_periods_before(first_period, period_mult, i) > t, i - 1, i)
        t_cur = t - _periods_before(first_period, period_mult, i)
        t_i = first_period * jnp.power(period_mult, i)
        height = (init - min_value) * jnp.power(decay, i)
        return min_value + height * _half_cosine(t_cur / t_i)

    return schedule
