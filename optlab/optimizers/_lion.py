"""Lion: EvoLved Sign Momentum (Chen et al. 2023, Algorithm 2).

Also the pieces the sign family shares (``_adopt``, ``_ademamix``, ``_adan``): the ``like``
check and the decoupled weight-decay step.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab import _validation
from optlab.optimizers._base import (
    ScalarOrSchedule,
    init_count,
    learning_rate_at,
    next_count,
    scalar_like,
)

MaskOrFn = Any | Callable[[Any], Any] | None
LIBRARIES = {"optax": "optax", "torch": "torch.optim"}
LION_MODES = ("hard", "smooth", "refined")


def check_like(owner: str, like: Any, available: tuple[str, ...]) -> None:
    """``like`` is None (the paper) or one of the libraries in ``available``."""
    if like is None or like in available:
        return
    choices = (None, *available)
    if like in LIBRARIES:
        raise ValueError(
            f"{owner}: like={like!r} is not available: {LIBRARIES[like]} has no {owner}. "
            f"Pass one of {choices}."
        )
    _validation.fail(owner, "like", like, f"one of {choices}", "None is the paper's form.")


def moment_zeros(params: Any, dtype: Any = None) -> Any:
    """Zeros like ``params`` (works on ShapeDtypeStructs), in ``dtype`` if given."""
    return jax.tree.map(lambda p: jnp.zeros(p.shape, dtype or p.dtype), params)


def unzip(like_tree: Any, tree_of_tuples: Any, n: int) -> tuple[Any, ...]:
    """Splits a tree (structured like ``like_tree``) of n-tuples into n trees."""
    treedef = jax.tree.structure(like_tree)
    leaves = treedef.flatten_up_to(tree_of_tuples)
    return tuple(treedef.unflatten([leaf[i] for leaf in leaves]) for i in range(n))


def _is_zero(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and value == 0


def _decay_flags(mask: MaskOrFn, params: Any) -> Any:
    """A bool per leaf of ``params``; ``mask`` may be a full tree, a prefix, or a function."""
    if mask is None:
        return jax.tree.map(lambda _: True, params)
    flags = mask(params) if callable(mask) else mask
    return jax.tree.map(lambda flag, sub: jax.tree.map(lambda _: flag, sub), flags, params)


class DecoupledDecayState(NamedTuple):
    """``count``: updates made, for the learning-rate and weight-decay schedules."""

    count: jax.Array


def decoupled_decay(
    owner: str,
    learning_rate: ScalarOrSchedule,
    weight_decay: ScalarOrSchedule,
    mask: MaskOrFn = None,
    *,
    proximal: bool = False,
) -> optax.GradientTransformationExtraArgs:
    """Direction d → ``−α_t·(d + λ_t·θ)``, or ``−α_t·(d + λ_t·θ)/(1 + λ_t·α_t)`` if
    ``proximal`` (θ ← (θ − α_t·d)/(1 + λ_t·α_t), Adan's step).

    α_t, λ_t: floats or schedules of the number of updates made (0 for the first). ``mask``
    (a tree of bools like the params, a prefix of it, or a function of the params) selects
    the leaves that decay; the others get ``−α_t·d``. ``update`` needs ``params`` unless
    λ is the constant 0 (as ``optax.add_decayed_weights`` + ``scale_by_learning_rate``).
    """
    _validation.check_learning_rate(owner, learning_rate)
    if not callable(weight_decay):
        _validation.check_non_negative(owner, "weight_decay", weight_decay, "Use e.g. 1e-3.")

    def init_fn(params):
        del params
        return DecoupledDecayState(count=init_count())

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        alpha = learning_rate_at(learning_rate, state.count)
        new_state = DecoupledDecayState(count=next_count(state.count))
        if _is_zero(weight_decay):
            return jax.tree.map(lambda d: -(scalar_like(alpha, d) * d), updates), new_state
        if params is None:
            raise ValueError(f"{owner}: `update` needs `params` for the weight decay term.")
        lam = learning_rate_at(weight_decay, state.count)

        def step(d, p, decays):
            if not decays:
                return -(scalar_like(alpha, d) * d)
            u = scalar_like(alpha, d) * (d + scalar_like(lam, p) * p)
            if proximal:
                u = u / scalar_like(1.0 + lam * alpha, u)
            return -u

        return jax.tree.map(step, updates, params, _decay_flags(mask, params)), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


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
