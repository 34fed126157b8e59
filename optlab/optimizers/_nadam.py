"""Nadam: Adam with Nesterov momentum (Dozat 2016, as PyTorch's NAdam computes it)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab import _validation
from optlab.optimizers._adam import check_adam_hyperparams, ema_moments
from optlab.optimizers._base import (
    ScalarOrSchedule,
    init_count,
    next_count,
    scalar_like,
    with_learning_rate,
    zeros_like,
)


class NadamState(NamedTuple):
    """``count``: t − 1; ``mu_product``: Π_{i<t} μ_i; ``m``, ``v``: Adam's biased moments."""

    count: jax.Array
    mu_product: jax.Array
    m: optax.Params
    v: optax.Params


def scale_by_nadam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    momentum_decay: float = 0.004,
    momentum_schedule: bool = True,
) -> optax.GradientTransformationExtraArgs:
    """Nadam's direction (see ``nadam``), without the step size."""
    check_adam_hyperparams("nadam", b1, b2, eps)
    _validation.check_non_negative("nadam", "momentum_decay", momentum_decay, "PyTorch uses 0.004.")

    def mu_at(t):
        if not momentum_schedule:
            return jnp.asarray(b1, jnp.result_type(float))
        return b1 * (1.0 - 0.5 * 0.96 ** (t * momentum_decay))

    def init_fn(params):
        return NadamState(
            count=init_count(),
            mu_product=jnp.ones([], jnp.result_type(float)),
            m=zeros_like(params),
            v=zeros_like(params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        t = next_count(state.count)
        tf = t.astype(state.mu_product.dtype)
        mu_t, mu_next = mu_at(tf), mu_at(tf + 1.0)
        mu_product = (state.mu_product * mu_t).astype(state.mu_product.dtype)
        mu_product_next = mu_product * mu_next
        m, v = ema_moments(b1, b2, state.m, state.v, updates)
        correction2 = 1.0 - jnp.asarray(b2) ** t
        grad_coeff = (1.0 - mu_t) / (1.0 - mu_product)
        momentum_coeff = mu_next / (1.0 - mu_product_next)

        def direction(g, m, v):
            denom = jnp.sqrt(v / scalar_like(correction2, v)) + scalar_like(eps, v)
            return (scalar_like(grad_coeff, g) * g + scalar_like(momentum_coeff, m) * m) / denom

        new_state = NadamState(count=t, mu_product=mu_product, m=m, v=v)
        return jax.tree.map(direction, updates, m, v), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def nadam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    momentum_decay: float = 0.004,
    momentum_schedule: bool = True,
) -> optax.GradientTransformationExtraArgs:
    r"""Nadam: Adam whose first moment takes a Nesterov look-ahead step.

    Lecture 02 names Nadam but leaves its section empty, so Dozat (2016) as
    ``torch.optim.NAdam`` computes it is the specification::

        μ_t   = β1·(1 − ½·0.96^{t·ψ})                 momentum schedule
        m_t   = β1·m_{t−1} + (1 − β1)·g_t
        v_t   = β2·v_{t−1} + (1 − β2)·g_t²
        v̂_t   = v_t / (1 − β2^t)
        θ_t   = θ_{t−1} − α·[ (1 − μ_t)/(1 − Π_{i≤t} μ_i) · g_t
                             + μ_{t+1}/(1 − Π_{i≤t+1} μ_i) · m_t ] / (√v̂_t + ε)

    Symbols → arguments: α = ``learning_rate``, β1 = ``b1``, β2 = ``b2``, ε = ``eps``,
    ψ = ``momentum_decay``. ``momentum_schedule=False`` holds μ_t = β1 for every t, which
    is exactly ``optax.nadam`` (Π μ_i = β1^t). Note that ``momentum_decay=0`` is *not*
    that form: it gives μ_t = β1/2.

    Versus the libraries: the default equals ``torch.optim.NAdam(lr, betas=(b1, b2), eps,
    momentum_decay=ψ)``. Dozat's paper also uses μ_t inside the first-moment average;
    PyTorch (and this) use β1 there. ``optax.nadam`` is the ``momentum_schedule=False``
    form. ε is outside the root, as in Adam.

    Args:
      learning_rate: α ≥ 0, or a schedule (required, as in optax; PyTorch defaults to 2e-3).
      b1: β1 in [0, 1).
      b2: β2 in [0, 1).
      eps: ε ≥ 0.
      momentum_decay: ψ ≥ 0 (PyTorch's default 0.004).
      momentum_schedule: use the μ_t schedule (default) or a constant μ = β1 (optax).

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Example:
      >>> import jax.numpy as jnp, numpy as np, optlab
      >>> tx = optlab.nadam(0.1, momentum_schedule=False)
      >>> updates, _ = tx.update(jnp.array([4.0]), tx.init(jnp.zeros(1)))
      >>> # −α[(1−β1)/(1−β1) + β1(1−β1)/(1−β1²)]·sign(g)
      >>> print(np.round(np.asarray(updates, float), 4))
      [-0.1474]

    References:
      Dozat, "Incorporating Nesterov momentum into Adam", ICLR workshop 2016.
    """
    _validation.check_learning_rate("nadam", learning_rate)
    return with_learning_rate(
        scale_by_nadam(
            b1, b2, eps, momentum_decay=momentum_decay, momentum_schedule=momentum_schedule
        ),
        learning_rate,
    )
