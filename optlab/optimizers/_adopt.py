"""ADOPT: Adam with the normalization before the momentum (Taniguchi et al. 2024)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
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


def quarter_power(count: jax.Array) -> jax.Array:
    """c_t = t^{1/4}, the paper's clipping bound (optax's default ``clip_value_fn``)."""
    return count**0.25


def check_adopt_hyperparams(b1, b2, eps) -> None:
    _validation.check_unit_interval("adopt", "b1", b1, "Taniguchi et al. use b1=0.9.")
    if _validation.is_concrete_number(b2) and not 0.0 <= b2 <= 1.0:
        _validation.fail("adopt", "b2", b2, "in [0, 1]", "Taniguchi et al. use b2=0.9999.")
    _validation.check_non_negative("adopt", "eps", eps, "Taniguchi et al. use eps=1e-6.")


def _clip(x: jax.Array, c: jax.Array) -> jax.Array:
    """Clip(x, c): x clipped to [−c, c]; for complex x its modulus (the phase is kept)."""
    if jnp.iscomplexobj(x):
        r = jnp.abs(x)
        scale = jnp.where(r > c, c / jnp.where(r > 0, r, 1), 1)
        return x * scale.astype(x.dtype)
    return jnp.clip(x, -c, c)


def scale_by_adopt(
    b1: float = 0.9,
    b2: float = 0.9999,
    eps: float = 1e-6,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    use_clipping: bool = True,
    clip_value_fn: Callable[[jax.Array], jax.Array] | float = quarter_power,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    """ADOPT's direction m_t (Algorithm 2 without the step size α_t); see ``adopt``."""
    check_like("adopt", like, ("optax",))
    check_adopt_hyperparams(b1, b2, eps)

    def init_fn(params):
        return ScaleByAdamState(
            count=init_count(), mu=moment_zeros(params, mu_dtype), nu=zeros_like(params)
        )

    def paper_leaf(g, m, v, count, c):
        first = count == 0
        dtype = jnp.result_type(g, m)
        denom = jnp.maximum(jnp.sqrt(v.real), scalar_like(eps, v.real))  # max{√v_{t−1}, ε}
        normed = (g / denom.astype(g.dtype)).astype(dtype)
        if use_clipping:
            normed = _clip(normed, scalar_like(c, normed.real))
        m_new = scalar_like(b1, normed) * m.astype(dtype) + scalar_like(1.0 - b1, normed) * normed
        direction = m_new
        if nesterov:
            direction = scalar_like(b1, normed) * m_new + scalar_like(1.0 - b1, normed) * normed
        sq = abs_sq(g).astype(v.dtype)
        v_new = scalar_like(b2, v) * v + scalar_like(1.0 - b2, v) * sq
        # t = 0 only sets v_0 = g_0² (m_0 = 0, θ stays); nothing else is computed from it.
        return (
            jnp.where(first, jnp.zeros_like(g), direction.astype(g.dtype)),
            jnp.where(first, m, m_new.astype(m.dtype)),
            jnp.where(first, sq, v_new),
        )

    def optax_leaf(g, m, v, count, c):
        # optax.contrib.scale_by_adopt, term by term: its first step runs the same formulas
        # with β2 → 0 and β1 → 1 (so 0 · g/max(√0, ε)).
        b2_ = jnp.where(count > 0, b2, 0.0)
        b1_ = jnp.where(count > 0, b1, 1.0)
        dtype = jnp.result_type(g, m)
        sq = abs_sq(g).astype(v.dtype)
        v_new = scalar_like(1.0 - b2_, v) * sq + scalar_like(b2_, v) * v
        denom = jnp.maximum(jnp.sqrt(v.real), scalar_like(eps, v.real))
        normed = (g / denom.astype(g.dtype)).astype(dtype)
        if use_clipping:
            normed = _clip(normed, scalar_like(c, normed.real))
        one_minus, keep = scalar_like(1.0 - b1_, normed), scalar_like(b1_, normed)
        m_new = one_minus * normed + keep * m.astype(dtype)
        direction = one_minus * normed + keep * m_new if nesterov else m_new
        return direction.astype(g.dtype), m_new.astype(m.dtype), v_new

    leaf = optax_leaf if like == "optax" else paper_leaf

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        c = None
        if use_clipping:  # a number: a fixed bound (inject_hyperparams passes c_t so)
            c = clip_value_fn(state.count) if callable(clip_value_fn) else clip_value_fn
        out = jax.tree.map(
            lambda g, m, v: leaf(g, m, v, state.count, c), updates, state.mu, state.nu
        )
        direction, mu, nu = unzip(updates, out, 3)
        return direction, ScaleByAdamState(count=next_count(state.count), mu=mu, nu=nu)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def adopt(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.9999,
    eps: float = 1e-6,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    use_clipping: bool = True,
    clip_value_fn: Callable[[jax.Array], jax.Array] | float = quarter_power,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""ADOPT: Taniguchi et al.'s Algorithm 2, with the clipping of their practical version.

    ::

        v_0 ← g_0 ⊙ g_0,  m_0 ← 0                 (the first gradient moves nothing)
        for t = 1, 2, …
            g_t ← ∇_θ f_t(θ_{t−1})
            m_t ← β1·m_{t−1} + (1 − β1)·Clip( g_t / max{√v_{t−1}, ε}, c_t )
            θ_t ← θ_{t−1} − α_t·m_t
            v_t ← β2·v_{t−1} + (1 − β2)·g_t ⊙ g_t

    Clip(x, c) clips each coordinate to [−c, c], with c_t = t^{1/4} (the bound the updated
    paper proves convergent, and the authors' code's ``clip_lambda``). The current gradient
    never enters the v that divides it, and the division comes before the momentum: that
    is the whole change from Adam, and why any β2 ∈ [0, 1] converges.

    Symbols → arguments: α_t = ``learning_rate`` (a float, or a schedule read at the number
    of updates made: the update with g_t reads α(t)), β1 = ``b1``, β2 = ``b2``, ε = ``eps``,
    c_t = ``clip_value_fn(t)`` when ``use_clipping`` (``False``: the unclipped Algorithm 1
    of the first version). The defaults are the paper's (and the authors' code's):
    β1 = 0.9, β2 = 0.9999, ε = 1e-6. ``nesterov=True`` (optax's extension, not the paper's)
    steps along β1·m_t + (1 − β1)·Clip(…) instead of m_t; ``mu_dtype`` stores m in another
    dtype, as in optax.

    Versus the libraries: ``optax.contrib.adopt`` (same names, defaults and state, optax's
    ``ScaleByAdamState``) computes the same iterates; its clip index is the same t
    (``clip_value_fn(count)`` with count = t). It runs its first step through the general
    formulas with β2 → 0 and β1 → 1, i.e. m_0 = 1·0 + 0·Clip(g_0/max{0, ε}, 0), where the
    paper just sets v_0: they differ only where g_0/ε is not finite (ε = 0 with a zero
    coordinate in g_0, where 0/0 survives the clip, or ε = 0 without clipping, 0·∞):
    there optax's m is NaN for the rest of the run and the paper's is not;
    ``like="optax"`` reproduces that.
    torch.optim has no ADOPT (the authors' ``torch-adopt`` is a separate package):
    ``like="torch"`` raises.

    Complex parameters: v uses |g|² (optax's convention) and Clip clips the modulus
    of g/max{√v, ε}, keeping its phase (for real numbers, the same clipping), in both
    forms: ``optax.contrib.adopt`` itself raises there (``jnp.clip`` refuses complex values).

    Args:
      learning_rate: α ≥ 0, or a schedule.
      b1: β1 in [0, 1).
      b2: β2 in [0, 1] (1 keeps v_0 forever, which ADOPT allows).
      eps: ε ≥ 0.
      mu_dtype: the dtype of m (None: the params').
      nesterov: step along the Nesterov look-ahead of m (optax's option).
      use_clipping: clip the normalized gradient at c_t.
      clip_value_fn: c_t as a function of t (an int32 array), or a number (a fixed bound;
        ``optax.inject_hyperparams`` evaluates the function and passes c_t so).
      like: None (the paper) or ``"optax"``.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Example:
      >>> import jax.numpy as jnp, numpy as np, optlab
      >>> tx = optlab.adopt(0.1)
      >>> state = tx.init(jnp.zeros(2))
      >>> u0, state = tx.update(jnp.array([2.0, -1.0]), state)  # sets v_0 only
      >>> u1, state = tx.update(jnp.array([4.0, -1.0]), state)  # Clip(4/2, 1) = 1, 1·(−1)
      >>> print(float(jnp.abs(u0).max()), np.round(np.asarray(u1, float), 4))
      0.0 [-0.01  0.01]

    References:
      Taniguchi et al., "ADOPT: Modified Adam can converge with any β2 with the optimal
      rate", NeurIPS 2024 (arXiv:2411.02853).
    """
    check_like("adopt", like, ("optax",))
    _validation.check_learning_rate("adopt", learning_rate)
    direction = scale_by_adopt(
        b1,
        b2,
        eps,
        mu_dtype,
        nesterov=nesterov,
        use_clipping=use_clipping,
        clip_value_fn=clip_value_fn,
        like=like,
    )
    return with_learning_rate(direction, learning_rate)
