"""Smith's 1cycle policy: one rise and one fall of the rate (momentum the other way round).

Pure functions ``t -> value`` of the step t (updates already made, from 0), jnp only.
"""

from __future__ import annotations

import jax.numpy as jnp

from optlab._validation import is_concrete_number
from optlab.schedules import _checks
from optlab.schedules._basic import Schedule
from optlab.schedules._checks import float_step

ANNEALS = ("cos", "linear")


def _phase_ends(total_steps, pct_start, three_phase: bool) -> list:
    """PyTorch's last step of each phase (a phase starts at the previous one's end)."""
    rise_end = pct_start * total_steps - 1.0
    if three_phase:
        return [rise_end, 2.0 * pct_start * total_steps - 2.0, total_steps - 1.0]
    return [rise_end, total_steps - 1.0]


def _check_one_cycle(owner: str, total_steps, pct_start, anneal: str, three_phase: bool):
    _checks.check_positive_int(owner, "total_steps", total_steps, "Use the number of updates.")
    _checks.check_choice(owner, "anneal", anneal, ANNEALS)
    if is_concrete_number(pct_start) and not 0.0 < pct_start < 1.0:
        _checks.fail(owner, "pct_start", pct_start, "in (0, 1)", "Smith uses 0.3 to 0.45.")
    if not (is_concrete_number(total_steps) and is_concrete_number(pct_start)):
        return
    ends = _phase_ends(total_steps, pct_start, three_phase)
    if not all(b > a for a, b in zip([0.0, *ends[:-1]], ends, strict=True)):
        raise ValueError(
            f"{owner}: `pct_start` must leave every phase more than one step, got "
            f"pct_start={pct_start!r} with total_steps={total_steps!r} (phase ends {ends}). "
            "Use more total_steps or a pct_start nearer 0.3"
            + (" (at most about 0.5 with three_phase=True)." if three_phase else ".")
        )


def _anneal(start, end, pct, anneal: str):
    """From ``start`` at pct = 0 to ``end`` at pct = 1, in PyTorch's operation order."""
    if anneal == "cos":
        return end + (start - end) / 2.0 * (jnp.cos(jnp.pi * pct) + 1.0)
    return (end - start) * pct + start


def _piecewise(t, ends, endpoints, anneal: str):
    """The phase that holds t (first with t ≤ its end, else the last), annealed in it."""
    begins = [0.0, *ends[:-1]]
    value = None
    for i in reversed(range(len(ends))):
        pct = (t - begins[i]) / (ends[i] - begins[i])
        if value is None:  # the last phase: hold its end value after total_steps − 1
            value = _anneal(*endpoints[i], jnp.minimum(pct, 1.0), anneal)
        else:
            value = jnp.where(t <= ends[i], _anneal(*endpoints[i], pct, anneal), value)
    return value


