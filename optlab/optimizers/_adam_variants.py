"""Three Adam variants: AMSGrad (Reddi et al. 2018), AdaMax (Kingma & Ba 2015, §7.1) and
RAdam (Liu et al. 2020), each in its paper's form and in optax's and torch.optim's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optlab import _validation
from optlab.optimizers._adam import ScaleByAdamState
from optlab.optimizers._base import (
    ScalarOrSchedule,
    abs_sq,
    check_like,
    init_count,
    moment_zeros,
    next_count,
    scalar_like,
    unzip,
    with_learning_rate,
    zeros_like,
)

_LIBRARIES = ("optax", "torch")


class ScaleByAmsgradState(NamedTuple):
    """``count``: t (updates made); ``mu``: m_t, the biased 1st moment; ``nu``: v_t, the
    biased 2nd raw moment; ``nu_max``: the running maximum the update divides by (of v_t in
    the paper's and torch's forms, of v_t/(1 − β2^t) in optax's when it bias-corrects).
    optax's ``ScaleByAmsgradState``: the same names and fields."""

    count: jax.Array
    mu: optax.Updates
    nu: optax.Updates
    nu_max: optax.Updates


# --- shared pieces -------------------------------------------------------------------------


def _check_moments(owner: str, b1, b2, eps, eps_root=0.0) -> None:
    _validation.check_unit_interval(owner, "b1", b1, "The papers use b1=0.9.")
    _validation.check_unit_interval(owner, "b2", b2, "The papers use b2=0.999.")
    _validation.check_non_negative(owner, "eps", eps, "Use eps=1e-8.")
    _validation.check_non_negative(owner, "eps_root", eps_root, "Use 0 unless differentiating.")


def _ema(decay, old: jax.Array, new: jax.Array) -> jax.Array:
    """β·old + (1 − β)·new in ``old``'s dtype."""
    return scalar_like(decay, old) * old + scalar_like(1.0 - decay, old) * new.astype(old.dtype)


def _real_view(fn: Callable[..., tuple[jax.Array, ...]]) -> Callable[..., tuple[jax.Array, ...]]:
    """``fn`` (written for real arrays) on complex leaves as torch.optim runs it: on the real
    and the imaginary parts separately (``torch.view_as_real``), recombined."""

    def wrapped(*leaves):
        if not any(jnp.iscomplexobj(x) for x in leaves):
            return fn(*leaves)
        real = fn(*(jnp.real(x) for x in leaves))
        imag = fn(*(jnp.imag(x) for x in leaves))
        return tuple(jax.lax.complex(r, i) for r, i in zip(real, imag, strict=True))

    return wrapped


def _correction(b, t: jax.Array) -> jax.Array:
    """The bias correction 1 − b^t (optax's and torch's evaluation)."""
    return 1.0 - jnp.asarray(b) ** t


# --- AMSGrad --------------------------------------------------------------------------------


def _check_flag(owner: str, name: str, value: Any) -> None:
    if value is not None and not isinstance(value, bool):
        _validation.fail(owner, name, value, "True, False or None", "None: the form's default.")


def scale_by_amsgrad(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    bias_correction_mu: bool | None = None,
    bias_correction_nu: bool | None = None,
    *,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    """AMSGrad's direction (the update without −α_t); see ``amsgrad``."""
    check_like("amsgrad", like, _LIBRARIES)
    _check_moments("amsgrad", b1, b2, eps, eps_root)
    _check_flag("amsgrad", "bias_correction_mu", bias_correction_mu)
    _check_flag("amsgrad", "bias_correction_nu", bias_correction_nu)
    library = like is not None  # the libraries bias-correct both moments by default
    correct_mu = library if bias_correction_mu is None else bias_correction_mu
    correct_nu = library if bias_correction_nu is None else bias_correction_nu

    def init_fn(params):
        z = zeros_like(params)
        return ScaleByAmsgradState(
            count=init_count(), mu=moment_zeros(params, mu_dtype), nu=z, nu_max=z
        )

    def paper_leaf(c1, c2):
        # The paper (and optax): v̂ ← max(v̂, v) or, correcting, max(v̂, v/(1 − β2^t)).
        def leaf(g, m, v, v_max):
            dtype = jnp.result_type(g, m)
            m = _ema(b1, m.astype(dtype), g)
            v = _ema(b2, v, abs_sq(g))
            v_new = v / scalar_like(c2, v) if correct_nu else v
            v_max = jnp.maximum(v_max.real, v_new.real).astype(v_max.dtype)
            m_hat = m / scalar_like(c1, m) if correct_mu else m
            root = jnp.sqrt(v_max.real + scalar_like(eps_root, v_max.real))
            return m_hat / (root + scalar_like(eps, root)), m, v, v_max

        return leaf

    def torch_leaf(c1, c2):
        # torch.optim.Adam(amsgrad=True): the maximum of the raw v, corrected afterwards:
        # denom = √max(v)/√(1 − β2^t) + ε (eps_root inside the root, as √(v̂_max + eps_root)).
        @_real_view
        def leaf(g, m, v, v_max):
            dtype = jnp.result_type(g, m)
            m = _ema(b1, m.astype(dtype), g)
            v = _ema(b2, v, g * g)
            v_max = jnp.maximum(v_max, v)
            m_hat = m / scalar_like(c1, m) if correct_mu else m
            if correct_nu:
                c2_ = scalar_like(c2, v_max)
                root = jnp.sqrt(v_max + scalar_like(eps_root, v_max) * c2_) / jnp.sqrt(c2_)
            else:
                root = jnp.sqrt(v_max + scalar_like(eps_root, v_max))
            return m_hat / (root + scalar_like(eps, root)), m, v, v_max

        return leaf

    make_leaf = torch_leaf if like == "torch" else paper_leaf

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        t = next_count(state.count)
        c1 = _correction(b1, t)
        c2 = _correction(b2, t)
        out = jax.tree.map(make_leaf(c1, c2), updates, state.mu, state.nu, state.nu_max)
        direction, mu, nu, nu_max = unzip(updates, out, 4)
        direction = jax.tree.map(lambda d, g: d.astype(g.dtype), direction, updates)
        mu = jax.tree.map(lambda m, old: m.astype(old.dtype), mu, state.mu)
        return direction, ScaleByAmsgradState(count=t, mu=mu, nu=nu, nu_max=nu_max)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def amsgrad(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    bias_correction_mu: bool | None = None,
    bias_correction_nu: bool | None = None,
    *,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""AMSGrad: Reddi, Kale & Kumar's Algorithm 2, Adam that never lets v̂ shrink.

    ::

        m_0 = v_0 = v̂_0 = 0
        for t = 1, 2, …
            g_t ← ∇f_t(x_t)
            m_t ← β1·m_{t−1} + (1 − β1)·g_t
            v_t ← β2·v_{t−1} + (1 − β2)·g_t²
            v̂_t ← max(v̂_{t−1}, v_t)
            x_{t+1} ← x_t − α_t·m_t / (√(v̂_t + eps_root) + ε)

    Symbols → arguments: α_t = ``learning_rate`` (a float or a schedule of the number of
    updates made; the paper's theorem takes α_t = α/√t, ``lambda n: α / jnp.sqrt(n + 1)``),
    β1 = ``b1``, β2 = ``b2``, ε = ``eps``, ``eps_root`` (optax's, inside the root). The box
    has no bias correction and no ε (ε = 0, eps_root = 0 is it exactly; the ε here keeps
    0/0 away where a coordinate's gradients were all 0); its β_{1t} is the constant β1 (as
    in its experiments) and its projection onto the feasible set is the identity
    (unconstrained). Defaults: optax's (β1 = 0.9, β2 = 0.999, ε = 1e-8, eps_root = 0).
    ``bias_correction_mu`` and ``bias_correction_nu`` are optax's switches; None takes the
    form's default (False for the paper's, True for optax's and torch's): ``True`` steps
    along m̂_t = m_t/(1 − β1^t), resp. corrects v as below; ``mu_dtype`` stores m in
    another dtype, as in optax.

    Versus the libraries (the later common practice bias-corrects m, and both libraries
    do; they correct v at different places):

    * ``optax.amsgrad`` (``like="optax"``; the same names, defaults, switches and state)
      takes the maximum of the bias-corrected second moment:
      v̂_t = max(v̂_{t−1}, v_t/(1 − β2^t)), x ← x − α_t·m̂_t/(√(v̂_t + eps_root) + ε).
      With both switches False it is the paper's form; the two forms differ only in the
      switches' defaults.
    * ``torch.optim.Adam(amsgrad=True)`` (``like="torch"``) takes the maximum of the raw
      v and corrects it afterwards: v̂_t = max(v̂_{t−1}, v_t),
      x ← x − (α_t/(1 − β1^t))·m_t/(√v̂_t/√(1 − β2^t) + ε). As 1 − β2^t grows with t,
      max_{s≤t} v_s/(1 − β2^t) ≤ max_{s≤t} v_s/(1 − β2^s): torch's denominator is never
      larger than optax's, and smaller once an earlier v holds the maximum.
      ``bias_correction_nu=False`` drops the 1/√(1 − β2^t) (then the paper's
      denominator), ``bias_correction_mu=False`` the 1/(1 − β1^t); eps_root enters as
      √(v̂_t/(1 − β2^t) + eps_root). For complex parameters torch
      works on the real and imaginary parts separately (``view_as_real``: v holds
      (Re g)² and (Im g)² apart), and so does this form.

    The paper's and optax's forms follow optax's convention for complex parameters (g² is
    |g|²; pass conjugated gradients).

    Args:
      learning_rate: α ≥ 0, or a schedule.
      b1: β1 in [0, 1).
      b2: β2 in [0, 1).
      eps: ε ≥ 0.
      eps_root: ≥ 0, added to v̂ inside the square root.
      mu_dtype: the dtype of m (None: the params').
      bias_correction_mu: divide m by 1 − β1^t (None: the form's default).
      bias_correction_nu: divide v by 1 − β2^t (None: the form's default).
      like: None (the paper), ``"optax"`` or ``"torch"``.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Example:
      >>> import jax.numpy as jnp, numpy as np, optlab
      >>> g = jnp.array([12.0, -8.0])
      >>> for like in (None, "optax"):
      ...     tx = optlab.amsgrad(0.1, like=like)
      ...     updates, _ = tx.update(g, tx.init(jnp.zeros(2)))
      ...     print(like, np.round(np.asarray(updates, float), 4))
      None [-0.3162  0.3162]
      optax [-0.1  0.1]

      The paper's first step is −α·(1 − β1)/√(1 − β2)·sign(g): it has no bias correction.

    References:
      Reddi, Kale & Kumar, "On the convergence of Adam and beyond", ICLR 2018.
    """
    check_like("amsgrad", like, _LIBRARIES)
    _validation.check_learning_rate("amsgrad", learning_rate)
    direction = scale_by_amsgrad(
        b1, b2, eps, eps_root, mu_dtype, bias_correction_mu, bias_correction_nu, like=like
    )
    return with_learning_rate(direction, learning_rate)


# --- AdaMax ---------------------------------------------------------------------------------


def scale_by_adamax(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    """AdaMax's direction (the update without −α); see ``adamax``."""
    check_like("adamax", like, _LIBRARIES)
    _check_moments("adamax", b1, b2, eps)

    def init_fn(params):
        return ScaleByAdamState(count=init_count(), mu=zeros_like(params), nu=zeros_like(params))

    def paper_leaf(c1):
        # u_t = max(β2·u_{t−1}, |g_t|); the step m̂/(u + ε) (the paper has no ε).
        def leaf(g, m, u):
            m = _ema(b1, m, g)
            a = jnp.abs(g).astype(u.real.dtype)
            u_new = jnp.maximum(scalar_like(b2, u.real) * u.real, a)
            direction = m / scalar_like(c1, m) / (u_new + scalar_like(eps, u_new))
            return direction, m, u_new.astype(u.dtype)

        return leaf

    def optax_leaf(c1):
        # optax.scale_by_adamax: u_t = max(|g_t| + ε, β2·u_{t−1}); the step m̂/u.
        def leaf(g, m, u):
            m = _ema(b1, m, g)
            a = jnp.abs(g).astype(u.real.dtype)
            u_new = jnp.maximum(a + scalar_like(eps, a), scalar_like(b2, u.real) * u.real)
            return m / scalar_like(c1, m) / u_new, m, u_new.astype(u.dtype)

        return leaf

    def torch_leaf(c1):
        # torch.optim.Adamax: the same formula on real numbers; complex: per real part.
        @_real_view
        def leaf(g, m, u):
            m = _ema(b1, m, g)
            u_new = jnp.maximum(scalar_like(b2, u) * u, jnp.abs(g) + scalar_like(eps, u))
            return m / scalar_like(c1, m) / u_new, m, u_new

        return leaf

    make_leaf = {None: paper_leaf, "optax": optax_leaf, "torch": torch_leaf}[like]

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        t = next_count(state.count)
        c1 = _correction(b1, t)
        out = jax.tree.map(make_leaf(c1), updates, state.mu, state.nu)
        direction, mu, nu = unzip(updates, out, 3)
        direction = jax.tree.map(lambda d, g: d.astype(g.dtype), direction, updates)
        return direction, ScaleByAdamState(count=t, mu=mu, nu=nu)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def adamax(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""AdaMax: Kingma & Ba's Algorithm 2 (§7.1), Adam with the infinity norm.

    ::

        m_0 = u_0 = 0
        for t = 1, 2, …
            g_t ← ∇_θ f_t(θ_{t−1})
            m_t ← β1·m_{t−1} + (1 − β1)·g_t
            u_t ← max(β2·u_{t−1}, |g_t|)
            θ_t ← θ_{t−1} − (α/(1 − β1^t))·m_t / (u_t + ε)

    Symbols → arguments: α = ``learning_rate`` (a float, or a schedule α_t of the number of
    updates made), β1 = ``b1``, β2 = ``b2``, ε = ``eps``. u_t needs no bias correction (it
    is a maximum, not an average). The paper has no ε (ε = 0 is its box exactly; u_t = 0
    only where every gradient so far was 0); here it is added to u_t outside the maximum,
    as Adam adds it to √v̂_t, so that u_t stays the paper's. Defaults: optax's and torch's,
    which are the paper's β's (α = 0.002 is the paper's suggestion; torch's default too).
    The state is optax's ``ScaleByAdamState`` with ``nu`` = u.

    Versus the libraries: ``optax.adamax`` (``like="optax"``) and ``torch.optim.Adamax``
    (``like="torch"``) put ε inside the maximum, where the decay carries it along:

        u_t = max(β2·u_{t−1}, |g_t| + ε),   θ_t ← θ_{t−1} − (α/(1 − β1^t))·m_t / u_t.

    The paper's form divides by max(β2·u_{t−1}, |g_t|) + ε instead: the same step to
    within ε/u_t, differing where gradients are as small as ε (or ε is large). optax and
    torch compute the same iterates for real parameters. For complex ones optax's |g| is
    the modulus (as here in the paper's form), while torch runs the formula on the real
    and imaginary parts separately (``view_as_real``), and so does ``like="torch"``.

    Args:
      learning_rate: α ≥ 0, or a schedule.
      b1: β1 in [0, 1).
      b2: β2 in [0, 1).
      eps: ε ≥ 0.
      like: None (the paper), ``"optax"`` or ``"torch"``.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Example:
      >>> import jax.numpy as jnp, numpy as np, optlab
      >>> tx = optlab.adamax(0.1)
      >>> state = tx.init(jnp.zeros(2))
      >>> u1, state = tx.update(jnp.array([12.0, -8.0]), state)  # −α·g/|g|
      >>> u2, state = tx.update(jnp.array([1.0, -1.0]), state)  # u_2 = β2·|g_1|
      >>> print(np.round(np.asarray(u1, float), 4), np.round(np.asarray(u2, float), 4))
      [-0.1  0.1] [-0.0518  0.054 ]

    References:
      Kingma & Ba, "Adam: A method for stochastic optimization", ICLR 2015, §7.1.
    """
    check_like("adamax", like, _LIBRARIES)
    _validation.check_learning_rate("adamax", learning_rate)
    return with_learning_rate(scale_by_adamax(b1, b2, eps, like=like), learning_rate)


# --- RAdam ----------------------------------------------------------------------------------

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
