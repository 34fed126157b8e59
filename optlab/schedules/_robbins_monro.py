"""Lecture 04's Robbins–Monro conditions, checked numerically over a finite horizon."""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

OWNER = "robbins_monro"


def _mark(ok: bool) -> str:
    return "✓" if ok else "✗"


@dataclasses.dataclass(frozen=True)
class RobbinsMonroReport:
    """What ``robbins_monro`` found for γ^{(t)}, t = ``first_step`` … over ``horizon`` steps.

    ``limit_is_zero``: condition (i) lim γ = 0 appears to hold, decided by
    ``limit_ratio`` = ``tail_peak`` / ``peak`` ≤ ``limit_rtol``. ``sum_diverges``: condition
    (ii) Σγ = ∞ appears to hold, decided by ``sum_ratio`` = ``tail_sum`` / ``partial_sum`` ≥
    ``sum_rtol``. The tail is the second half of the horizon, (H/2, H].
    """

    limit_is_zero: bool
    sum_diverges: bool
    horizon: int
    first_value: float
    peak: float
    tail_peak: float
    partial_sum: float
    tail_sum: float
    limit_ratio: float
    sum_ratio: float
    limit_rtol: float
    sum_rtol: float

    @property
    def both(self) -> bool:
        """Both conditions appear to hold: SGD with this rate converges (lecture 04)."""
        return self.limit_is_zero and self.sum_diverges

    def __str__(self) -> str:
        return "\n".join(
            [
                f"Robbins–Monro over {self.horizon} steps (a finite-horizon heuristic): "
                f"{'both hold' if self.both else 'not both'}",
                f"  (i)  lim γ = 0: {_mark(self.limit_is_zero)}  max γ on (H/2, H] = "
                f"{self.tail_peak:.3g} is {self.limit_ratio:.3g} × max γ = {self.peak:.3g} "
                f"(✓ if ≤ {self.limit_rtol:g})",
                f"  (ii) Σ γ = ∞:   {_mark(self.sum_diverges)}  Σγ on (H/2, H] = "
                f"{self.tail_sum:.3g} is {self.sum_ratio:.3g} × Σγ on [1, H] = "
                f"{self.partial_sum:.4g} (✓ if ≥ {self.sum_rtol:g})",
            ]
        )


def robbins_monro(
    schedule: Callable[[Any], Any],
    horizon: int = 10**6,
    *,
    first_step: int = 1,
    limit_rtol: float = 1e-2,
    sum_rtol: float = 1e-3,
) -> RobbinsMonroReport:
    """Whether a rate γ^{(t)} appears to satisfy lecture 04's conditions for SGD to converge.

    Lecture 04 (t from 1)::

        (i)  lim_{t→∞} γ^{(t)} = 0          (ii)  Σ_{t=1}^{∞} γ^{(t)} = ∞

    A finite horizon H cannot decide a limit or a divergent sum, so this is a stated
    heuristic on γ evaluated at t = 1 … H (vectorised, summed in NumPy float64):

    - (i) holds if the largest γ on the second half (H/2, H] is at most ``limit_rtol`` times
      the largest γ on [1, H]: the rate has fallen by orders of magnitude and does not come
      back (a cyclical rate does come back). Rates that decay slower than about t^(−0.35)
      at H = 10⁶ are reported as not tending to 0; raise the horizon.
    - (ii) holds if the sum over the second half is at least ``sum_rtol`` times the partial
      sum Σ_{t≤H} γ. For a divergent sum that share stays away from 0 as H grows (1/2 for a
      constant, log 2 / log H ≈ 0.05 for 1/t, ≈ 0.29 for 1/√t); for a convergent one it
      vanishes (≈ 6·10⁻⁷ for 1/t², 0 for e^{−t}). Sums that converge slowly (t^{−p} with
      p below about 1.4) look divergent at H = 10⁶.

    Lecture 04's table: γ = 1 → (i) ✗ (ii) ✓; γ = 1/t → ✓ ✓; γ = e^{−t} → ✓ ✗.

    Args:
      schedule: γ, a function of an array of steps (NumPy float64; a jax schedule is
        evaluated in jax's default float dtype) returning an array of rates ≥ 0, or a scalar.
      horizon: H ≥ 4, the number of steps evaluated.
      first_step: the argument that gives γ^{(1)}: 1 for the lecture's t, 0 for optlab's and
        optax's schedules, which count updates from 0.
      limit_rtol: the tolerance of (i), in (0, 1).
      sum_rtol: the tolerance of (ii), in (0, 1).

    Returns:
      A frozen ``RobbinsMonroReport`` (``limit_is_zero``, ``sum_diverges``, ``both`` and the
      numbers behind them); ``print`` it for a summary.

    Example:
      >>> import numpy as np, optlab.schedules as sch
      >>> report = sch.robbins_monro(lambda t: 1 / t)
      >>> report.limit_is_zero, report.sum_diverges
      (True, True)
      >>> sch.robbins_monro(lambda t: np.exp(-t)).both
      False
      >>> sch.robbins_monro(sch.inverse_time_decay(1.0, 1.0), first_step=0).both
      True

    References:
      Robbins & Monro, "A stochastic approximation method", Ann. Math. Statist. 1951.
    """
    if not callable(schedule):
        raise ValueError(
            f"{OWNER}: `schedule` must be a function t -> γ(t), got {schedule!r}. "
            "Pass e.g. lambda t: 1 / t."
        )
    if not (isinstance(horizon, numbers.Integral) and horizon >= 4):
        raise ValueError(f"{OWNER}: `horizon` must be an integer >= 4, got {horizon!r}. Use 10**6.")
    for name, value in (("limit_rtol", limit_rtol), ("sum_rtol", sum_rtol)):
        if not 0.0 < value < 1.0:
            raise ValueError(f"{OWNER}: `{name}` must be in (0, 1), got {value!r}.")
    t = np.arange(first_step, first_step + horizon, dtype=np.float64)
    gamma = np.broadcast_to(np.asarray(schedule(t), dtype=np.float64), t.shape)
    bad = ~np.isfinite(gamma) | (gamma < 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"{OWNER}: `schedule` must give finite rates >= 0, "
            f"got γ({t[i]:g}) = {float(gamma[i])!r}."
        )
    tail = gamma[horizon // 2 :]
    peak, tail_peak = float(gamma.max()), float(tail.max())
    partial_sum, tail_sum = float(gamma.sum()), float(tail.sum())
    limit_ratio = tail_peak / peak if peak > 0 else 0.0
    sum_ratio = tail_sum / partial_sum if partial_sum > 0 else 0.0
    return RobbinsMonroReport(
        limit_is_zero=limit_ratio <= limit_rtol,
        sum_diverges=sum_ratio >= sum_rtol,
        horizon=horizon,
        first_value=float(gamma[0]),
        peak=peak,
        tail_peak=tail_peak,
        partial_sum=partial_sum,
        tail_sum=tail_sum,
        limit_ratio=limit_ratio,
        sum_ratio=sum_ratio,
        limit_rtol=limit_rtol,
        sum_rtol=sum_rtol,
    )
