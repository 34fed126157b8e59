"""Adan: adaptive Nesterov momentum (Xie et al. 2022, Algorithm 1)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab import _validation
from optlab.optimizers._base import (
    MaskOrFn,
    ScalarOrSchedule,
    abs_sq,
    check_like,
    decoupled_decay,
    init_count,
    next_count,
    scalar_like,
    unzip,
    zeros_like,
)


class ScaleByAdanState(NamedTuple):
    """``m``: EMA of g (b1); ``v``: EMA of g_k − g_{k−1} (b2); ``n``: EMA of the squared
    Nesterov gradient (b3); ``g``: the previous gradient; ``t``: updates made. optax's
    ``ScaleByAdanState``: the same names and fields (its m, v, n are zero-started and
    bias-corrected; the paper's form starts them from g_0, see ``adan``)."""

    m: optax.Updates
    v: optax.Updates
    n: optax.Updates
    g: optax.Updates
    t: jax.Array


def check_adan_hyperparams(b1, b2, b3, eps, eps_root) -> None:
    for name, value, paper in (("b1", b1, 0.02), ("b2", b2, 0.08), ("b3", b3, 0.01)):
        fix = f"Xie et al.'s β{name[1]} = {paper} is {name}={1 - paper:g} here (β = 1 − {name})."
        _validation.check_unit_interval("adan", name, value, fix)
    _validation.check_non_negative("adan", "eps", eps, "Xie et al. use eps=1e-8.")
    _validation.check_non_negative("adan", "eps_root", eps_root, "Use 0 unless differentiating.")


def scale_by_adan(
    b1: float = 0.98,
    b2: float = 0.92,
    b3: float = 0.99,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    *,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Adan's direction (m_k + b2·v_k)/(√n_k + ε) (paper) or optax's; see ``adan``."""
    check_like("adan", like, ("optax",))
    check_adan_hyperparams(b1, b2, b3, eps, eps_root)

    def init_fn(params):
        z = zeros_like(params)
        return ScaleByAdanState(m=z, v=z, n=z, g=z, t=init_count())

    def paper_leaf(g, m, v, n, g_prev, t):
        first, second = t == 0, t == 1
        diff = jnp.where(first, jnp.zeros_like(g), g - g_prev)
        # Lines 3–5 (β_paper = 1 − b), started from m_0 = g_0, v_0 = 0, v_1 = g_1 − g_0,
        # n_0 = g_0².
        m = jnp.where(first, g, scalar_like(b1, g) * m + scalar_like(1.0 - b1, g) * g)
        v_ema = scalar_like(b2, v) * v + scalar_like(1.0 - b2, v) * diff
        v = jnp.where(first, jnp.zeros_like(g), jnp.where(second, diff, v_ema))
        nesterov = abs_sq(g + scalar_like(b2, g) * diff).astype(n.dtype)
        n = jnp.where(
            first,
            abs_sq(g).astype(n.dtype),
            scalar_like(b3, n) * n + scalar_like(1.0 - b3, n) * nesterov,
        )
        denom = jnp.sqrt(n + scalar_like(eps_root, n)) + scalar_like(eps, n)  # Line 6
        return (m + scalar_like(b2, v) * v) / denom, m, v, n

    def optax_leaf(g, m, v, n, g_prev, t):
        # optax.scale_by_adan term by term: zero-started EMAs with Adam's bias corrections,
        # and (1 − b2) where the paper's (1 − β2) is b2.
        diff = jnp.where(t == 0, jnp.zeros_like(g), g - g_prev)
        m = scalar_like(1.0 - b1, g) * g + scalar_like(b1, m) * m
        v = scalar_like(1.0 - b2, diff) * diff + scalar_like(b2, v) * v
        sq = g + scalar_like(1.0 - b2, diff) * diff
        n = scalar_like(1.0 - b3, n) * abs_sq(sq).astype(n.dtype) + scalar_like(b3, n) * n
        k = next_count(t)
        m_hat = m / scalar_like(1.0 - jnp.asarray(b1) ** k, m)
        v_hat = v / scalar_like(1.0 - jnp.asarray(b2) ** k, v)
        n_hat = n / scalar_like(1.0 - jnp.asarray(b3) ** k, n)
        u = m_hat + scalar_like(1.0 - b2, v_hat) * v_hat
        return u / (jnp.sqrt(n_hat + scalar_like(eps_root, n)) + scalar_like(eps, n)), m, v, n

    leaf = optax_leaf if like == "optax" else paper_leaf

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        out = jax.tree.map(
            lambda g, m, v, n, gp: leaf(g, m, v, n, gp, state.t),
            updates,
            state.m,
            state.v,
            state.n,
            state.g,
        )
        direction, m, v, n = unzip(updates, out, 4)
        direction = jax.tree.map(lambda d, g: d.astype(g.dtype), direction, updates)
        return direction, ScaleByAdanState(m=m, v=v, n=n, g=updates, t=next_count(state.t))

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def adan(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.98,
    b2: float = 0.92,
    b3: float = 0.99,
    eps: float = 1e-8,
    eps_root: float | None = None,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: MaskOrFn = None,
    *,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Adan: Xie et al.'s Algorithm 1 (without restarts), with optax's argument names.

    The paper writes its momenta as β·new + (1 − β)·old, with β1 = 0.02, β2 = 0.08,
    β3 = 0.01; optax (and the authors' code) pass b = 1 − β, the decay rates: b1 = 0.98,
    b2 = 0.92, b3 = 0.99. In those terms, Algorithm 1 reads (k = 0, 1, …)::

        m_k ← b1·m_{k−1} + (1 − b1)·g_k                               (m_0 = g_0)
        v_k ← b2·v_{k−1} + (1 − b2)·(g_k − g_{k−1})          (v_0 = 0, v_1 = g_1 − g_0)
        n_k ← b3·n_{k−1} + (1 − b3)·[g_k + b2·(g_k − g_{k−1})]²       (n_0 = g_0²)
        η_k ← η / (√n_k + ε)
        θ_{k+1} ← (1 + λ·η)^{−1}·[ θ_k − η_k ∘ (m_k + b2·v_k) ]

    Symbols → arguments: η = ``learning_rate`` (a float or a schedule of the number of
    updates made), b1, b2, b3 as above, ε = ``eps``, λ = ``weight_decay`` (λ_k: a float or
    a schedule), ``eps_root`` (optax's, added to n inside the root; None: the form's default,
    0 for the paper, 1e-8 for optax). The paper's optional restarts are left out (the
    authors use none in most experiments). Defaults: optax's (the paper's β's; λ = 0).

    Versus optax (``like="optax"``, ``optax.adan``; it has the same names, defaults and
    state), three differences:

    * the Nesterov coefficient: optax uses (1 − b2) where the paper's (1 − β2) is b2:
      n ← … [g + (1 − b2)·Δg]² and u ← m̂ + (1 − b2)·v̂ (0.08 instead of 0.92 by default;
      reported upstream as google-deepmind/optax#1715, not fixed in optax 0.2.8);
    * the start: optax starts m, v, n at 0 with Adam's bias corrections
      m̂ = m/(1 − b1^k), v̂ = v/(1 − b2^k), n̂ = n/(1 − b3^k) (k = updates made, with this
      one) and Δg_0 = 0; the paper starts from m_0 = g_0, v_1 = g_1 − g_0, n_0 = g_0²
      without corrections, and ε: √(n̂ + eps_root) + ε, with eps_root = 1e-8 by default;
    * the weight decay: optax adds it (θ ← θ − η·(u + λθ)); the paper divides by 1 + λη
      (a proximal step). Both use the full η.

    The first steps agree (both −η·g_0/(|g_0| + ε) for λ = 0, eps_root = 0); the forms part
    from the second on. torch.optim has no Adan (the authors' is a separate package):
    ``like="torch"`` raises. Complex parameters: squares are |·|² (optax's convention).

    Args:
      learning_rate: η ≥ 0, or a schedule.
      b1: 1 − β1, in [0, 1).
      b2: 1 − β2, in [0, 1).
      b3: 1 − β3, in [0, 1).
      eps: ε ≥ 0.
      eps_root: ≥ 0, or None for the form's default.
      weight_decay: λ ≥ 0, or a schedule.
      mask: which leaves decay (a tree of bools, a prefix, or a function); None: all.
      like: None (the paper) or ``"optax"``.

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its ``update`` needs ``params`` when
      λ ≠ 0.

    Example:
      >>> import jax.numpy as jnp, numpy as np, optlab
      >>> tx = optlab.adan(0.1, weight_decay=1.0)
      >>> params = jnp.array([2.0])
      >>> updates, _ = tx.update(jnp.array([3.0]), tx.init(params), params)
      >>> # θ_1 = (θ_0 − η·g_0/|g_0|)/(1 + λη) = (2 − 0.1)/1.1
      >>> print(np.round(np.asarray(params + updates, float), 4))
      [1.7273]

    References:
      Xie, Zhou, Li, Lin & Yan, "Adan: Adaptive Nesterov momentum algorithm for faster
      optimizing deep models", IEEE TPAMI 2024 (arXiv:2208.06677).
    """
    check_like("adan", like, ("optax",))
    if eps_root is None:
        eps_root = 1e-8 if like == "optax" else 0.0
    return optax.chain(
        scale_by_adan(b1, b2, b3, eps, eps_root, like=like),
        decoupled_decay("adan", learning_rate, weight_decay, mask, proximal=like is None),
    )
