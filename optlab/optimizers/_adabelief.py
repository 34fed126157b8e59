"""AdaBelief: Adam with the belief s = EMA of (g − m)² (Zhuang et al. 2020, Algorithm 2)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab import _validation
from optlab.optimizers._base import (
    ScalarOrSchedule,
    abs_sq,
    check_like,
    init_count,
    next_count,
    scalar_like,
    unzip,
    with_learning_rate,
    zeros_like,
)


class ScaleByBeliefState(NamedTuple):
    """``count``: updates made; ``mu``: m, the EMA of g (β1); ``nu``: s, the EMA of
    (g − m)² plus ε_root per step (β2), both uncorrected. optax's ``ScaleByBeliefState``:
    the same names, fields and values."""

    count: jax.Array
    mu: optax.Updates
    nu: optax.Updates


def check_adabelief_hyperparams(b1, b2, eps, eps_root) -> None:
    _validation.check_unit_interval("adabelief", "b1", b1, "Zhuang et al. use b1=0.9.")
    _validation.check_unit_interval("adabelief", "b2", b2, "Zhuang et al. use b2=0.999.")
    fix = "Zhuang et al. use 1e-16 (1e-8 for image classification)."
    _validation.check_non_negative("adabelief", "eps", eps, fix)
    _validation.check_non_negative("adabelief", "eps_root", eps_root, fix)


def scale_by_belief(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-16,
    eps_root: float = 1e-16,
    *,
    nesterov: bool = False,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    """AdaBelief's direction m̂_t / (√ŝ_t + ε) (Algorithm 2 without α); see ``adabelief``.

    optax's name (``optax.scale_by_belief``), arguments, defaults and state.
    """
    check_like("adabelief", like, ("optax",))
    check_adabelief_hyperparams(b1, b2, eps, eps_root)

    def init_fn(params):
        return ScaleByBeliefState(count=init_count(), mu=zeros_like(params), nu=zeros_like(params))

    def leaf(g, m, s, t):
        m = scalar_like(b1, m) * m + scalar_like(1.0 - b1, m) * g
        residual = abs_sq(g - m).astype(s.dtype)
        s = scalar_like(b2, s) * s + scalar_like(1.0 - b2, s) * residual + scalar_like(eps_root, s)
        if nesterov:  # optax's option: β1·m_t/(1 − β1^{t+1}) + (1 − β1)·g_t/(1 − β1^t)
            m_hat = scalar_like(b1, m) * m / scalar_like(1.0 - jnp.asarray(b1) ** (t + 1), m)
            m_hat = m_hat + scalar_like(1.0 - b1, g) * g / scalar_like(
                1.0 - jnp.asarray(b1) ** t, g
            )
        else:
            m_hat = m / scalar_like(1.0 - jnp.asarray(b1) ** t, m)
        s_hat = s / scalar_like(1.0 - jnp.asarray(b2) ** t, s)
        direction = m_hat / (jnp.sqrt(s_hat) + scalar_like(eps, s))
        return direction.astype(g.dtype), m, s

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        t = next_count(state.count)
        out = jax.tree.map(lambda g, m, s: leaf(g, m, s, t), updates, state.mu, state.nu)
        direction, mu, nu = unzip(updates, out, 3)
        return direction, ScaleByBeliefState(count=t, mu=mu, nu=nu)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def adabelief(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-16,
    eps_root: float = 1e-16,
    *,
    nesterov: bool = False,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""AdaBelief: Zhuang et al.'s Algorithm 2 (the NeurIPS 2020 version).

    ::

        m_0 ← 0,  s_0 ← 0
        for t = 1, 2, …
            g_t ← ∇_θ f_t(θ_{t−1})
            m_t ← β1·m_{t−1} + (1 − β1)·g_t
            s_t ← β2·s_{t−1} + (1 − β2)·(g_t − m_t)² + ε
            m̂_t ← m_t / (1 − β1^t),   ŝ_t ← s_t / (1 − β2^t)
            θ_t ← θ_{t−1} − α_t·m̂_t / (√ŝ_t + ε)

    Adam with v (the EMA of g²) replaced by s, the EMA of the squared deviation of g from
    its prediction m: a large step where the gradient agrees with its history, a small one
    where it does not. ε enters twice: inside s (each step, so s keeps it: it is state) and
    outside the root. The paper's projection Π_{F, √ŝ_t} is the identity here (F = ℝ^d).

    Symbols → arguments: α_t = ``learning_rate`` (a float, or a schedule of the number of
    updates made: 0 for the first), β1 = ``b1``, β2 = ``b2``; the paper's one ε is split as
    optax splits it: ε inside s_t is ``eps_root``, ε outside the root is ``eps`` (pass the
    same value for both to have the paper's single ε). The defaults are optax's and the
    authors' package's (``adabelief-pytorch`` ≥ 0.1): β1 = 0.9, β2 = 0.999,
    ε = ε_root = 1e-16; the paper's image-classification runs used ε = 1e-8 (the authors'
    rule: ε_AdaBelief ≈ ε_Adam²). ``nesterov=True`` is optax's extension (not the paper's):
    m̂_t ← β1·m_t/(1 − β1^{t+1}) + (1 − β1)·g_t/(1 − β1^t).

    An earlier arXiv version of the paper printed ŝ_t ← (s_t + ε)/(1 − β2^t) with s_t free
    of ε; the published box above (and the authors' code, which adds ε to s in place) is
    what this implements.

    Versus the libraries: ``optax.adabelief`` (same names, defaults and state, optax's
    ``ScaleByBeliefState``) computes the same iterates term by term:
    s_t = β2·s_{t−1} + (1 − β2)·|g_t − m_t|² + eps_root, ŝ_t = s_t/(1 − β2^t),
    u_t = −α_t·m̂_t/(√ŝ_t + eps); so ``like="optax"`` equals the default. torch.optim has
    no AdaBelief (the authors' is a separate package): ``like="torch"`` raises.
    Complex parameters: (g − m)² is |g − m|² (optax's convention), in both forms.

    Args:
      learning_rate: α ≥ 0, or a schedule.
      b1: β1 in [0, 1).
      b2: β2 in [0, 1).
      eps: ε ≥ 0 outside the root.
      eps_root: ε ≥ 0 added to s_t every step.
      nesterov: step along optax's Nesterov form of m̂_t.
      like: None (the paper) or ``"optax"`` (the same formula).

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Example:
      >>> import jax.numpy as jnp, numpy as np
      >>> from optlab.optimizers._adabelief import adabelief
      >>> tx = adabelief(0.1, eps=0.0, eps_root=0.0)
      >>> updates, _ = tx.update(jnp.array([3.0, -2.0]), tx.init(jnp.zeros(2)))
      >>> # t = 1: m̂ = g, ŝ = (g − 0.1g)²·0.001/0.001 = 0.81g², so the step is −α·g/(0.9|g|)
      >>> print(np.round(np.asarray(updates, float), 4))
      [-0.1111  0.1111]

    References:
      Zhuang, Tang, Ding, Tatikonda, Dvornek, Papademetris & Duncan, "AdaBelief optimizer:
      Adapting stepsizes by the belief in observed gradients", NeurIPS 2020
      (arXiv:2010.07468).
    """
    check_like("adabelief", like, ("optax",))
    _validation.check_learning_rate("adabelief", learning_rate)
    direction = scale_by_belief(b1, b2, eps, eps_root, nesterov=nesterov, like=like)
    return with_learning_rate(direction, learning_rate)
