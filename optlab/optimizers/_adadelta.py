"""ADADELTA: steps in the units of the parameters (Zeiler 2012, Algorithm 1)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab import _validation
from optlab.optimizers._base import (
    MaskOrFn,
    ScalarOrSchedule,
    abs_sq,
    check_like,
    init_count,
    is_zero,
    learning_rate_at,
    next_count,
    scalar_like,
    unzip,
    with_learning_rate,
    zeros_like,
)


class ScaleByAdaDeltaState(NamedTuple):
    """``e_g``: E[g²], the EMA of squared gradients; ``e_x``: E[Δx²], the EMA of squared
    steps (before the learning rate). optax's ``ScaleByAdaDeltaState``: the same names and
    fields (for complex parameters each form stores its own kind of square, see
    ``adadelta``)."""

    e_g: optax.Updates
    e_x: optax.Updates


class AddDecayedWeightsState(NamedTuple):
    """``count``: updates made, for a weight-decay schedule."""

    count: jax.Array


def check_adadelta_hyperparams(rho, eps) -> None:
    if _validation.is_concrete_number(rho) and not 0.0 <= rho <= 1.0:
        _validation.fail("adadelta", "rho", rho, "in [0, 1]", "Zeiler uses rho=0.95.")
    _validation.check_non_negative("adadelta", "eps", eps, "Zeiler uses eps=1e-6.")


def _modulus_squares(x: jax.Array) -> jax.Array:
    """|x|² (real, in x's dtype): the paper's form."""
    return abs_sq(x).astype(x.dtype)


def _complex_squares(x: jax.Array) -> jax.Array:
    """x·x, the complex square for complex x (what ``optax.scale_by_adadelta`` computes)."""
    return x * x


def scale_by_adadelta(
    rho: float = 0.9, eps: float = 1e-6, *, like: str | None = None
) -> optax.GradientTransformationExtraArgs:
    """ADADELTA's step Δx_t = (RMS[Δx]_{t−1}/RMS[g]_t)·g_t (Algorithm 1, sign flipped).

    optax's name, arguments, defaults and state. It returns +Δ (the direction of g), to be
    followed by ``scale_by_learning_rate``, as in optax; see ``adadelta``.
    """
    check_like("adadelta", like, ("optax", "torch"))
    check_adadelta_hyperparams(rho, eps)

    def real_leaf(g, e_g, e_x, square):
        e_g = scalar_like(rho, e_g) * e_g + scalar_like(1.0 - rho, e_g) * square(g)
        e = scalar_like(eps, e_g)
        delta = jnp.sqrt(e_x + e) / jnp.sqrt(e_g + e) * g
        e_x = scalar_like(rho, e_x) * e_x + scalar_like(1.0 - rho, e_x) * square(delta)
        return delta, e_g, e_x

    def torch_leaf(g, e_g, e_x):
        def part(g, e_g, e_x):
            return jnp.stack(real_leaf(g, e_g, e_x, lambda x: x * x))

        if not jnp.iscomplexobj(g):
            return real_leaf(g, e_g, e_x, lambda x: x * x)
        re, im = part(g.real, e_g.real, e_x.real), part(g.imag, e_g.imag, e_x.imag)
        out = jax.lax.complex(re, im).astype(g.dtype)
        return out[0], out[1], out[2]

    def leaf(g, e_g, e_x):
        if like == "torch":
            return torch_leaf(g, e_g, e_x)
        square = _complex_squares if like == "optax" else _modulus_squares
        return real_leaf(g, e_g, e_x, square)

    def init_fn(params):
        return ScaleByAdaDeltaState(e_g=zeros_like(params), e_x=zeros_like(params))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        out = jax.tree.map(leaf, updates, state.e_g, state.e_x)
        delta, e_g, e_x = unzip(updates, out, 3)
        delta = jax.tree.map(lambda d, g: d.astype(g.dtype), delta, updates)
        return delta, ScaleByAdaDeltaState(e_g=e_g, e_x=e_x)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _decay_flags(mask: MaskOrFn, params: Any) -> Any:
    """A bool per leaf; ``mask`` is None, a tree of bools (or a prefix), or a function."""
    if mask is None:
        return jax.tree.map(lambda _: True, params)
    flags = mask(params) if callable(mask) else mask
    return jax.tree.map(lambda flag, sub: jax.tree.map(lambda _: flag, sub), flags, params)


def _add_decayed_weights(
    weight_decay: ScalarOrSchedule = 0.0, mask: MaskOrFn = None
) -> optax.GradientTransformationExtraArgs:
    """g → g + λ_t·θ (coupled L2, as ``optax.add_decayed_weights`` and torch's
    ``weight_decay``), λ_t a float or a schedule of the updates made, cast to each leaf's
    dtype. ``update`` needs ``params`` unless λ is the constant 0."""
    if not callable(weight_decay):
        _validation.check_non_negative("adadelta", "weight_decay", weight_decay, "Use e.g. 1e-4.")

    def init_fn(params):
        del params
        return AddDecayedWeightsState(count=init_count())

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        new_state = AddDecayedWeightsState(count=next_count(state.count))
        if is_zero(weight_decay):
            return updates, new_state
        if params is None:
            raise ValueError("adadelta: `update` needs `params` for the weight decay term.")
        lam = learning_rate_at(weight_decay, state.count)

        def add(g, p, decays):
            return g + scalar_like(lam, p) * p if decays else g

        return jax.tree.map(add, updates, params, _decay_flags(mask, params)), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def adadelta(
    learning_rate: ScalarOrSchedule,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: ScalarOrSchedule = 0.0,
    weight_decay_mask: MaskOrFn = None,
    *,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""ADADELTA: Zeiler's Algorithm 1, with a step-size multiplier α (1 is the paper).

    ::

        E[g²]_0 ← 0,  E[Δx²]_0 ← 0
        for t = 1, 2, …
            g_t ← ∇f(x_t)
            E[g²]_t ← ρ·E[g²]_{t−1} + (1 − ρ)·g_t²
            Δx_t ← −( RMS[Δx]_{t−1} / RMS[g]_t )·g_t,     RMS[y]_t = √(E[y²]_t + ε)
            E[Δx²]_t ← ρ·E[Δx²]_{t−1} + (1 − ρ)·Δx_t²
            x_{t+1} ← x_t + α_t·Δx_t

    The ratio of the two RMS's gives the step the units of x (Zeiler's argument: Δx ≈ g/H,
    so 1/H ≈ Δx/g), so the paper needs no learning rate: α = 1 is Algorithm 1 exactly, and
    the value to start from (``torch.optim.Adadelta``'s default). Other α scale the applied
    step only: E[Δx²] accumulates the unscaled Δx_t, as in optax and torch (accumulating
    α·Δx_t instead would feed α back into RMS[Δx] and compound it from step to step). The
    first steps are small, √ε·|g|/√((1 − ρ)·g² + ε) ≈ √(ε/(1 − ρ)), and grow as E[Δx²]
    fills. ρ = 1 keeps both averages at 0: Δx = −g (gradient descent at rate α).

    Symbols → arguments: α_t = ``learning_rate`` (required: a float, or a schedule of the
    number of updates made, 0 for the first), ρ = ``rho``, ε = ``eps`` (inside both roots),
    λ = ``weight_decay`` (a float or such a schedule; the paper has none) adds λ·x_t to g_t
    before everything (coupled L2, optax's and torch's), on the leaves ``weight_decay_mask``
    selects. Defaults: optax's and torch's ρ = 0.9, ε = 1e-6 (the paper's experiments use
    ρ = 0.95, ε = 1e-6). ``learning_rate`` has no default here although optax's is None:
    ``optax.adadelta(learning_rate=None)`` skips its final scale step, sign flip included,
    so its update is −Δx_t = +(RMS[Δx]_{t−1}/RMS[g]_t)·g_t: it climbs. Pass 1.0 for
    Zeiler's method. (optax's ``update`` also needs ``params`` even when λ = 0; this one
    only when λ ≠ 0.)

    Versus the libraries: on real parameters ``optax.adadelta`` (``like="optax"``; same
    names, defaults and state, optax's ``ScaleByAdaDeltaState``) and
    ``torch.optim.Adadelta`` (``like="torch"``, ``lr`` = α) compute the same iterates as
    the paper's form: g ← g + λx, the two EMAs above with ε inside both roots, then
    x ← x − α·(√(E[Δx²]_{t−1} + ε)/√(E[g²]_t + ε))·g. They part on complex parameters,
    where "g²" is read three ways:

    * the paper's form (optax's convention elsewhere): E[g²] += (1 − ρ)·|g|², E[Δx²] +=
      (1 − ρ)·|Δx|², real, so the step keeps g's phase;
    * optax: the complex squares g·g and Δx·Δx (``update_moment(…, order=2)``), so E[g²] is
      complex and both roots are complex principal roots: the step rotates g;
    * torch: ``view_as_real``, i.e. the real and imaginary parts as two real parameters,
      each with its own E[g²] and E[Δx²] (stored here as the real and imaginary parts of
      complex buffers).

    Args:
      learning_rate: α ≥ 0 (1.0: Zeiler's method), or a schedule.
      rho: ρ in [0, 1].
      eps: ε ≥ 0.
      weight_decay: λ ≥ 0, or a schedule.
      weight_decay_mask: which leaves decay (a tree of bools, a prefix, or a function of
        the params); None: all.
      like: None (the paper), ``"optax"`` or ``"torch"``.

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its ``update`` needs ``params`` when
      λ ≠ 0.

    Example:
      >>> import jax.numpy as jnp, numpy as np
      >>> from optlab.optimizers._adadelta import adadelta
      >>> tx = adadelta(1.0, rho=0.9, eps=1e-6)
      >>> updates, _ = tx.update(jnp.array([3.0, -2.0]), tx.init(jnp.zeros(2)))
      >>> # t = 1: −√ε/√(0.1·g² + ε)·g ≈ −√(ε/0.1)·sign(g)
      >>> print(np.round(np.asarray(updates, float) * 1e3, 3))
      [-3.162  3.162]

    References:
      Zeiler, "ADADELTA: An adaptive learning rate method", arXiv:1212.5701, 2012.
    """
    check_like("adadelta", like, ("optax", "torch"))
    _validation.check_learning_rate("adadelta", learning_rate)
    return optax.chain(
        _add_decayed_weights(weight_decay, weight_decay_mask),
        with_learning_rate(scale_by_adadelta(rho, eps, like=like), learning_rate),
    )
