"""Prodigy: Adam whose step size is estimated on line (Mishchenko & Defazio 2024)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab import _validation
from optlab.optimizers._base import (
    ScalarOrSchedule,
    abs_sq,
    check_like,
    init_count,
    learning_rate_at,
    next_count,
    real_dtype,
    scalar_dtype,
    scalar_like,
    unzip,
)


class ProdigyState(NamedTuple):
    """optax.contrib's ``ProdigyState``: the same fields, in the same order.

    ``exp_avg``: m; ``exp_avg_sq``: v; ``grad_sum``: s; ``params0``: x_0; ``estim_lr``: d
    (a scalar, shared by all leaves); ``numerator_weighted``: r; ``count``: updates made.
    """

    exp_avg: Any
    exp_avg_sq: Any
    grad_sum: Any
    params0: Any
    estim_lr: jax.Array
    numerator_weighted: jax.Array
    count: jax.Array


def _real_inner(a: jax.Array, b: jax.Array, dtype: Any) -> jax.Array:
    """⟨a, b⟩ = Re Σ conj(a)·b, accumulated in ``dtype`` (the real inner product of ℂⁿ ≅ ℝ²ⁿ)."""
    a, b = a.astype(jnp.promote_types(a.dtype, dtype)), b.astype(jnp.promote_types(b.dtype, dtype))
    return jnp.sum((jnp.conj(a) * b).real).astype(dtype)


def _tree_real_inner(a: Any, b: Any, dtype: Any) -> jax.Array:
    """⟨a, b⟩ over all the leaves together."""
    leaves = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return sum((_real_inner(x, y, dtype) for x, y in leaves), jnp.zeros([], dtype))


def _tree_l1(tree: Any, dtype: Any) -> jax.Array:
    """‖s‖_1 = Σ|s_i| over all the leaves (moduli for complex), accumulated in ``dtype``."""
    total = jnp.zeros([], dtype)
    for x in jax.tree.leaves(tree):
        total = total + jnp.sum(jnp.abs(x).astype(jnp.promote_types(real_dtype(x.dtype), dtype)))
    return total.astype(dtype)


def _check(learning_rate, betas, beta3, eps, estim_lr0, estim_lr_coef, weight_decay, like):
    owner = "prodigy"
    check_like(owner, like, ("optax",))
    _validation.check_learning_rate(owner, learning_rate)
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
        _validation.fail(owner, "betas", betas, "a pair (β1, β2)", "Use (0.9, 0.999).")
    _validation.check_unit_interval(owner, "betas[0]", betas[0], "Use 0.9.")
    _validation.check_unit_interval(owner, "betas[1]", betas[1], "Use 0.999.")
    if beta3 is not None:
        _validation.check_unit_interval(owner, "beta3", beta3, "None is √β2.")
    _validation.check_non_negative(owner, "eps", eps, "Use 1e-8.")
    if _validation.is_concrete_number(estim_lr0) and not (0 < estim_lr0 < float("inf")):
        _validation.fail(owner, "estim_lr0", estim_lr0, "a finite number > 0", "Use 1e-6.")
    _validation.check_non_negative(owner, "estim_lr_coef", estim_lr_coef, "Use 1.0.")
    _validation.check_non_negative(owner, "weight_decay", weight_decay, "Use e.g. 0.01.")


def prodigy(
    learning_rate: ScalarOrSchedule,
    betas: tuple[float, float] = (0.9, 0.999),
    beta3: float | None = None,
    eps: float = 1e-8,
    estim_lr0: float = 1e-6,
    estim_lr_coef: float = 1.0,
    weight_decay: float = 0.0,
    safeguard_warmup: bool = False,
    *,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Prodigy: Mishchenko & Defazio's Algorithm 4 (the Adam version).

    ::

        m_0 = v_0 = s_0 = 0,  r_0 = 0,  d_0 > 0
        for k = 0, 1, …
            g_k ← ∇f(x_k)
            m_{k+1} ← β1·m_k + (1 − β1)·d_k·g_k
            v_{k+1} ← β2·v_k + (1 − β2)·d_k²·g_k²
            r_{k+1} ← β3·r_k + (1 − β3)·γ_k·d_k²·⟨g_k, x_0 − x_k⟩
            s_{k+1} ← β3·s_k + (1 − β3)·γ_k·d_k²·g_k
            d̂_{k+1} ← c·r_{k+1}/‖s_{k+1}‖_1
            d_{k+1} ← max(d_k, d̂_{k+1})
            x_{k+1} ← x_k − γ_k·d_k·( m_{k+1}/(√v_{k+1} + d_k·ε) + λ·x_k )

    d estimates the distance ‖x_0 − x*‖ from below and only grows; r and s weight the
    gradients by d_k² (recent ones, where d is larger, count more: the "expeditious"
    part); ⟨·,·⟩ and ‖·‖_1 run over all the leaves together, so d is one number for the
    whole tree. The (1 − β3) factors cancel in d̂ (kept as in the paper). β3 = √β2 by
    default. λ is the decoupled weight decay of the authors' code (``decouple=True``).
    ``safeguard_warmup=True`` drops γ_k from s (s_{k+1} ← β3·s_k + (1 − β3)·d_k²·g_k), the
    authors' fix for warm-up schedules that start near 0. Where ‖s_{k+1}‖_1 = 0 (all
    gradients so far 0, or γ = 0) d̂ is undefined and d stays d_k (the authors' code skips
    the estimate there too).

    Symbols → arguments: γ_k = ``learning_rate`` (a float, or a schedule of k, the
    updates made; a multiplier of d, the authors advise 1.0 with an optional decay),
    β1, β2 = ``betas``, β3 = ``beta3`` (None: √β2), ε = ``eps``, d_0 = ``estim_lr0``, c =
    ``estim_lr_coef``, λ = ``weight_decay``, ``safeguard_warmup`` as above. The defaults
    are optax's and the authors': (0.9, 0.999), √β2, 1e-8, 1e-6, 1.0, 0.0, False;
    ``learning_rate`` has no default here (optax and the authors: 1.0).

    Versus the libraries: ``optax.contrib.prodigy`` (same arguments, ``ProdigyState``;
    ``like="optax"``) always applies Adam's bias correction through the step size, and
    puts the new d in ε's place:

    * dlr_k = d_k·γ_k·√(1 − β2^{k+1})/(1 − β1^{k+1}) (the authors' ``use_bias_correction
      =True``, which defaults to False), and dlr_k replaces γ_k·d_k everywhere: the step
      x_{k+1} = x_k − dlr_k·(m_{k+1}/(√v_{k+1} + d_{k+1}·ε) + λ·x_k), and the increments
      of r and s, r_{k+1} = β3·r_k + (d_k/d_0)·dlr_k·⟨g_k, x_0 − x_k⟩,
      s_{k+1} = β3·s_k + (d_k/d_0)·dlr_k·g_k (with ``safeguard_warmup``: (d_k/d_0)·d_k·g_k).
      The bias factor changes with k, so it reweights r against s and d̂ differs, not
      just the step. (The factor d_k/d_0 instead of (1 − β3)·d_k cancels in d̂.)
    * ε is scaled by d_{k+1}, the estimate made at this step (as in the authors' code),
      where the paper has d_k.
    * ‖s‖_1 = 0 gives d̂ = 0/0 = NaN, and d and the iterates turn NaN.

    Without the bias factor (β1 = β2 = 0 makes it 1) and with ε = 0 the two forms agree.
    Complex parameters (both forms): ⟨a, b⟩ = Re Σ conj(a)·b, g² → |g|², ‖s‖_1 = Σ|s_i|
    (moduli); optax's own formulas give a complex d there. torch.optim has no Prodigy
    (the authors' is the ``prodigyopt`` package): ``like="torch"`` raises.

    Args:
      learning_rate: γ ≥ 0, or a schedule.
      betas: (β1, β2), each in [0, 1).
      beta3: β3 in [0, 1), or None for √β2.
      eps: ε ≥ 0.
      estim_lr0: d_0 > 0.
      estim_lr_coef: c ≥ 0.
      weight_decay: λ ≥ 0.
      safeguard_warmup: drop γ_k from s.
      like: None (the paper) or ``"optax"``.

    Returns:
      An ``optax.GradientTransformationExtraArgs``; ``update`` needs ``params``.

    Example:
      >>> import jax.numpy as jnp, numpy as np
      >>> from optlab.optimizers._prodigy import prodigy
      >>> tx = prodigy(1.0, betas=(0.0, 0.0), eps=0.0)
      >>> x = jnp.array([1.0, -1.0])
      >>> u, state = tx.update(jnp.array([2.0, 2.0]), tx.init(x), x)
      >>> # first step: x_0 − x_0 = 0, so r_1 = 0 and d stays d_0; the step is d_0·sign(g)
      >>> print(np.asarray(u), f"{float(state.estim_lr):.3g}")
      [-1.e-06 -1.e-06] 1e-06

    References:
      Mishchenko & Defazio, "Prodigy: An Expeditiously Adaptive Parameter-Free Learner",
      ICML 2024 (arXiv:2306.06101), Algorithm 4; github.com/konstmish/prodigy.
    """
    _check(learning_rate, betas, beta3, eps, estim_lr0, estim_lr_coef, weight_decay, like)
    beta1, beta2 = betas
    b3 = beta2**0.5 if beta3 is None else beta3

    def init_fn(params):
        dtype = scalar_dtype(params)
        zeros = jax.tree.map(lambda p: jnp.zeros(p.shape, p.dtype), params)
        return ProdigyState(
            exp_avg=zeros,
            exp_avg_sq=jax.tree.map(lambda p: jnp.zeros(p.shape, real_dtype(p.dtype)), params),
            grad_sum=zeros,
            params0=jax.tree.map(lambda p: jnp.array(p, copy=True), params),
            estim_lr=jnp.asarray(estim_lr0, dtype),
            numerator_weighted=jnp.zeros([], dtype),
            count=init_count(),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        if params is None:
            raise ValueError("prodigy: `update` needs `params` (for ⟨g, x_0 − x⟩ and the decay).")
        dtype = state.estim_lr.dtype
        k = state.count
        gamma = jnp.asarray(learning_rate_at(learning_rate, k), dtype)
        d = state.estim_lr
        if like == "optax":
            t = next_count(k).astype(dtype)
            bc = jnp.sqrt(1 - beta2**t) / (1 - beta1**t)
            dlr = d * gamma * bc  # the step size, and the weight of r and s
            weight = (d / estim_lr0) * dlr
            s_weight = (d / estim_lr0) * d if safeguard_warmup else weight
        else:
            dlr = gamma * d
            weight = (1 - b3) * gamma * d * d
            s_weight = (1 - b3) * d * d if safeguard_warmup else weight
        diffs = jax.tree.map(lambda x0, x: x0 - x, state.params0, params)
        inner = _tree_real_inner(updates, diffs, dtype)
        r = b3 * state.numerator_weighted + weight * inner

        def moments(g, m, v, s):
            m = scalar_like(beta1, m) * m + scalar_like((1 - beta1) * d, m) * g.astype(m.dtype)
            sq = abs_sq(g).astype(v.dtype)
            v = scalar_like(beta2, v) * v + scalar_like((1 - beta2) * d * d, v) * sq
            s = scalar_like(b3, s) * s + scalar_like(s_weight, s) * g.astype(s.dtype)
            return m, v, s

        m, v, s = unzip(
            updates,
            jax.tree.map(moments, updates, state.exp_avg, state.exp_avg_sq, state.grad_sum),
            3,
        )
        s_norm = _tree_l1(s, dtype)
        if like == "optax":
            d_new = jnp.maximum(d, estim_lr_coef * r / s_norm)
            eps_d = d_new
        else:
            d_hat = estim_lr_coef * r / jnp.where(s_norm > 0, s_norm, 1)
            d_new = jnp.where(s_norm > 0, jnp.maximum(d, d_hat), d)
            eps_d = d

        def step(g, m, v, x):
            denom = jnp.sqrt(v) + scalar_like(eps_d * eps, v)
            u = m / denom.astype(m.dtype) + scalar_like(weight_decay, x) * x.astype(m.dtype)
            return (-scalar_like(dlr, u) * u).astype(g.dtype)

        new_updates = jax.tree.map(step, updates, m, v, params)
        return new_updates, ProdigyState(
            exp_avg=m,
            exp_avg_sq=v,
            grad_sum=s,
            params0=state.params0,
            estim_lr=d_new.astype(dtype),
            numerator_weighted=r.astype(dtype),
            count=next_count(k),
        )

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
