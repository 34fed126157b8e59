"""RMSProp (lectures 01, 02, 03; Hinton's lecture 6e)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab import _validation
from optlab.optimizers._adam import per_real_coordinate
from optlab.optimizers._base import (
    ScalarOrSchedule,
    abs_sq,
    check_like,
    scalar_like,
    scale_by_learning_rate,
    unzip,
    with_learning_rate,
    zeros_like,
)

LIKE = ("optax", "torch")
# β (decay) when the caller passes none: the lecture's and optax's 0.9; torch's alpha=0.99.
DEFAULT_DECAY = {None: 0.9, "optax": 0.9, "torch": 0.99}


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


def scale_by_rmsprop_torch(
    decay: float = 0.99,
    eps: float = 1e-8,
    *,
    centered: bool = False,
    momentum: float | None = None,
) -> optax.GradientTransformationExtraArgs:
    """``torch.optim.RMSprop``'s direction, term by term, on the real view of complex
    parameters; ``RmspropState`` as in ``scale_by_rmsprop``."""
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

    def leaf(g, s, m, b):
        s = scalar_like(decay, s) * s + scalar_like(1.0 - decay, s) * (g * g)
        if centered:  # grad_avg.lerp_(grad, 1 − α); avg = √(s − m²) + ε
            m = m + scalar_like(1.0 - decay, m) * (g - m)
            avg = jnp.sqrt(s - m * m) + scalar_like(eps, s)
        else:
            avg = jnp.sqrt(s) + scalar_like(eps, s)
        d = g / avg
        if momentum is not None:  # buf = μ·buf + g/avg; θ −= lr·buf
            b = scalar_like(momentum, b) * b + d
            d = b
        return d, s, m, b

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        zeros = jax.tree.map(jnp.zeros_like, updates)  # stand-ins for absent m / buffer
        m = state.m if centered else zeros
        b = state.buffer if momentum is not None else zeros
        out = jax.tree.map(
            lambda g, s, m, b: per_real_coordinate(leaf, g, s, m, b), updates, state.s, m, b
        )
        direction, s, m, b = unzip(updates, out, 4)
        return direction, RmspropState(
            s=s, m=m if centered else None, buffer=b if momentum is not None else None
        )

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def trace(decay: float) -> optax.GradientTransformationExtraArgs:
    """``optax.trace(decay)``: ``t ← u + decay·t``, returns t (state ``optax.TraceState``)."""

    def init_fn(params):
        return optax.TraceState(trace=zeros_like(params))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        new = jax.tree.map(lambda u, t: u + scalar_like(decay, t) * t, updates, state.trace)
        return new, optax.TraceState(trace=new)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _conflict(name: str, value, like: str, why: str) -> None:
    raise ValueError(f"rmsprop: {name}={value!r} conflicts with like={like!r}: {why} Drop one.")


def rmsprop(
    learning_rate: ScalarOrSchedule,
    decay: float | None = None,
    eps: float = 1e-8,
    *,
    eps_in_sqrt: bool | None = None,
    centered: bool = False,
    momentum: float | None = None,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""RMSProp: AdaGrad with an exponentially decaying sum of squared gradients.

    Lecture 02::

        s ← β·s + (1 − β)·∇J(w) ⊗ ∇J(w)
        w ← w − α·∇J(w) ⊘ √(s + ε)

    Lecture 01 writes ``v(θ,t) = γ·v(θ,t−1) + (1 − γ)·g_t²``, ``Δθ_t = −η·g_t/√v(θ,t)``
    (no ε).

    Symbols → arguments: α = η = ``learning_rate``; β = γ = ``decay`` (Keras' ``rho``,
    PyTorch's ``alpha``; None, the default: 0.9, or torch's 0.99 with ``like="torch"``);
    ε = ``eps``. s starts at 0.

    Switches (each gives a PyTorch ``torch.optim.RMSprop`` variant):

    * ``eps_in_sqrt=False``: ``g ⊘ (√s + ε)``, PyTorch's placement (and its default
      ``alpha=0.99`` differs from the lecture's 0.9 used here). None (the default) is
      ``True``, or ``False`` with ``like="torch"``.
    * ``centered=True``: Graves (2013); also keeps m ← βm + (1 − β)g and divides by
      √(s − m ⊙ m + ε), i.e. by an estimate of the standard deviation.
    * ``momentum=μ``: ``b ← μb + g ⊘ √(s + ε)``, ``w ← w − α·b`` (PyTorch's order: the
      learning rate outside the buffer). ``optax.rmsprop(momentum=μ)`` puts the rate
      inside the buffer; the two agree for a constant rate.

    ``optax.rmsprop`` with ``eps_in_sqrt=True`` (its default) is the lecture's form.

    Versus the libraries (ε = 1e-8 and s_0 = 0 in all three):

    * ``torch.optim.RMSprop(lr, alpha=0.99, eps, momentum=0, centered)``
      (``weight_decay=0``): s_t = α·s_{t−1} + (1 − α)·g_t², d_t = g_t ⊘ (√s_t + ε) —
      ε *outside* the root — or, centered, m_t = lerp(m_{t−1}, g_t, 1 − α) and
      d_t = g_t ⊘ (√(s_t − m_t²) + ε); with momentum μ > 0 its buffer holds the
      unscaled step, b_t = μ·b_{t−1} + d_t, θ_t = θ_{t−1} − α_t·b_t (the rate outside
      the buffer, as this default). Its default decay is 0.99: ``like="torch"`` takes it
      when ``decay`` is not passed, and raises with ``eps_in_sqrt=True``. For complex
      parameters torch works on the real view: Re and Im each have their own s (from
      (Re g)², (Im g)²) and m, and are divided by their own √· + ε; the lecture's form
      and optax use |g|² (optax's convention).
    * ``optax.rmsprop(learning_rate, decay=0.9, eps=1e-8, eps_in_sqrt=True, centered,
      momentum)``: the same s, m and d (ε inside the root by default, either placement
      allowed), but with momentum it chains ``scale_by_learning_rate`` *before*
      ``trace(μ)``, so its buffer holds the scaled update:
      t_t = −α_t·d_t + μ·t_{t−1}, θ_t = θ_{t−1} + t_t. That equals b_t's step for a
      constant rate and differs under a schedule (past steps keep the rate they were
      taken with). ``like="optax"`` does that; its state is then
      (RmspropState(s, m, None), the rate's count, ``optax.TraceState``).

    Args:
      learning_rate: α ≥ 0, or a schedule.
      decay: β in [0, 1).
      eps: ε ≥ 0.
      eps_in_sqrt: ε inside the root (lecture, optax) or outside (PyTorch); None
        (default): the form's own (inside; outside with ``like="torch"``).
      centered: divide by the centred second moment.
      momentum: None for none, else μ in [0, 1).
      like: None (the lecture, PyTorch's momentum order), ``"optax"`` or ``"torch"``
        (keyword-only).

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
    check_like("rmsprop", like, LIKE)
    _validation.check_learning_rate("rmsprop", learning_rate)
    decay = DEFAULT_DECAY[like] if decay is None else decay
    if like == "torch":
        if eps_in_sqrt:
            _conflict("eps_in_sqrt", eps_in_sqrt, like, "torch.optim.RMSprop adds ε outside.")
        direction = scale_by_rmsprop_torch(decay, eps, centered=centered, momentum=momentum)
        return with_learning_rate(direction, learning_rate)
    eps_in_sqrt = True if eps_in_sqrt is None else eps_in_sqrt
    if like == "optax" and momentum is not None:
        _validation.check_unit_interval("rmsprop", "momentum", momentum)
        return optax.chain(
            scale_by_rmsprop(decay, eps, eps_in_sqrt=eps_in_sqrt, centered=centered),
            scale_by_learning_rate(learning_rate),
            trace(momentum),
        )
    return with_learning_rate(
        scale_by_rmsprop(decay, eps, eps_in_sqrt=eps_in_sqrt, centered=centered, momentum=momentum),
        learning_rate,
    )
