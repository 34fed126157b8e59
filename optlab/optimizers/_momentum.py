"""Momentum in the three forms the lectures write (lectures 01, 02, 04)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab import _validation
from optlab.optimizers._base import (
    ScalarOrSchedule,
    check_like,
    init_count,
    learning_rate_at,
    next_count,
    scalar_like,
    with_learning_rate,
    zeros_like,
)

FORMS = ("heavy_ball", "ema", "velocity")
LIKE = ("optax", "torch")


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


class TorchMomentumState(NamedTuple):
    """torch.optim.SGD's ``momentum_buffer`` (zeros before the first step) and ``count``,
    the updates made (the first step skips the dampening)."""

    count: jax.Array
    momentum_buffer: optax.Params


def scale_by_torch_momentum(
    mu: float = 0.9, dampening: float = 0.0
) -> optax.GradientTransformationExtraArgs:
    """``torch.optim.SGD(momentum=μ, dampening=τ)``'s direction: ``buf ← g`` on the first
    step, then ``buf ← μ·buf + (1 − τ)·g``; returns buf."""
    _validation.check_unit_interval("momentum", "mu", mu)
    if _validation.is_concrete_number(dampening) and not 0.0 <= dampening <= 1.0:
        _validation.fail("momentum", "dampening", dampening, "in [0, 1]", "torch's default is 0.")

    def init_fn(params):
        return TorchMomentumState(count=init_count(), momentum_buffer=zeros_like(params))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        first = state.count == 0

        def leaf(b, g):
            keep = jnp.where(first, 1.0, 1.0 - dampening)  # buf = g.clone() on step 1
            return scalar_like(mu, b) * b + scalar_like(keep, g) * g

        buffer = jax.tree.map(leaf, state.momentum_buffer, updates)
        new_state = TorchMomentumState(count=next_count(state.count), momentum_buffer=buffer)
        return buffer, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def momentum(
    learning_rate: ScalarOrSchedule,
    mu: float = 0.9,
    *,
    form: str = "heavy_ball",
    dampening: float | None = None,
    like: str | None = None,
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

    Versus the libraries: both libraries' momentum is the heavy-ball form (the rate
    outside the buffer); the velocity and ema forms are in neither optimizer, so
    ``form="velocity"``/``"ema"`` with ``like`` raises. Neither library has a default μ
    for it (optax's ``momentum=None`` and torch's ``momentum=0`` turn momentum off: that
    is ``optlab.sgd``), so μ = 0.9 in every form.

    * ``optax.sgd(γ, momentum=μ)``: chain(``trace(μ)``, scale_by_learning_rate),
      t_t = g_t + μ·t_{t−1}, u_t = −γ_t·t_t: heavy_ball with t = −Δ, under any schedule.
      ``like="optax"`` is the heavy_ball form (same state, ``HeavyBallState``).
      ``optax.chain(optax.scale_by_learning_rate(η), optax.trace(ρ))`` (the rate inside)
      is the velocity form; ``optax.chain(optax.ema(β, debias=False), optax.scale(−α))``
      the ema form.
    * ``torch.optim.SGD(lr=γ, momentum=μ, dampening=τ)`` (``nesterov=False``,
      ``weight_decay=0``): buf_1 = g_1, buf_t = μ·buf_{t−1} + (1 − τ)·g_t,
      θ_t = θ_{t−1} − γ_t·buf_t. With τ = 0 (torch's default) that is heavy_ball
      (buf = −Δ). τ > 0 is *not* the ema form: torch skips the (1 − τ) on the first step,
      so with τ = μ = β its buffer is ema's V_t plus μ^t·g_1 (its first step 1/(1 − β)
      times ema's). ``like="torch"`` computes torch's buffer (state
      ``TorchMomentumState(count, momentum_buffer)``) and takes ``dampening`` (default 0);
      ``dampening`` other than 0 without ``like="torch"`` raises. ``nesterov=True`` is
      ``optlab.nesterov``; torch's ``weight_decay``/``maximize`` and optax's
      ``accumulator_dtype`` are not options here.

    Args:
      learning_rate: γ, α or η (a float ≥ 0 or a schedule ``t -> rate``).
      mu: the momentum coefficient μ = β = ρ, in [0, 1).
      form: ``"heavy_ball"`` (default), ``"ema"`` or ``"velocity"``.
      dampening: torch's τ in [0, 1] (``like="torch"`` only); None: 0.
      like: None (the lectures' forms), ``"optax"`` or ``"torch"`` (keyword-only; both
        need ``form="heavy_ball"``).

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
    check_like("momentum", like, LIKE)
    _validation.check_learning_rate("momentum", learning_rate)
    if like is not None and form != "heavy_ball":
        lib = "optax.sgd" if like == "optax" else "torch.optim.SGD"
        raise ValueError(
            f"momentum: form={form!r} conflicts with like={like!r}: {lib}'s momentum is the "
            "heavy-ball form (form='heavy_ball'). Drop one of the two."
        )
    damps = dampening is not None and not (
        _validation.is_concrete_number(dampening) and dampening == 0
    )
    if damps and like != "torch":
        raise ValueError(
            f"momentum: dampening={dampening!r} conflicts with like={like!r}: dampening is "
            "torch.optim.SGD's option; pass like='torch' (or drop it)."
        )
    if like == "torch":
        direction = scale_by_torch_momentum(mu, 0.0 if dampening is None else dampening)
        return with_learning_rate(direction, learning_rate)
    if form == "heavy_ball":
        return with_learning_rate(scale_by_heavy_ball(mu), learning_rate)
    if form == "ema":
        return with_learning_rate(scale_by_ema_momentum(mu), learning_rate)
    return scale_by_velocity(learning_rate, mu)
