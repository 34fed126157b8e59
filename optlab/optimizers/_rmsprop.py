"""RMSProp (lectures 01, 02, 03; Hinton's lecture 6e)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab import _validation
from optlab.optimizers._base import (
    ScalarOrSchedule,
    abs_sq,
    scalar_like,
    with_learning_rate,
    zeros_like,
)


class RmspropState(NamedTuple):
    """``s``: EMA of g ⊙ g; ``m``: EMA of g (``centered`` only, else None);
    ``buffer``: momentum buffer of the scaled gradients (``momentum`` only, else None)."""

    s: optax.Params
    m: optax.Params | None
    buffer: optax.Params | None


def scale_by_rmsprop(
    decay: float = 0.9,
    eps: float = 1e-8,
    *,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    momentum: float | None = None,
) -> optax.GradientTransformationExtraArgs:
    """RMSProp direction ``g ⊘ √(s + ε)`` after ``s ← βs + (1−β) g ⊙ g`` (see ``rmsprop``)."""
    _validation.check_unit_interval("rmsprop", "decay", decay)
    _validation.check_non_negative("rmsprop", "eps", eps)
    if momentum is not None:
        _validation.check_unit_interval("rmsprop", "momentum", momentum)

    def init_fn(params):
        return RmspropState(
            s=zeros_like(params),
            m=zeros_like(params) if centered else None,
            buffer=zeros_like(params) if momentum is not None else None,
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args

        def ema(old, new):
            return scalar_like(decay, old) * old + scalar_like(1.0 - decay, old) * new

        s = jax.tree.map(lambda s, g: ema(s, abs_sq(g).astype(s.dtype)), state.s, updates)
        m = jax.tree.map(ema, state.m, updates) if centered else None
        variance = jax.tree.map(lambda s, m: s - abs_sq(m).astype(s.dtype), s, m) if centered else s

        def scaled(g, var):
            e = scalar_like(eps, var)
            denom = jnp.sqrt(var + e) if eps_in_sqrt else jnp.sqrt(var) + e
            return (g / denom).astype(g.dtype)

        direction = jax.tree.map(scaled, updates, variance)
        buffer = None
        if momentum is not None:
            buffer = jax.tree.map(
                lambda b, d: scalar_like(momentum, b) * b + d, state.buffer, direction
            )
            direction = buffer
        return direction, RmspropState(s=s, m=m, buffer=buffer)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def rmsprop(
    learning_rate: ScalarOrSchedule,
    decay: float = 0.9,
    eps: float = 1e-8,
    *,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    momentum: float | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""RMSProp: AdaGrad with an exponentially decaying sum of squared gradients.

    Lecture 02::

        s ← β·s + (1 − β)·∇J(w) ⊗ ∇J(w)
        w ← w − α·∇J(w) ⊘ √(s + ε)

    Lecture 01 writes ``v(θ,t) = γ·v(θ,t−1) + (1 − γ)·g_t²``, ``Δθ_t = −η·g_t/√v(θ,t)``
    (no ε).

    Symbols → arguments: α = η = ``learning_rate``; β = γ = ``decay`` (Keras' ``rho``,
    PyTorch's ``alpha``); ε = ``eps``. s starts at 0.

    Switches (each gives a PyTorch ``torch.optim.RMSprop`` variant):

    * ``eps_in_sqrt=False``: ``g ⊘ (√s + ε)``, PyTorch's placement (and its default
      ``alpha=0.99`` differs from the lecture's 0.9 used here).
    * ``centered=True``: Graves (2013); also keeps m ← βm + (1 − β)g and divides by
      √(s − m ⊙ m + ε), i.e. by an estimate of the standard deviation.
    * ``momentum=μ``: ``b ← μb + g ⊘ √(s + ε)``, ``w ← w − α·b`` (PyTorch's order: the
      learning rate outside the buffer). ``optax.rmsprop(momentum=μ)`` puts the rate
      inside the buffer; the two agree for a constant rate.

    ``optax.rmsprop`` with ``eps_in_sqrt=True`` (its default) is the lecture's form.

    Args:
      learning_rate: α ≥ 0, or a schedule.
      decay: β in [0, 1).
      eps: ε ≥ 0.
      eps_in_sqrt: ε inside the root (lecture, optax) or outside (PyTorch).
      centered: divide by the centred second moment.
      momentum: None for none, else μ in [0, 1).

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Example:
      >>> import jax.numpy as jnp, numpy as np, optlab
      >>> tx = optlab.rmsprop(0.01, decay=0.9, eps=0.0)
      >>> updates, _ = tx.update(jnp.array([2.0]), tx.init(jnp.zeros(1)))
      >>> # −α·g/√(0.1·g²) = −α/√0.1 on the first step
      >>> print(np.round(np.asarray(updates, float), 4))
      [-0.0316]

    References:
      Tieleman & Hinton, "Lecture 6.5 — RMSProp", COURSERA: Neural Networks for Machine
      Learning, 2012. Graves, "Generating sequences with recurrent neural networks", 2013.
    """
    _validation.check_learning_rate("rmsprop", learning_rate)
    return with_learning_rate(
        scale_by_rmsprop(decay, eps, eps_in_sqrt=eps_in_sqrt, centered=centered, momentum=momentum),
        learning_rate,
    )
