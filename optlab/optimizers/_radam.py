"""RAdam: Adam with the variance of its adaptive rate rectified (Liu et al. 2020)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optlab import _validation
from optlab.optimizers._adam import ScaleByAdamState
from optlab.optimizers._adam_common import (
    _LIBRARIES,
    _check_moments,
    _correction,
    _ema,
    _real_view,
)
from optlab.optimizers._base import (
    ScalarOrSchedule,
    abs_sq,
    check_like,
    init_count,
    next_count,
    scalar_like,
    with_learning_rate,
    zeros_like,
)

_PAPER_THRESHOLD = 4.0  # ρ_t > 4: the variance of the adaptive rate is tractable
_LIBRARY_THRESHOLD = 5.0  # optax (ρ_t ≥ 5), torch (ρ_t > 5), the authors' code


def _check_threshold(threshold) -> None:
    if _validation.is_concrete_number(threshold) and not threshold >= 4.0:
        _validation.fail(
            "radam",
            "threshold",
            threshold,
            "a number >= 4",
            "r_t is real only for ρ_t > 4; the paper uses 4, optax and torch 5 (None).",
        )


def _langevin(y: jax.Array) -> jax.Array:
    """L(y) = coth(y) − 1/y for y ≥ 0, without cancellation near 0."""
    small = y < 0.1
    y2 = y * y  # the series to y⁷ (the next term is below 1e-15 at 0.1)
    series = y * (1 / 3 - y2 * (1 / 45 - y2 * (2 / 945 - y2 * (1 / 4725))))
    safe = jnp.where(small, 1.0, y)
    return jnp.where(small, series, 1.0 / jnp.tanh(safe) - 1.0 / safe)


def _sma_length(b2, t: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(ρ_t, ρ_∞, 1 − β2^t): ρ_∞ = 2/(1 − β2) − 1, ρ_t = ρ_∞ − 2t·β2^t/(1 − β2^t).

    With s = −log β2 these are ρ_∞ = coth(s/2) and ρ_t = t + L(s/2) − t·L(t·s/2), where
    L(y) = coth(y) − 1/y (the Langevin function): the same numbers without the cancellation
    of ρ_∞ against 2t·β2^t/(1 − β2^t) (both ≈ 2/s while t·s is small), used while
    t·s < 2; beyond, the direct formula has no cancellation to fear. ρ_t is then accurate
    to ~1e-5 in float32 and ~1e-14 in float64 (relative), where the direct formula (optax's
    and torch's) is off by ~0.04 in float32 at β2 = 0.999 (enough to move the switch by a
    step near the threshold) and by up to 5e-9 in float64 at β2 = 0.9999.
    """
    tf = t.astype(jnp.result_type(float))
    if _validation.is_concrete_number(b2):
        with np.errstate(divide="ignore"):
            s = -float(np.log(np.float64(b2)))  # ∞ for β2 = 0 (then ρ_t = ρ_∞ = 1)
        rho_inf = jnp.asarray(2.0 / (1.0 - b2) - 1.0, tf.dtype)
    else:
        s = -jnp.log(b2)
        rho_inf = (2.0 / (1.0 - b2) - 1.0).astype(tf.dtype)
    s = jnp.asarray(s, tf.dtype)
    ts = tf * s
    correction = -jnp.expm1(-ts)
    early = ts < 2.0
    rho_early = tf + _langevin(0.5 * s) - tf * _langevin(0.5 * jnp.where(early, ts, 0.0))
    rho_late = rho_inf - 2.0 * tf * jnp.exp(-ts) / jnp.where(early, 1.0, correction)
    rho = jnp.where(early, rho_early, rho_late)
    return rho, rho_inf, correction


