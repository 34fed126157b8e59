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
    check_like,
    init_count,
    next_count,
    scalar_like,
    unzip,
    with_learning_rate,
    zeros_like,
)

LIKE = ("optax", "torch")


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


def per_real_coordinate(fn, *arrays):
    """``fn`` on the real view of complex leaves: Re and Im each a coordinate of its own.

    torch.optim's convention for complex parameters (``torch.view_as_real``): the
    elementwise ``fn`` runs once on the real parts and once on the imaginary parts and
    the results are recombined; real arrays go through ``fn`` unchanged. ``fn`` returns
    an array or a tuple of arrays.
    """
    if not any(jnp.iscomplexobj(a) for a in arrays):
        return fn(*arrays)
    re = fn(*(jnp.real(a) for a in arrays))
    im = fn(*(jnp.imag(a) for a in arrays))
    if isinstance(re, tuple):
        return tuple(jax.lax.complex(r, i) for r, i in zip(re, im, strict=True))
    return jax.lax.complex(re, im)


def scale_by_adam_torch(
    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> optax.GradientTransformationExtraArgs:
    """``torch.optim.Adam``'s direction: Adam's, on the real view of complex parameters."""
    check_adam_hyperparams("adam", b1, b2, eps)

    def init_fn(params):
        return ScaleByAdamState(count=init_count(), mu=zeros_like(params), nu=zeros_like(params))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        t = next_count(state.count)
        correction1 = 1.0 - jnp.asarray(b1) ** t
        correction2 = 1.0 - jnp.asarray(b2) ** t

        def leaf(g, m, v):
            m = scalar_like(b1, m) * m + scalar_like(1.0 - b1, m) * g
            v = scalar_like(b2, v) * v + scalar_like(1.0 - b2, v) * (g * g)
            # torch: step_size = lr/(1 − β1^t), denom = √v/√(1 − β2^t) + ε
            denom = jnp.sqrt(v) / jnp.sqrt(scalar_like(correction2, v)) + scalar_like(eps, v)
            return (m / scalar_like(correction1, m)) / denom, m, v

        out = jax.tree.map(
            lambda g, m, v: per_real_coordinate(leaf, g, m, v), updates, state.mu, state.nu
        )
        direction, mu, nu = unzip(updates, out, 3)
        return direction, ScaleByAdamState(count=t, mu=mu, nu=nu)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


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
    *,
    like: str | None = None,
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

    Versus the libraries: the defaults (β1, β2, ε) = (0.9, 0.999, 1e-8) are the paper's,
    ``optax.adam``'s and ``torch.optim.Adam``'s, so ``like`` changes no default.

    * ``optax.adam`` (``eps_root=0``, ``nesterov=False``): u = −α_t·m̂_t/(√(v̂_t + 0) + ε),
      the paper's equations term by term; ``like="optax"`` is the default form.
    * ``torch.optim.Adam`` (``amsgrad=False``, ``weight_decay=0``) rearranges the last
      line as θ_t = θ_{t−1} − (α/(1 − β1^t))·m_t/(√v_t/√(1 − β2^t) + ε), the same number
      (to rounding) for real parameters. For complex parameters torch works on the real
      view (``torch.view_as_real``): Re and Im are separate coordinates, each with its
      own v, i.e. v_t = β2·v_{t−1} + (1 − β2)·(Re g)² in the real part and
      … + (1 − β2)·(Im g)² in the imaginary part, and each part divided by its own
      √v̂ + ε. The paper's form and optax use |g|² = (Re g)² + (Im g)² for both (optax's
      convention: pass conjugated gradients). ``like="torch"`` follows torch there.

    The state is optax's ``ScaleByAdamState`` in every form.

    Args:
      learning_rate: α ≥ 0, or a schedule.
      b1: β1 in [0, 1).
      b2: β2 in [0, 1).
      eps: ε ≥ 0.
      like: None (the paper), ``"optax"`` or ``"torch"`` (keyword-only).

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
    check_like("adam", like, LIKE)
    _validation.check_learning_rate("adam", learning_rate)
    if like == "torch":
        return with_learning_rate(scale_by_adam_torch(b1, b2, eps), learning_rate)
    return with_learning_rate(scale_by_adam(b1, b2, eps), learning_rate)
