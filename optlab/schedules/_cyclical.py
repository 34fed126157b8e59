"""Leslie Smith's cyclical learning rate (lecture 03's figure) and its inverse momentum cycle.

Pure functions ``t -> value`` of the step t (updates already made, from 0), jnp only.
"""

from __future__ import annotations

import jax.numpy as jnp

from optlab.schedules import _checks
from optlab.schedules._basic import Schedule
from optlab.schedules._checks import float_step

MODES = ("triangular", "triangular2", "exp_range")


def _check_cycle(owner: str, step_size, step_size_down, mode: str, gamma) -> None:
    _checks.check_positive(owner, "step_size", step_size, "Smith suggests 2–10 epochs of steps.")
    if step_size_down is not None:
        _checks.check_positive(owner, "step_size_down", step_size_down, "Or None (= step_size).")
    _checks.check_choice(owner, "mode", mode, MODES)
    _checks.check_factor(owner, "gamma", gamma, "Use e.g. 0.99994 with mode='exp_range'.")


def _cycle_height(t, step_size, step_size_down, mode: str, gamma):
    """The fraction of the amplitude reached at step t, PyTorch's arithmetic step by step.

    ``cycle = ⌊1 + t/(s_up + s_down)⌋``, ``x`` the position inside the cycle in [0, 1);
    rising ``x/r`` up to the peak at ``r = s_up/(s_up + s_down)``, then falling
    ``(x − 1)/(r − 1)``; times the mode's amplitude scale λ.
    """
    down = step_size if step_size_down is None else step_size_down
    total = step_size + down
    ratio = step_size / total
    cycle = jnp.floor(1.0 + t / total)
    x = 1.0 + t / total - cycle
    height = jnp.where(x <= ratio, x / ratio, (x - 1.0) / (ratio - 1.0))
    if mode == "triangular":
        return height
    if mode == "triangular2":
        return height * (1.0 / jnp.power(2.0, cycle - 1.0))
    return height * jnp.power(gamma, t)  # exp_range: scaled by γ^t, not by the cycle


def cyclical(
    base_lr: float,
    max_lr: float,
    step_size: float,
    *,
    step_size_down: float | None = None,
    mode: str = "triangular",
    gamma: float = 1.0,
) -> Schedule:
    """Leslie Smith's cyclical learning rate (CLR), the schedule of lecture 03's figure.

    Smith's triangular policy, with s = ``step_size`` steps up and s down::

        cycle = ⌊1 + t/(2s)⌋
        x     = |t/s − 2·cycle + 1|
        η_t   = η_base + (η_max − η_base)·max(0, 1 − x)·λ

    with λ = 1 (``"triangular"``), λ = 1/2^(cycle−1) (``"triangular2"``: the amplitude halves
    every cycle) or λ = γ^t (``"exp_range"``: it shrinks by γ every step). With
    ``step_size_down`` the rise takes s_up = ``step_size`` steps and the fall s_down, as in
    PyTorch.

    Symbols → arguments: η_base = ``base_lr``, η_max = ``max_lr``, s = ``step_size``,
    γ = ``gamma``.

    Versus the libraries: the same values as ``torch.optim.lr_scheduler.CyclicLR(base_lr,
    max_lr, step_size_up=s, step_size_down, mode, gamma)`` stepped once per update (its value
    before the first ``step()`` is η_0). optax has no cyclical schedule.

    Args:
      base_lr: η_base ≥ 0, the value at the start of each cycle.
      max_lr: η_max ≥ η_base, the peak (reached only when λ = 1).
      step_size: s > 0 steps of the rising half.
      step_size_down: steps of the falling half (None: ``step_size``).
      mode: ``"triangular"``, ``"triangular2"`` or ``"exp_range"``.
      gamma: γ in (0, 1], used by ``"exp_range"`` only.

    Returns:
      A schedule ``t -> η_t``.

    Example:
      >>> import jax.numpy as jnp, numpy as np, optlab.schedules as sch
      >>> lr = sch.cyclical(0.1, 0.5, step_size=2, mode="triangular2")
      >>> print(np.round(np.asarray(lr(jnp.arange(9))), 4))
      [0.1 0.3 0.5 0.3 0.1 0.2 0.3 0.2 0.1]

    References:
      Smith, "Cyclical learning rates for training neural networks", WACV 2017.
    """
    owner = "cyclical"
    _checks.check_non_negative(owner, "base_lr", base_lr, "Use e.g. 1e-3.")
    _checks.check_non_negative(owner, "max_lr", max_lr, "Use e.g. 6e-3 (Smith's LR range test).")
    _checks.check_not_above(owner, "base_lr", base_lr, "max_lr", max_lr)
    _check_cycle(owner, step_size, step_size_down, mode, gamma)

    def schedule(step):
        height = _cycle_height(float_step(step), step_size, step_size_down, mode, gamma)
        return base_lr + (max_lr - base_lr) * height

    return schedule