def scale_by_radam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    threshold: float | None = None,
    *,
    nesterov: bool = False,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    """RAdam's direction (the update without −α_t); see ``radam``."""
    check_like("radam", like, _LIBRARIES)
    _check_moments("radam", b1, b2, eps, eps_root)
    if threshold is None:
        threshold = _PAPER_THRESHOLD if like is None else _LIBRARY_THRESHOLD
    _check_threshold(threshold)

    def init_fn(params):
        return ScaleByAdamState(count=init_count(), mu=zeros_like(params), nu=zeros_like(params))

    def paper_leaf(c2, r, rectified):
        # l_t = 1/(√(v_t/(1 − β2^t) + eps_root) + ε): optax's, and the paper's with ε = 0.
        def leaf(m_hat, v):
            v_hat = v.real / scalar_like(c2, v.real)
            root = jnp.sqrt(v_hat + scalar_like(eps_root, v_hat))
            adapted = scalar_like(r, m_hat) * m_hat / (root + scalar_like(eps, root))
            return (jnp.where(rectified, adapted, m_hat),)

        return leaf

    def torch_leaf(c2, r, rectified):
        # torch.optim.RAdam: l_t = √(1 − β2^t)/(√v_t + ε), ε on the uncorrected root.
        @_real_view
        def leaf(m_hat, v):
            c2_ = scalar_like(c2, v)
            root = jnp.sqrt(v + scalar_like(eps_root, v) * c2_)
            adapted = m_hat * (jnp.sqrt(c2_) / (root + scalar_like(eps, root))) * scalar_like(r, v)
            return (jnp.where(rectified, adapted, m_hat),)

        return leaf

    @_real_view
    def torch_second_moment(v, g):  # per real part for complex leaves (view_as_real)
        return (_ema(b2, v, g * g),)

    make_leaf = torch_leaf if like == "torch" else paper_leaf

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        t = next_count(state.count)
        rho, rho_inf, c2 = _sma_length(b2, t)
        rectified = rho >= threshold if like == "optax" else rho > threshold
        ratio = ((rho - 4.0) * (rho - 2.0) * rho_inf) / jnp.where(
            rectified, (rho_inf - 4.0) * (rho_inf - 2.0) * rho, 1.0
        )
        r = jnp.sqrt(jnp.where(rectified, ratio, 1.0))
        c1 = _correction(b1, t)
        c1_next = _correction(b1, next_count(t))
        mu = jax.tree.map(lambda m, g: _ema(b1, m, g), state.mu, updates)
        if like == "torch":
            nu = jax.tree.map(lambda v, g: torch_second_moment(v, g)[0], state.nu, updates)
        else:
            nu = jax.tree.map(lambda v, g: _ema(b2, v, abs_sq(g)), state.nu, updates)

        def corrected(m, g):
            if not nesterov:
                return m / scalar_like(c1, m)
            # optax's: β1·m_t/(1 − β1^{t+1}) + (1 − β1)·g_t/(1 − β1^t)
            ahead = scalar_like(b1, m) * m / scalar_like(c1_next, m)
            return ahead + scalar_like(1.0 - b1, m) * g.astype(m.dtype) / scalar_like(c1, m)

        m_hat = jax.tree.map(corrected, mu, updates)
        leaf = make_leaf(c2, r, rectified)
        direction = jax.tree.map(lambda m, v, g: leaf(m, v)[0].astype(g.dtype), m_hat, nu, updates)
        return direction, ScaleByAdamState(count=t, mu=mu, nu=nu)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def radam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    threshold: float | None = None,
    *,
    nesterov: bool = False,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""RAdam: Liu et al.'s Algorithm 2, Adam whose adaptive rate waits for enough samples.

    ::

        m_0 = v_0 = 0,   ρ_∞ ← 2/(1 − β2) − 1
        for t = 1, 2, …
            g_t ← ∇_θ f_t(θ_{t−1})
            v_t ← β2·v_{t−1} + (1 − β2)·g_t²
            m_t ← β1·m_{t−1} + (1 − β1)·g_t
            m̂_t ← m_t / (1 − β1^t)
            ρ_t ← ρ_∞ − 2t·β2^t/(1 − β2^t)
            if ρ_t > 4:                       (the variance of the adaptive rate is tractable)
                l_t ← 1/(√(v_t/(1 − β2^t) + eps_root) + ε)
                r_t ← √[ (ρ_t − 4)(ρ_t − 2)ρ_∞ / ((ρ_∞ − 4)(ρ_∞ − 2)ρ_t) ]
                θ_t ← θ_{t−1} − α_t·r_t·m̂_t·l_t
            else:
                θ_t ← θ_{t−1} − α_t·m̂_t      (un-adapted momentum)

    Symbols → arguments: α_t = ``learning_rate`` (a float or a schedule of the number of
    updates made), β1 = ``b1``, β2 = ``b2``, ε = ``eps``, ``eps_root`` (optax's), and the
    4 is ``threshold`` (None: the form's, 4 for the paper's, 5 for optax's and torch's).
    The paper's l_t is √((1 − β2^t)/v_t), i.e. ε = eps_root = 0 here. ρ_1 = 1 for every β2,
    and ρ_t grows to ρ_∞: at β2 = 0.999, ρ_5 ≈ 4.996 and ρ_6 ≈ 5.994, so the paper's form
    adapts from the 5th update, optax's and torch's from the 6th; β2 ≤ 0.6 (ρ_∞ ≤ 4) never
    adapts. ``nesterov=True`` (optax's option, not the paper's; allowed in every form)
    replaces m̂_t by β1·m_t/(1 − β1^{t+1}) + (1 − β1)·g_t/(1 − β1^t). Defaults: optax's and
    torch's, which are the paper's β's.

    Versus the libraries:

    * ``optax.radam`` (``like="optax"``; same names, defaults and state): threshold 5 and
      ``ρ_t ≥ threshold``; otherwise the same formulas (ε outside the root of the
      bias-corrected v̂_t, as above).
    * ``torch.optim.RAdam`` (``like="torch"``, weight_decay = 0): ``ρ_t > 5`` and ε added
      to the root of the uncorrected v_t:
      l_t = √(1 − β2^t)/(√v_t + ε) = 1/(√v̂_t + ε/√(1 − β2^t)), so its ε is larger by
      1/√(1 − β2^t) (≈ 13 at the first adapted step, t = 6, for β2 = 0.999); eps_root
      enters as √(v_t + eps_root·(1 − β2^t)). For complex parameters torch works on the real and
      imaginary parts separately (``view_as_real``), and so does this form; the others use
      |g|² (optax's convention).

    ρ_t is evaluated without cancellation (``_sma_length``): the same formula as the
    libraries', to ~1e-5 in float32 where their direct evaluation is off by up to ~0.04
    (at β2 = 0.999), so a float32 run can switch a step apart from optax's where ρ_t lies
    that close to the threshold; in float64 the forms agree to rounding.

    Args:
      learning_rate: α ≥ 0, or a schedule.
      b1: β1 in [0, 1).
      b2: β2 in [0, 1).
      eps: ε ≥ 0.
      eps_root: ≥ 0, added to v̂ inside the square root.
      threshold: ρ_t above which the adaptive step is taken, ≥ 4 (None: the form's).
      nesterov: Nesterov momentum for m̂ (optax's option).
      like: None (the paper), ``"optax"`` or ``"torch"``.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Example:
      >>> import jax.numpy as jnp, numpy as np, optlab
      >>> tx = optlab.radam(0.1)
      >>> updates, _ = tx.update(jnp.array([12.0, -8.0]), tx.init(jnp.zeros(2)))
      >>> # ρ_1 = 1 ≤ 4: the first step is momentum SGD, −α·m̂_1 = −α·g_1
      >>> print(np.round(np.asarray(updates, float), 4))
      [-1.2  0.8]

    References:
      Liu, Jiang, He, Chen, Liu, Gao & Han, "On the variance of the adaptive learning rate
      and beyond", ICLR 2020 (arXiv:1908.03265).
    """
    check_like("radam", like, _LIBRARIES)
    _validation.check_learning_rate("radam", learning_rate)
    direction = scale_by_radam(b1, b2, eps, eps_root, threshold, nesterov=nesterov, like=like)
    return with_learning_rate(direction, learning_rate)
