"""Adam (lecture 04 prints Kingma & Ba's Algorithm 1; lectures 01, 03)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab import _validation
from optlab.optimizers._base import (
    ScalarOrSchedule,
    abs_sq,
    init_count,
    next_count,
    scalar_like,
    with_learning_rate,
    zeros_like,
)


class ScaleByAdamState(NamedTuple):
    """``count``: t − 1 (updates made); ``mu``: m, the biased 1st moment; ``nu``: v, the
    biased 2nd raw moment. optax's ``ScaleByAdamState``: the same names, fields and values."""

    count: jax.Array
    mu: optax.Updates
    nu: optax.Updates


AdamState = ScaleByAdamState
"""Deprecated: the name (with fields ``count, m, v``) before optlab took optax's."""


def check_adam_hyperparams(owner: str, b1, b2, eps) -> None:
    _validation.check_unit_interval(owner, "b1", b1, "Kingma & Ba suggest b1=0.9.")
    _validation.check_unit_interval(owner, "b2", b2, "Kingma & Ba suggest b2=0.999.")
    _validation.check_non_negative(owner, "eps", eps, "Kingma & Ba suggest eps=1e-8.")


def ema_moments(b1, b2, m, v, g):
    """m ← β1·m + (1−β1)·g and v ← β2·v + (1−β2)·g², leaf by leaf."""
    m = jax.tree.map(lambda m, g: scalar_like(b1, m) * m + scalar_like(1.0 - b1, m) * g, m, g)
    v = jax.tree.map(
        lambda v, g: scalar_like(b2, v) * v + scalar_like(1.0 - b2, v) * abs_sq(g).astype(v.dtype),
        v,
        g,
    )
    return m, v


def scale_by_adam(
    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> optax.GradientTransformationExtraArgs:
    """Adam's direction m̂_t / (√v̂_t + ε) (Algorithm 1 without the step size α)."""
    check_adam_hyperparams("adam", b1, b2, eps)

    def init_fn(params):
        return ScaleByAdamState(count=init_count(), mu=zeros_like(params), nu=zeros_like(params))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        t = next_count(state.count)
        m, v = ema_moments(b1, b2, state.mu, state.nu, updates)
        correction1 = 1.0 - jnp.asarray(b1) ** t
        correction2 = 1.0 - jnp.asarray(b2) ** t

        def direction(m, v):
            m_hat = m / scalar_like(correction1, m)
            v_hat = v / scalar_like(correction2, v)
            return m_hat / (jnp.sqrt(v_hat) + scalar_like(eps, v))

        return jax.tree.map(direction, m, v), ScaleByAdamState(count=t, mu=m, nu=v)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def adam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
) -> optax.GradientTransformationExtraArgs:
    r"""Adam: Kingma & Ba's Algorithm 1, as lecture 04 prints it.

    ::

        t ← t + 1
        g_t ← ∇_θ f_t(θ_{t−1})
        m_t ← β1·m_{t−1} + (1 − β1)·g_t
        v_t ← β2·v_{t−1} + (1 − β2)·g_t²
        m̂_t ← m_t / (1 − β1^t)
        v̂_t ← v_t / (1 − β2^t)
        θ_t ← θ_{t−1} − α·m̂_t / (√v̂_t + ε)

    Symbols → arguments: α = ``learning_rate`` (a float or a schedule α_t), β1 = ``b1``,
    β2 = ``b2``, ε = ``eps``; m_0 = v_0 = 0. The defaults are the paper's. (Lecture 03's
    "β2 = 0.888" is a typo for 0.999.)

    Versus the libraries: ε is added outside the square root of the bias-corrected second
    moment, as in the paper, ``torch.optim.Adam`` and ``optax.adam`` (``eps_root=0``); all
    three compute the same iterates. For complex gradients g² is |g|² (optax's
    convention: pass conjugated gradients).

    Args:
      learning_rate: α ≥ 0, or a schedule.
      b1: β1 in [0, 1).
      b2: β2 in [0, 1).
      eps: ε ≥ 0.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Example:
      >>> import jax.numpy as jnp, numpy as np, optlab
      >>> tx = optlab.adam(0.1)
      >>> updates, _ = tx.update(jnp.array([12.0, -8.0]), tx.init(jnp.zeros(2)))
      >>> # the first step is −α·g/(|g| + ε) ≈ −α·sign(g)
      >>> print(np.round(np.asarray(updates, float), 4))
      [-0.1  0.1]

    References:
      Kingma & Ba, "Adam: A method for stochastic optimization", ICLR 2015.
    """
    _validation.check_learning_rate("adam", learning_rate)
    return with_learning_rate(scale_by_adam(b1, b2, eps), learning_rate)
