"""Rprop: resilient backpropagation (Riedmiller & Braun 1993), with weight-backtracking;
iRprop− (Igel & Hüsken 2000) as torch.optim computes it; optax's variant."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab import _validation
from optlab.optimizers._base import (
    ScalarOrSchedule,
    check_like,
    learning_rate_at,
    scalar_like,
    unzip,
)


class ScaleByRpropState(NamedTuple):
    """optax's ``ScaleByRpropState`` (the same names and fields).

    ``step_sizes``: Δ_t, one per coordinate (for complex parameters Δ^re + i·Δ^im: the real
    and imaginary parts have their own). ``prev_updates``: what the next sign test reads.
    For the paper's form and optax's it is P_t = Δ_t·sign(g_t) (0 after a sign change),
    the direction of the last move (the paper needs it to take that move back); for
    ``like="torch"`` it is torch's ``prev``, the gradient g_t itself (0 after a sign
    change), so that torch's test sign(g_{t+1}·g_t) is reproduced to the bit.
    """

    step_sizes: optax.Updates
    prev_updates: optax.Updates


def check_rprop_hyperparams(eta_minus, eta_plus, min_step_size, max_step_size) -> None:
    owner = "rprop"
    if _validation.is_concrete_number(eta_minus) and not 0.0 < eta_minus < 1.0:
        _validation.fail(
            owner, "eta_minus", eta_minus, "in (0, 1)", "Riedmiller & Braun use eta_minus=0.5."
        )
    if _validation.is_concrete_number(eta_plus) and not eta_plus > 1.0:
        _validation.fail(owner, "eta_plus", eta_plus, "> 1", "Riedmiller & Braun use eta_plus=1.2.")
    _validation.check_non_negative(owner, "min_step_size", min_step_size, "Use e.g. 1e-6.")
    _validation.check_non_negative(owner, "max_step_size", max_step_size, "Use e.g. 50.0.")
    if (
        _validation.is_concrete_number(min_step_size)
        and _validation.is_concrete_number(max_step_size)
        and min_step_size > max_step_size
    ):
        _validation.fail(
            owner,
            "min_step_size",
            min_step_size,
            f"<= max_step_size ({max_step_size!r})",
            "Riedmiller & Braun use Δ_min = 1e-6, Δ_max = 50.",
        )


def _per_component(rule: Callable, g: jax.Array, delta: jax.Array, prev: jax.Array) -> tuple:
    """``rule`` on real leaves; on complex ones separately on the real and imaginary parts
    (torch's ``view_as_real``: each part is a coordinate with its own step size)."""
    if not jnp.iscomplexobj(g):
        return rule(g, delta, prev)
    parts = [rule(f(g), f(delta), f(prev)) for f in (jnp.real, jnp.imag)]
    return tuple(jax.lax.complex(re, im) for re, im in zip(*parts, strict=True))


def scale_by_rprop(
    learning_rate: ScalarOrSchedule,
    eta_minus: float = 0.5,
    eta_plus: float = 1.2,
    min_step_size: float = 1e-6,
    max_step_size: float = 50.0,
    *,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Rprop's step Δ_t·sign(g_t) (or the backtracking move), un-negated, as optax's
    ``scale_by_rprop``: ``rprop`` is this followed by a factor −1. See ``rprop``."""
    check_like("rprop", like, ("optax", "torch"))
    _validation.check_learning_rate("rprop", learning_rate)
    check_rprop_hyperparams(eta_minus, eta_plus, min_step_size, max_step_size)

    def init_fn(params):
        delta0 = learning_rate_at(learning_rate, jnp.zeros([], jnp.int32))

        def full(p):
            if jnp.iscomplexobj(jnp.zeros((), p.dtype)):
                delta0_ = jnp.asarray(delta0).real
                return jnp.full(p.shape, jax.lax.complex(delta0_, delta0_), p.dtype)
            return jnp.full(p.shape, delta0, p.dtype)

        return ScaleByRpropState(
            step_sizes=jax.tree.map(full, params),
            prev_updates=jax.tree.map(lambda p: jnp.zeros(p.shape, p.dtype), params),
        )

    def paper_rule(g, delta, prev):
        # prev = P_{t−1} = Δ_{t−1}·sign(g_{t−1}), or 0 right after a backtrack: the sign of
        # ∂E/∂w(t−1)·∂E/∂w(t) is sign(g_t)·sign(P_{t−1}) (exact, no product to underflow).
        agree = jnp.sign(g) * jnp.sign(prev)
        up = jnp.minimum(delta * scalar_like(eta_plus, delta), scalar_like(max_step_size, delta))
        down = jnp.maximum(delta * scalar_like(eta_minus, delta), scalar_like(min_step_size, delta))
        delta_new = jnp.where(agree > 0, up, jnp.where(agree < 0, down, delta))
        step = delta_new * jnp.sign(g)
        # a sign change takes the last move back: θ_t = θ_{t−1} − Δw_{t−1} (= + P_{t−1})
        direction = jnp.where(agree < 0, -prev, step)
        return direction, delta_new, jnp.where(agree < 0, jnp.zeros_like(step), step)

    def torch_rule(g, delta, prev):
        # torch.optim.Rprop (_single_tensor_rprop), line by line; prev is torch's g_{t−1}.
        sign = jnp.sign(g * prev)
        eta_p, eta_m = scalar_like(eta_plus, delta), scalar_like(eta_minus, delta)
        factor = jnp.where(sign > 0, eta_p, jnp.where(sign < 0, eta_m, jnp.ones_like(delta)))
        delta_new = jnp.clip(
            delta * factor,
            scalar_like(min_step_size, delta),
            scalar_like(max_step_size, delta),
        )
        g_kept = jnp.where(sign < 0, jnp.zeros_like(g), g)  # torch: "for dir<0, dfdx=0"
        return jnp.sign(g_kept) * delta_new, delta_new, g_kept

    def optax_rule(g, delta, prev):
        # optax.scale_by_rprop, term by term: s = g·P_{t−1}; it moves by P_{t−1}, the step
        # chosen one update earlier, unless the new gradient disagrees with it.
        s = g * prev
        factor = jnp.where(s > 0, scalar_like(eta_plus, delta), scalar_like(eta_minus, delta))
        delta_new = jnp.where(
            s == 0,
            delta,
            jnp.clip(
                delta * factor,
                scalar_like(min_step_size, delta),
                scalar_like(max_step_size, delta),
            ),
        )
        prev_new = jnp.where(s < 0, jnp.zeros_like(g), delta_new * jnp.sign(g))
        direction = jnp.where(s < 0, jnp.zeros_like(prev), prev)
        return direction, delta_new, prev_new

    rule = {None: paper_rule, "torch": torch_rule, "optax": optax_rule}[like]

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args

        def leaf(g, delta, prev):
            direction, delta_new, prev_new = _per_component(rule, g, delta, prev)
            return (
                direction.astype(g.dtype),
                delta_new.astype(delta.dtype),
                prev_new.astype(prev.dtype),
            )

        out = jax.tree.map(leaf, updates, state.step_sizes, state.prev_updates)
        direction, step_sizes, prev_updates = unzip(updates, out, 3)
        return direction, ScaleByRpropState(step_sizes=step_sizes, prev_updates=prev_updates)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _negate() -> optax.GradientTransformationExtraArgs:
    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        return jax.tree.map(lambda u: -u, updates), state

    return optax.GradientTransformationExtraArgs(optax.init_empty_state, update_fn)


def rprop(
    learning_rate: ScalarOrSchedule,
    eta_minus: float = 0.5,
    eta_plus: float = 1.2,
    min_step_size: float = 1e-6,
    max_step_size: float = 50.0,
    *,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Rprop: Riedmiller & Braun's algorithm, with weight-backtracking.

    Every coordinate i has its own step size Δ_t; only the sign of the gradient is used::

        Δ_0 ← α,  ∂E/∂w(0) ← 0
        for t = 1, 2, …
            g_t ← ∂E/∂w(θ_{t−1})                       (for each coordinate)
            if g_{t−1}·g_t > 0:
                Δ_t ← min(η⁺·Δ_{t−1}, Δ_max)
                Δw_t ← −sign(g_t)·Δ_t,    θ_t ← θ_{t−1} + Δw_t
            else if g_{t−1}·g_t < 0:
                Δ_t ← max(η⁻·Δ_{t−1}, Δ_min)
                θ_t ← θ_{t−1} − Δw_{t−1}                (weight-backtracking)
                g_t ← 0                                 (so step t+1 takes the last branch)
            else (g_{t−1}·g_t = 0):
                Δ_t ← Δ_{t−1}
                Δw_t ← −sign(g_t)·Δ_t,    θ_t ← θ_{t−1} + Δw_t

    A sign change means the last step jumped over a minimum: it is taken back and the step
    size shrinks; the stored gradient 0 makes the next step move by the reduced Δ without
    adapting it again. This is the paper's algorithm (the default, ``like=None``); its
    "Rprop+" in Igel & Hüsken's naming.

    Symbols → arguments: Δ_0 = ``learning_rate`` (the initial step size; there is no
    other step size: a schedule is read once, at count 0, by ``init``, and, as in torch
    and optax, a rate injected later by ``optax.inject_hyperparams`` changes nothing),
    η⁻ = ``eta_minus``, η⁺ = ``eta_plus``, Δ_min = ``min_step_size``, Δ_max =
    ``max_step_size``. The defaults η⁻ = 0.5, η⁺ = 1.2, Δ_min = 1e-6, Δ_max = 50 are the
    paper's (its Δ_0 = 0.1) and optax's and torch's. Δ is bounded only when it changes, as
    in the paper: a Δ_0 outside [Δ_min, Δ_max] stays until the first adaptation.

    Versus the libraries, with s_t = g_t·p_{t−1}:

    * ``like="torch"``: ``torch.optim.Rprop`` (``lr`` = Δ_0, ``etas`` = (η⁻, η⁺),
      ``step_sizes`` = (Δ_min, Δ_max), the same defaults), which is iRprop− (Igel &
      Hüsken 2000): no backtracking. With p_0 = 0::

          f_t = η⁺ if s_t > 0,  η⁻ if s_t < 0,  1 if s_t = 0
          Δ_t = clip(f_t·Δ_{t−1}, Δ_min, Δ_max)           (clipped every step)
          g̃_t = 0 if s_t < 0 else g_t
          θ_t = θ_{t−1} − Δ_t·sign(g̃_t),   p_t = g̃_t

      On a sign change it stays put (the paper steps back); the zeroed gradient makes the
      next step s = 0, so it moves by Δ_t unadapted (as the paper's). Its first step moves
      by clip(Δ_0)·sign(g_1), as the paper's (which does not clip).
    * ``like="optax"``: ``optax.rprop``. With P_0 = 0::

          Δ_t = Δ_{t−1} if s_t = 0,  else clip(Δ_{t−1}·(η⁺ if s_t > 0 else η⁻), Δ_min, Δ_max)
          θ_t = θ_{t−1} − (0 if s_t < 0 else P_{t−1})
          P_t = 0 if s_t < 0 else Δ_t·sign(g_t),           p_t = P_t

      Δ and P follow iRprop− (P_t is the step iRprop− would take at t), but θ moves by
      P_{t−1}, the step chosen at the previous update from g_{t−1}: every move lags one
      gradient behind. So its first update is 0, and a sign change costs two updates
      without motion (s_t < 0, then P_t = 0). The trajectories of the three forms differ
      from the first sign change on (optax's from the first step).

    Complex parameters: the real and imaginary parts are separate coordinates, each with
    its own step size (torch's convention, ``view_as_real``; the state holds Δ^re + i·Δ^im),
    in all three forms; ``optax.rprop`` itself raises there (it clips complex numbers).

    Args:
      learning_rate: Δ_0 ≥ 0, the initial step size (or a schedule, read at 0).
      eta_minus: η⁻ in (0, 1), the factor on a sign change.
      eta_plus: η⁺ > 1, the factor while the sign holds.
      min_step_size: Δ_min ≥ 0.
      max_step_size: Δ_max ≥ Δ_min.
      like: None (the paper), ``"torch"`` (iRprop−) or ``"optax"``.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Example:
      >>> import jax.numpy as jnp, numpy as np, optlab
      >>> tx = optlab.optimizers.rprop(0.1)
      >>> state = tx.init(jnp.zeros(2))
      >>> u1, state = tx.update(jnp.array([3.0, -1.0]), state)  # −Δ_0·sign(g)
      >>> u2, state = tx.update(jnp.array([2.0, 5.0]), state)  # Δ·1.2; a sign change: back
      >>> print(np.asarray(u1, float), np.round(np.asarray(u2, float), 4))
      [-0.1  0.1] [-0.12 -0.1 ]

    References:
      Riedmiller & Braun, "A direct adaptive method for faster backpropagation learning:
      the RPROP algorithm", IEEE International Conference on Neural Networks, 1993.
      Igel & Hüsken, "Improving the Rprop learning algorithm", NC 2000.
    """
    check_like("rprop", like, ("optax", "torch"))
    return optax.chain(
        scale_by_rprop(learning_rate, eta_minus, eta_plus, min_step_size, max_step_size, like=like),
        _negate(),
    )