def one_cycle(
    max_lr: float,
    total_steps: int,
    *,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    anneal: str = "cos",
    three_phase: bool = False,
) -> Schedule:
    """Smith's 1cycle learning rate, exactly as ``torch.optim.lr_scheduler.OneCycleLR``.

    With N = ``total_steps``, η_0 = η_max / ``div_factor`` and
    η_min = η_0 / ``final_div_factor``, the rate is annealed (``"cos"``: end + (start − end)·
    ½(1 + cos(π·p)); ``"linear"``: start + (end − start)·p, p the fraction of the phase done)
    through the phases, each starting at the previous one's last step::

        two phases (default, fastai's):  η_0 → η_max  over t ∈ [0, pN − 1]
                                         η_max → η_min over t ∈ [pN − 1, N − 1]
        three_phase=True (Smith's):      η_0 → η_max  over t ∈ [0, pN − 1]
                                         η_max → η_0  over t ∈ [pN − 1, 2pN − 2]
                                         η_0 → η_min  over t ∈ [2pN − 2, N − 1]

    Symbols → arguments: η_max = ``max_lr``, N = ``total_steps``, p = ``pct_start``.

    Versus the libraries: the same values as ``OneCycleLR(max_lr, total_steps, pct_start,
    anneal_strategy=anneal, div_factor, final_div_factor, three_phase)`` for t = 0 … N − 1
    (stepped once per update; its value before the first ``step()`` is η_0). PyTorch raises
    past N steps; this schedule stays at η_min from t = N − 1 on. ``optax.cosine_onecycle_
    schedule`` puts its phase boundaries one step later (at pN, not pN − 1).

    Args:
      max_lr: η_max ≥ 0.
      total_steps: N ≥ 1, the number of updates of the whole cycle.
      pct_start: p in (0, 1), the fraction of the steps spent rising.
      div_factor: η_max / η_0 > 0.
      final_div_factor: η_0 / η_min > 0.
      anneal: ``"cos"`` or ``"linear"``.
      three_phase: Smith's three phases instead of fastai's two.

    Returns:
      A schedule ``t -> η_t``.

    Example:
      >>> import jax.numpy as jnp, numpy as np, optlab.schedules as sch
      >>> lr = sch.one_cycle(1.0, total_steps=7, pct_start=3 / 7, div_factor=4,
      ...                    final_div_factor=2.5, anneal="linear")
      >>> print(np.round(np.asarray(lr(jnp.arange(7))), 4))
      [0.25  0.625 1.    0.775 0.55  0.325 0.1  ]

    References:
      Smith, "A disciplined approach to neural network hyper-parameters: Part 1 – learning
      rate, batch size, momentum, and weight decay", arXiv:1803.09820, 2018.
      Smith & Topin, "Super-convergence: very fast training of neural networks using large
      learning rates", 2019.
    """
    owner = "one_cycle"
    _checks.check_non_negative(owner, "max_lr", max_lr, "Use the LR range test's maximum.")
    _checks.check_positive(owner, "div_factor", div_factor, "PyTorch's default is 25.")
    _checks.check_positive(owner, "final_div_factor", final_div_factor, "Default: 1e4.")
    _check_one_cycle(owner, total_steps, pct_start, anneal, three_phase)
    initial = max_lr / div_factor
    final = initial / final_div_factor
    if three_phase:
        endpoints = [(initial, max_lr), (max_lr, initial), (initial, final)]
    else:
        endpoints = [(initial, max_lr), (max_lr, final)]

    def schedule(step):
        t = float_step(step)
        return _piecewise(t, _phase_ends(total_steps, pct_start, three_phase), endpoints, anneal)

    return schedule


def one_cycle_momentum(
    total_steps: int,
    *,
    base_momentum: float = 0.85,
    max_momentum: float = 0.95,
    pct_start: float = 0.3,
    anneal: str = "cos",
    three_phase: bool = False,
) -> Schedule:
    """The momentum of Smith's 1cycle policy: down while the rate rises, then back up.

    Over the phases of ``one_cycle`` (same N, p, anneal and three_phase)::

        two phases:        μ_max → μ_base, then μ_base → μ_max
        three_phase=True:  μ_max → μ_base, μ_base → μ_max, then μ_max

    Symbols → arguments: μ_base = ``base_momentum``, μ_max = ``max_momentum``. Use it as an
    optimizer's momentum (``mu``, ``b1``) through ``optax.inject_hyperparams``.

    Versus the libraries: the momentum ``torch.optim.lr_scheduler.OneCycleLR(...,
    cycle_momentum=True, base_momentum, max_momentum)`` writes into the optimizer.

    Args:
      total_steps: N ≥ 1.
      base_momentum: μ_base in [0, 1), the momentum at the rate's peak.
      max_momentum: μ_max in [μ_base, 1), the momentum at the start and the end.
      pct_start: p in (0, 1).
      anneal: ``"cos"`` or ``"linear"``.
      three_phase: Smith's three phases instead of fastai's two.

    Returns:
      A schedule ``t -> μ_t``.

    Example:
      >>> import jax.numpy as jnp, numpy as np, optlab.schedules as sch
      >>> mu = sch.one_cycle_momentum(5, pct_start=0.6, anneal="linear")
      >>> print(np.round(np.asarray(mu(jnp.arange(5))), 4))
      [0.95 0.9  0.85 0.9  0.95]

    References:
      Smith, "A disciplined approach to neural network hyper-parameters: Part 1 – learning
      rate, batch size, momentum, and weight decay", arXiv:1803.09820, 2018.
    """
    owner = "one_cycle_momentum"
    fix = "PyTorch's defaults are 0.85 and 0.95."
    _checks.check_momentum_range(owner, base_momentum, max_momentum, fix)
    _check_one_cycle(owner, total_steps, pct_start, anneal, three_phase)
    endpoints = [(max_momentum, base_momentum), (base_momentum, max_momentum)]
    if three_phase:
        endpoints.append((max_momentum, max_momentum))

    def schedule(step):
        t = float_step(step)
        return _piecewise(t, _phase_ends(total_steps, pct_start, three_phase), endpoints, anneal)

    return schedule