def cyclical_momentum(
    base_momentum: float,
    max_momentum: float,
    step_size: float,
    *,
    step_size_down: float | None = None,
    mode: str = "triangular",
    gamma: float = 1.0,
) -> Schedule:
    """The momentum cycle that goes with ``cyclical``: high when the rate is low.

    Smith (2018) cycles the momentum inversely to the learning rate: at the start of a cycle
    (rate at its base) the momentum is at its maximum, at the rate's peak it is at its base::

        μ_t = μ_max − (μ_max − μ_base)·h_t

    where h_t ∈ [0, 1] is the same fraction of the amplitude (cycle, direction and λ scaling)
    as in ``cyclical(..., step_size, step_size_down=..., mode=..., gamma=...)``. Pass the same
    cycle arguments to both, and this schedule as the momentum of an optimizer through
    ``optax.inject_hyperparams``, e.g.
    ``optax.inject_hyperparams(optlab.momentum)(learning_rate=cyclical(...),
    mu=cyclical_momentum(...))``.

    Symbols → arguments: μ_base = ``base_momentum``, μ_max = ``max_momentum``.

    Versus the libraries: the momentum ``torch.optim.lr_scheduler.CyclicLR(...,
    cycle_momentum=True, base_momentum, max_momentum)`` writes into the optimizer
    (``momentum``, or ``betas[0]`` for Adam) at each step.

    Args:
      base_momentum: μ_base in [0, 1), the momentum at the rate's peak.
      max_momentum: μ_max in [μ_base, 1), the momentum at the rate's base.
      step_size: steps of the rate's rising half (the momentum's falling half).
      step_size_down: steps of the rate's falling half (None: ``step_size``).
      mode: ``"triangular"``, ``"triangular2"`` or ``"exp_range"``.
      gamma: γ in (0, 1], used by ``"exp_range"`` only.

    Returns:
      A schedule ``t -> μ_t``.

    Example:
      >>> import jax.numpy as jnp, numpy as np, optlab.schedules as sch
      >>> mu = sch.cyclical_momentum(0.8, 0.9, step_size=2)
      >>> print(np.round(np.asarray(mu(jnp.arange(5))), 4))
      [0.9  0.85 0.8  0.85 0.9 ]

    References:
      Smith, "A disciplined approach to neural network hyper-parameters: Part 1 – learning
      rate, batch size, momentum, and weight decay", arXiv:1803.09820, 2018.
    """
    owner = "cyclical_momentum"
    fix = "Smith suggests cycling between 0.85 and 0.95."
    _checks.check_momentum_range(owner, base_momentum, max_momentum, fix)
    _check_cycle(owner, step_size, step_size_down, mode, gamma)

    def schedule(step):
        height = _cycle_height(float_step(step), step_size, step_size_down, mode, gamma)
        return max_momentum - (max_momentum - base_momentum) * height

    return schedule
