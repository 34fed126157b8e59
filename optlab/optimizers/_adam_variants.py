"""Three Adam variants: AMSGrad (Reddi et al. 2018), AdaMax (Kingma & Ba 2015, §7.1) and
RAdam (Liu et al. 2020; in ``_radam``, re-exported here), each in its paper's form and in
optax's and torch.optim's."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab import _validation
from optlab.optimizers._adam import ScaleByAdamState
from optlab.optimizers._adam_common import (
    _LIBRARIES,
    _check_flag,
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
    moment_zeros,
    next_count,
    scalar_like,
    unzip,
    with_learning_rate,
    zeros_like,
)
from optlab.optimizers._radam import _sma_length, radam, scale_by_radam  # noqa: F401  (re-exported)


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
