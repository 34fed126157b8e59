"""Lion: EvoLved Sign Momentum (Chen et al. 2023, Algorithm 2)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab import _validation
from optlab.optimizers._base import (
    MaskOrFn,
    ScalarOrSchedule,
    check_like,
    decoupled_decay,
    init_count,
    moment_zeros,
    next_count,
    scalar_like,
)

LION_MODES = ("hard", "smooth", "refined")


def _sign(x: jax.Array) -> jax.Array:
    """sign(x) ∈ {−1, 0, 1} for real x; x/|x| (0 at 0) for complex x, as ``jnp.sign``."""
    return jnp.sign(x)


class ScaleByLionState(NamedTuple):
    """``count``: updates made; ``mu``: m, the EMA of gradients (β2). optax's
    ``ScaleByLionState``: the same names, fields and values."""

    count: jax.Array
    mu: optax.Updates


def check_lion_hyperparams(b1, b2) -> None:
    _validation.check_unit_interval("lion", "b1", b1, "Chen et al. use b1=0.9.")
    _validation.check_unit_interval("lion", "b2", b2, "Chen et al. use b2=0.99.")


def scale_by_lion(
    b1: float = 0.9,
    b2: float = 0.99,
    mu_dtype: Any = None,
    *,
    mode: str = "hard",
    smooth_beta: float = 1.0,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Lion's direction sign(β1·m + (1 − β1)·g) (Algorithm 2 without η and λ).

    ``mode``/``smooth_beta`` are optax's variants of the sign: ``"hard"`` (the paper's
    sign), ``"smooth"`` (tanh(smooth_beta·c)), ``"refined"`` (c where |c| < 1, else sign(c)).
    """
    check_like("lion", like, ("optax",))
    check_lion_hyperparams(b1, b2)
    _validation.check_choice("lion", "mode", mode, LION_MODES)

    def shape(c):
        if mode == "hard":
            return _sign(c)
        if mode == "smooth":
            return jnp.tanh(scalar_like(smooth_beta, c) * c)
        return jnp.where(jnp.abs(c) < 1, c, _sign(c))

    def init_fn(params):
        return ScaleByLionState(count=init_count(), mu=moment_zeros(params, mu_dtype))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args

        def direction(g, m):
            dtype = jnp.result_type(g, m)
            g, m = g.astype(dtype), m.astype(dtype)
            c = scalar_like(1.0 - b1, g) * g + scalar_like(b1, g) * m
            return shape(c)

        def ema(g, m):
            dtype = jnp.result_type(g, m)
            new = scalar_like(1.0 - b2, m) * g.astype(dtype) + scalar_like(b2, m) * m
            return new.astype(m.dtype)

        out = jax.tree.map(lambda g, m: direction(g, m).astype(g.dtype), updates, state.mu)
        mu = jax.tree.map(ema, updates, state.mu)
        return out, ScaleByLionState(count=next_count(state.count), mu=mu)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def lion(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.99,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 1e-3,
    mask: MaskOrFn = None,
    *,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Lion: Chen et al.'s Algorithm 2 (evolved sign momentum).

    ::

        g_t ← ∇_θ f(θ_{t−1})
        c_t ← β1·m_{t−1} + (1 − β1)·g_t
        θ_t ← θ_{t−1} − η_t·( sign(c_t) + λ·θ_{t−1} )
        m_t ← β2·m_{t−1} + (1 − β2)·g_t

    Symbols → arguments: η_t = ``learning_rate`` (a float or a schedule of the number of
    updates made, 0 for the first), β1 = ``b1``, β2 = ``b2``, λ = ``weight_decay`` (a float
    or such a schedule); m_0 = 0. β1 = 0.9, β2 = 0.99 are the paper's defaults; the paper
    gives no default λ (it tunes λ with η, keeping η·λ near AdamW's), so λ = 1e-3 is optax's.
    The decay is decoupled and multiplied by the full η_t, as in the paper's Algorithm 2.

    Versus the libraries: ``optax.lion`` computes the same iterates (same names, defaults
    and state; sign(0) = 0 in both), so ``like="optax"`` equals the default. torch.optim
    has no Lion: ``like="torch"`` raises. ``mu_dtype`` stores m in another dtype (optax's
    argument); ``mask`` selects the leaves that decay (a tree of bools, a prefix of one, or
    a function of the params), as in optax.

    Complex parameters: sign is not defined there; optlab uses sign(c) = c/|c| (0 at c = 0),
    the unit complex number of c's phase, which is what ``jnp.sign`` and hence
    ``optax.lion`` compute. For real c it is the usual sign.

    Args:
      learning_rate: η ≥ 0, or a schedule.
      b1: β1 in [0, 1), the interpolation of the update.
      b2: β2 in [0, 1), the momentum's decay.
      mu_dtype: the dtype of m (None: the params').
      weight_decay: λ ≥ 0, or a schedule.
      mask: which leaves decay; None decays all.
      like: None (the paper) or ``"optax"`` (the same formula).

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its ``update`` needs ``params`` when
      λ ≠ 0.

    Example:
      >>> import jax.numpy as jnp, numpy as np, optlab
      >>> tx = optlab.optimizers.lion(0.1, weight_decay=0.0)
      >>> updates, _ = tx.update(jnp.array([12.0, -0.5, 0.0]), tx.init(jnp.zeros(3)))
      >>> print(np.asarray(updates, float))  # −η·sign(g): every step has size η
      [-0.1  0.1 -0. ]

    References:
      Chen et al., "Symbolic discovery of optimization algorithms", NeurIPS 2023.
    """
    check_like("lion", like, ("optax",))
    return optax.chain(
        scale_by_lion(b1, b2, mu_dtype, like=like),
        decoupled_decay("lion", learning_rate, weight_decay, mask),
    )
