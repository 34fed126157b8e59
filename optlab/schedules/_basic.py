"""The annealed schedules lecture 03 lists and lecture 04's 1/t family.

Each factory returns a pure function ``t -> value`` of the step t (the number of updates
already made, 0 for the first update, as in optax). It uses jnp operations only on t, so
it jits, works on an array of steps elementwise and under ``jax.vmap``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from optlab.schedules import _checks
from optlab.schedules._checks import float_step

Schedule = Callable[[jax.Array], jax.Array]


def constant(value: float) -> Schedule:
    """The schedule γ_t = ``value`` for every t (lecture 04's γ^{(t)} = 1 with ``value=1``).

    Args:
      value: the constant, ≥ 0.

    Returns:
      A schedule ``t -> value`` with t's shape.

    Example:
      >>> import jax.numpy as jnp, optlab.schedules as sch
      >>> print(sch.constant(0.5)(jnp.arange(3)))
      [0.5 0.5 0.5]
    """
    _checks.check_non_negative("constant", "value", value, "Use e.g. 0.01.")

    def schedule(step):
        return jnp.zeros_like(float_step(step)) + value

    return schedule


def step_decay(init: float, factor: float, every: float) -> Schedule:
    """Step decay (lecture 03's "step scheduler"): divide the rate by 1/factor every few steps.

    ::

        γ_t = γ_0 · f^⌊t / k⌋

    Symbols → arguments: γ_0 = ``init``, f = ``factor``, k = ``every``.

    Versus the libraries: ``torch.optim.lr_scheduler.StepLR(step_size=k, gamma=f)`` with
    ``lr=γ_0``, and ``optax.exponential_decay(γ_0, k, f, staircase=True)``.

    Args:
      init: γ_0 ≥ 0, the value for the first k steps.
      factor: f in (0, 1].
      every: k > 0, the number of steps between decays.

    Returns:
      A schedule ``t -> γ_t``.

    Example:
      >>> import jax.numpy as jnp, optlab.schedules as sch
      >>> print(sch.step_decay(1.0, 0.5, every=2)(jnp.arange(6)))
      [1.   1.   0.5  0.5  0.25 0.25]

    References:
      Goodfellow, Bengio & Courville, "Deep Learning", 2016, section 8.3.1.
    """
    _checks.check_non_negative("step_decay", "init", init, "Use e.g. 0.1.")
    _checks.check_factor("step_decay", "factor", factor, "Use e.g. 0.1 (divide by 10).")
    _checks.check_positive("step_decay", "every", every, "Use the steps between decays.")

    def schedule(step):
        return init * jnp.power(factor, jnp.floor_divide(float_step(step), every))

    return schedule


def exponential_decay(
    init: float, rate: float, *, every: float = 1, staircase: bool = False
) -> Schedule:
    """Exponential decay (lecture 03's "exponential scheduler"; lecture 04's γ^{(t)} = e^{−t}).

    ::

        γ_t = γ_0 · r^(t / k)        (staircase: γ_0 · r^⌊t / k⌋)

    Symbols → arguments: γ_0 = ``init``, r = ``rate``, k = ``every``. Lecture 04's
    e^{−t} (t from 1) is ``exponential_decay(exp(−1), exp(−1))`` (t from 0).

    Versus the libraries: with k = 1, ``torch.optim.lr_scheduler.ExponentialLR(gamma=r)``;
    ``optax.exponential_decay(γ_0, k, r, staircase=...)`` without its ``transition_begin``
    and ``end_value``.

    Args:
      init: γ_0 ≥ 0.
      rate: r in (0, 1], the factor per k steps.
      every: k > 0 (default 1).
      staircase: decay in whole periods of k steps (then the same as ``step_decay``).

    Returns:
      A schedule ``t -> γ_t``.

    Example:
      >>> import jax.numpy as jnp, numpy as np, optlab.schedules as sch
      >>> print(np.round(np.asarray(sch.exponential_decay(1.0, 0.5)(jnp.arange(4))), 4))
      [1.    0.5   0.25  0.125]

    References:
      Goodfellow, Bengio & Courville, "Deep Learning", 2016, section 8.3.1.
    """
    _checks.check_non_negative("exponential_decay", "init", init, "Use e.g. 0.1.")
    _checks.check_factor("exponential_decay", "rate", rate, "Use e.g. 0.99.")
    _checks.check_positive("exponential_decay", "every", every, "Use e.g. 1 (per step).")

    def schedule(step):
        t = float_step(step)
        exponent = jnp.floor_divide(t, every) if staircase else t / every
        return init * jnp.power(rate, exponent)

    return schedule


def inverse_time_decay(init: float, k: float, *, power: float = 1.0) -> Schedule:
    """The 1/t family of lecture 04, which satisfies both Robbins–Monro conditions.

    ::

        γ_t = γ_0 / (1 + k·t)^p

    Symbols → arguments: γ_0 = ``init``, k = ``k``, p = ``power``. Lecture 04's
    γ^{(t)} = t^{−1} (t from 1) is ``inverse_time_decay(1.0, 1.0)`` (t from 0, so that
    γ_t = 1/(t + 1)). For 0.5 < p ≤ 1 the conditions lim γ = 0 and Σγ = ∞ hold and Σγ² < ∞;
    p = 1/2 gives the 1/√t rate.

    Versus the libraries: optax (0.2.8) and PyTorch have no inverse-time schedule; Keras'
    ``InverseTimeDecay(γ_0, decay_steps=1, decay_rate=k)`` is the p = 1 case.

    Args:
      init: γ_0 ≥ 0.
      k: the decay speed ≥ 0 (0 gives a constant).
      power: p > 0.

    Returns:
      A schedule ``t -> γ_t``.

    Example:
      >>> import jax.numpy as jnp, numpy as np, optlab.schedules as sch
      >>> print(np.round(np.asarray(sch.inverse_time_decay(1.0, 1.0)(jnp.arange(4))), 4))
      [1.     0.5    0.3333 0.25  ]

    References:
      Robbins & Monro, "A stochastic approximation method", 1951.
    """
    _checks.check_non_negative("inverse_time_decay", "init", init, "Use e.g. 0.1.")
    _checks.check_non_negative("inverse_time_decay", "k", k, "Use e.g. 1e-3.")
    _checks.check_positive("inverse_time_decay", "power", power, "Use 1 (1/t) or 0.5 (1/√t).")

    def schedule(step):
        return init / jnp.power(1.0 + k * float_step(step), power)

    return schedule


def polynomial(init: float, end: float, power: float, steps: int) -> Schedule:
    """Polynomial decay from ``init`` to ``end`` over ``steps`` steps, then ``end``.

    ::

        γ_t = (γ_0 − γ_end) · (1 − min(t, T)/T)^p + γ_end

    Symbols → arguments: γ_0 = ``init``, γ_end = ``end``, p = ``power``, T = ``steps``.
    p = 1 is a linear decay.

    Versus the libraries: ``optax.polynomial_schedule(γ_0, γ_end, p, T)`` (with no
    ``transition_begin``); ``torch.optim.lr_scheduler.PolynomialLR(total_iters=T, power=p)``
    is the case γ_end = 0.

    Args:
      init: γ_0 ≥ 0.
      end: γ_end ≥ 0, the value from step T on.
      power: p > 0.
      steps: T ≥ 1.

    Returns:
      A schedule ``t -> γ_t``.

    Example:
      >>> import jax.numpy as jnp, optlab.schedules as sch
      >>> print(sch.polynomial(1.0, 0.2, power=1, steps=4)(jnp.arange(6)))
      [1.  0.8 0.6 0.4 0.2 0.2]
    """
    _checks.check_non_negative("polynomial", "init", init, "Use e.g. 0.1.")
    _checks.check_non_negative("polynomial", "end", end, "Use e.g. 0.0.")
    _checks.check_positive("polynomial", "power", power, "Use e.g. 1 (linear).")
    _checks.check_positive_int("polynomial", "steps", steps, "Use the length of the decay.")

    def schedule(step):
        fraction = jnp.minimum(float_step(step), steps) / steps
        return (init - end) * jnp.power(1.0 - fraction, power) + end

    return schedule
