"""Nesterov's accelerated gradient (lectures 02, 03)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import optax

from optlab import _validation
from optlab.optimizers._base import (
    ScalarOrSchedule,
    check_like,
    scalar_like,
    with_learning_rate,
    zeros_like,
)


class NesterovState(NamedTuple):
    """``buffer``: b_t = μ·b_{t−1} + g_t, the momentum buffer of the reformulated method."""

    buffer: optax.Params


def scale_by_nesterov(mu: float = 0.9) -> optax.GradientTransformationExtraArgs:
    """Nesterov direction in the reformulated (look-ahead) variables: ``b ← μb + g``,
    returns ``g + μb``."""
    _validation.check_unit_interval("nesterov", "mu", mu)

    def init_fn(params):
        return NesterovState(buffer=zeros_like(params))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        buffer = jax.tree.map(lambda b, g: scalar_like(mu, b) * b + g, state.buffer, updates)
        direction = jax.tree.map(lambda g, b: g + scalar_like(mu, b) * b, updates, buffer)
        return direction, NesterovState(buffer=buffer)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def nesterov(
    learning_rate: ScalarOrSchedule, mu: float = 0.9, *, like: str | None = None
) -> optax.GradientTransformationExtraArgs:
    r"""Nesterov accelerated gradient (NAG).

    The look-ahead method (lecture 03: "go along velocity first, then calculate the
    gradient at the new point"; Sutskever et al. 2013)::

        v_{t+1} = μ·v_t − γ·∇f(θ_t + μ·v_t)
        θ_{t+1} = θ_t + v_{t+1}

    Lecture 02 writes it with an EMA velocity: ``V ← βV + (1 − β)∇J(w + βV)``,
    ``w ← w − αV``. That has a slip: since the step is ``w − αV``, the point "ahead" is
    ``w − αβV``, not ``w + βV``. With the correction and ``v = −αV`` it is the form above
    with μ = β and γ = α(1 − β).

    As a transformation the gradient must be taken at the current parameters, so this
    uses the equivalent reformulation of Sutskever et al. (PyTorch's ``nesterov=True``):
    the iterate kept is the look-ahead point φ_t = θ_t + μ·v_t, and with b = −v/γ::

        b_t     = μ·b_{t−1} + g_t           g_t = ∇f(φ_{t−1}),  b_0 = 0
        φ_t     = φ_{t−1} − γ·(g_t + μ·b_t)

    Symbols → arguments: γ = ``learning_rate`` (a float or schedule), μ = ``mu``.

    Versus the libraries: both compute exactly the reformulation above, so ``like="optax"``
    and ``like="torch"`` are the default form (same state). Keras uses it too.

    * ``optax.sgd(γ, momentum=μ, nesterov=True)``: ``optax.trace(μ, nesterov=True)``,
      t_t = g_t + μ·t_{t−1}, u_t = −γ_t·(g_t + μ·t_t): b = t.
    * ``torch.optim.SGD(lr=γ, momentum=μ, nesterov=True)`` (dampening must be 0 there):
      buf_1 = g_1, buf_t = μ·buf_{t−1} + g_t, θ ← θ − γ·(g_t + μ·buf_t): buf_1 = g_1 is
      b_1 = μ·0 + g_1, so b = buf.

    Neither library has a default μ for it (optax's ``momentum=None`` and torch's
    ``momentum=0`` turn momentum off: that is ``optlab.sgd``), so μ = 0.9 in every form.
    Not options here: torch's ``weight_decay``/``maximize``, optax's ``accumulator_dtype``.

    Args:
      learning_rate: γ ≥ 0, or a schedule.
      mu: momentum μ in [0, 1).
      like: None (Sutskever's reformulation), ``"optax"`` or ``"torch"`` (keyword-only;
        the same update).

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Example:
      >>> import jax.numpy as jnp, numpy as np, optlab
      >>> tx = optlab.nesterov(0.1, mu=0.9)
      >>> updates, _ = tx.update(jnp.ones(1), tx.init(jnp.zeros(1)))
      >>> print(np.round(np.asarray(updates, float), 4))  # −γ(g + μ·g) on the first step
      [-0.19]

    References:
      Nesterov, "A method for unconstrained convex minimization problem with the rate of
      convergence O(1/k²)", Doklady AN USSR 269, 1983.
      Sutskever, Martens, Dahl & Hinton, ICML 2013.
    """
    check_like("nesterov", like, ("optax", "torch"))
    _validation.check_learning_rate("nesterov", learning_rate)
    return with_learning_rate(scale_by_nesterov(mu), learning_rate)
