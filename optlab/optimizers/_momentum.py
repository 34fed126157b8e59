"""Momentum in the three forms the lectures write (lectures 01, 02, 04)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import optax

from optlab import _validation
from optlab.optimizers._base import (
    ScalarOrSchedule,
    init_count,
    learning_rate_at,
    next_count,
    scalar_like,
    with_learning_rate,
    zeros_like,
)

FORMS = ("heavy_ball", "ema", "velocity")


class HeavyBallState(NamedTuple):
    """``delta``: lecture 04's Δ, the accumulated direction of descent (sign included)."""

    delta: optax.Params


class EmaMomentumState(NamedTuple):
    """``v``: lecture 02's V_w, an exponential moving average of the gradients."""

    v: optax.Params


class VelocityState(NamedTuple):
    """``delta_theta``: lecture 01's Δθ_{t−1}, the last parameter increment; ``count``."""

    count: jax.Array
    delta_theta: optax.Params


def scale_by_heavy_ball(mu: float = 0.9) -> optax.GradientTransformationExtraArgs:
    """Lecture 04's momentum direction: ``Δ ← μΔ − g``; returns ``−Δ`` (a gradient-like
    direction, so that a following ``−γ`` scaling gives ``θ ← θ + γΔ``)."""
    _validation.check_unit_interval("momentum", "mu", mu)

    def init_fn(params):
        return HeavyBallState(delta=zeros_like(params))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        delta = jax.tree.map(lambda d, g: scalar_like(mu, d) * d - g, state.delta, updates)
        return jax.tree.map(lambda d: -d, delta), HeavyBallState(delta=delta)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def scale_by_ema_momentum(beta: float = 0.9) -> optax.GradientTransformationExtraArgs:
    """Lecture 02's momentum direction: ``V ← βV + (1−β)g``; returns ``V``."""
    _validation.check_unit_interval("momentum", "mu", beta)

    def init_fn(params):
        return EmaMomentumState(v=zeros_like(params))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        v = jax.tree.map(
            lambda v, g: scalar_like(beta, v) * v + scalar_like(1.0 - beta, g) * g,
            state.v,
            updates,
        )
        return v, EmaMomentumState(v=v)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def scale_by_velocity(
    learning_rate: ScalarOrSchedule, rho: float = 0.9
) -> optax.GradientTransformationExtraArgs:
    """Lecture 01's update ``Δθ_t = ρΔθ_{t−1} − η_t g_t``; returns the increment Δθ_t itself.

    The learning rate sits inside the velocity, so this transformation already includes
    the step (and its sign): apply its output to the parameters directly.
    """
    _validation.check_learning_rate("momentum", learning_rate)
    _validation.check_unit_interval("momentum", "mu", rho)

    def init_fn(params):
        return VelocityState(count=init_count(), delta_theta=zeros_like(params))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        eta = learning_rate_at(learning_rate, state.count)
        delta_theta = jax.tree.map(
            lambda d, g: scalar_like(rho, d) * d - scalar_like(eta, g) * g,
            state.delta_theta,
            updates,
        )
        return delta_theta, VelocityState(count=next_count(state.count), delta_theta=delta_theta)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def momentum(
    learning_rate: ScalarOrSchedule, mu: float = 0.9, *, form: str = "heavy_ball"
) -> optax.GradientTransformationExtraArgs:
    r"""Gradient descent with momentum, in each form the lectures write.

    ``form="heavy_ball"`` (lecture 04; Polyak 1964; PyTorch's ``SGD(momentum=μ)``)::

        Δ ← μ·Δ + (−∇E(θ))            μ = ``mu`` ∈ [0, 1)
        θ ← θ + γ·Δ                   γ = ``learning_rate`` (γ_t with a schedule)

    ``form="ema"`` (lecture 02)::

        V_w ← β·V_w + (1 − β)·∇_w J(w)   β = ``mu``
        w  ← w − α·V_w                   α = ``learning_rate``

    ``form="velocity"`` (lecture 01; Keras ``SGD(momentum=ρ)``; Sutskever et al. 2013)::

        Δθ_t = ρ·Δθ_{t−1} − η_t·g_t      ρ = ``mu``, η_t = ``learning_rate``
        θ_t  = θ_{t−1} + Δθ_t

    How the forms relate: heavy_ball with γ_t = α_t(1 − β) gives exactly ema's iterates
    under any schedule (V = −(1 − β)Δ). velocity equals heavy_ball for a constant rate but
    departs from it when the rate is scheduled, because past gradients keep the rate they
    were taken with. With a constant gradient g the step tends to γ·g/(1 − μ) for heavy_ball
    and velocity (lecture 04's effective rate γ' = γ/(1 − μ)) and to α·g for ema.

    Versus the libraries: heavy_ball is ``torch.optim.SGD(lr=γ, momentum=μ)`` and
    ``optax.sgd(γ, momentum=μ)``; velocity is ``optax.chain(optax.scale_by_learning_rate(η),
    optax.trace(ρ))``; ema is ``optax.chain(optax.ema(β, debias=False), optax.scale(−α))``.
    PyTorch's ``dampening=β`` is *not* ema: PyTorch skips dampening on the first step.

    Args:
      learning_rate: γ, α or η (a float ≥ 0 or a schedule ``t -> rate``).
      mu: the momentum coefficient μ = β = ρ, in [0, 1).
      form: ``"heavy_ball"`` (default), ``"ema"`` or ``"velocity"``.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Example:
      >>> import jax.numpy as jnp, numpy as np, optax, optlab
      >>> tx = optlab.momentum(0.1, mu=0.9, form="heavy_ball")
      >>> params, state = jnp.zeros(1), tx.init(jnp.zeros(1))
      >>> for _ in range(2):
      ...     updates, state = tx.update(jnp.ones(1), state)
      ...     params = optax.apply_updates(params, updates)
      >>> print(np.round(np.asarray(params, float), 4))  # −0.1·1 − 0.1·1.9
      [-0.29]

    References:
      Polyak, "Some methods of speeding up the convergence of iteration methods", 1964.
      Sutskever, Martens, Dahl & Hinton, "On the importance of initialization and momentum
      in deep learning", ICML 2013.
    """
    _validation.check_choice("momentum", "form", form, FORMS)
    _validation.check_learning_rate("momentum", learning_rate)
    if form == "heavy_ball":
        return with_learning_rate(scale_by_heavy_ball(mu), learning_rate)
    if form == "ema":
        return with_learning_rate(scale_by_ema_momentum(mu), learning_rate)
    return scale_by_velocity(learning_rate, mu)
