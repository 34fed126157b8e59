"""Clipping, L1/L2/elastic-net penalties and decoupled weight decay (lecture 03, "Regularization").

Each is an ``optax.GradientTransformationExtraArgs`` to put in an ``optax.chain``:
the clippings and penalties act on the gradient, so they go *before* the optimizer;
``decoupled_weight_decay`` acts on the step, so it goes *last*, after the learning rate.
Every one takes a keyword ``mask`` (None: every leaf; a pytree of bools like the params;
or a function params -> such a pytree, e.g. ``optlab.path_mask(r"bias|scale", exclude=True)``)
and leaves the masked-out leaves untouched. Updates keep their dtype (bfloat16 stays
bfloat16). The formulas are for real parameters.
"""

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
    init_count,
    learning_rate_at,
    next_count,
    resolve_mask,
    scalar_like,
)

__all__ = [
    "DecoupledWeightDecayState",
    "clip_by_global_norm",
    "clip_by_value",
    "decoupled_weight_decay",
    "elastic_net",
    "l1_penalty",
    "l2_penalty",
]


class DecoupledWeightDecayState(NamedTuple):
    """``count``: updates made, so that a learning-rate schedule knows its step."""

    count: jax.Array


def _check_positive(owner: str, name: str, value: Any, fix: str) -> None:
    """A concrete ``value`` must be > 0 (inf allowed: no clipping); arrays are not checked."""
    if _validation.is_concrete_number(value) and not value > 0:  # NaN fails too
        raise ValueError(f"{owner}: `{name}` must be a number > 0, got {value!r}. {fix}")


def _require_params(owner: str, params: Any) -> None:
    if params is None:
        raise ValueError(
            f"{owner}: `update` needs `params` (the formula uses the weights W). "
            f"Call tx.update(grads, state, params)."
        )


def _gradient_penalty(owner: str, penalty_grad, mask: MaskOrFn):
    """``g ← g + penalty_grad(W)`` on the leaves ``mask`` selects, in the updates' dtype."""

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        _require_params(owner, params)

        def add(u, p, selected):
            return u + penalty_grad(p).astype(u.dtype) if selected else u

        updates = jax.tree.map(add, updates, params, resolve_mask(mask, params))
        return updates, state

    return optax.GradientTransformationExtraArgs(optax.init_empty_state, update_fn)


def clip_by_value(
    max_abs: float, *, mask: MaskOrFn = None
) -> optax.GradientTransformationExtraArgs:
    r"""Clips every gradient entry to ``[−max_abs, max_abs]``.

    ::

        g ← min(max(g, −c), c)      elementwise

    Symbols → arguments: c = ``max_abs``. Symmetric by choice, as
    ``torch.nn.utils.clip_grad_value_(parameters, clip_value=c)`` and ``optax.clip(c)``
    are; all three give the same result. Unlike global-norm clipping it changes the
    gradient's direction.

    Args:
      max_abs: c > 0 (``inf`` disables clipping).
      mask: which leaves are clipped; None clips all.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` (stateless; ``params`` is not needed).

    Example:
      >>> import jax.numpy as jnp
      >>> from optlab import clip_by_value
      >>> tx = clip_by_value(1.0)
      >>> updates, _ = tx.update(jnp.array([-3.0, 0.5, 2.0]), tx.init(jnp.zeros(3)))
      >>> print(updates)
      [-1.   0.5  1. ]

    References:
      Mikolov, "Statistical language models based on neural networks", PhD thesis, 2012.
    """
    _check_positive("clip_by_value", "max_abs", max_abs, "Use e.g. 1.0.")

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args

        def clip(u, selected):
            if not selected:
                return u
            c = scalar_like(max_abs, u)
            return jnp.clip(u, -c, c)

        return jax.tree.map(clip, updates, resolve_mask(mask, updates)), state

    return optax.GradientTransformationExtraArgs(optax.init_empty_state, update_fn)


def clip_by_global_norm(
    max_norm: float, *, mask: MaskOrFn = None
) -> optax.GradientTransformationExtraArgs:
    r"""Rescales the whole gradient so that its global L2 norm is at most ``max_norm``.

    ::

        ‖g‖₂ = √(Σ_leaves Σ_i g_i²)
        g ← g · min(1, c / ‖g‖₂)

    Symbols → arguments: c = ``max_norm``. The norm runs over every leaf that ``mask``
    selects (as one vector), and only those leaves are rescaled. The direction is kept.
    At g = 0 the factor is 1: no 0/0, and no NaN in a gradient taken through the update.
    The norm is accumulated in at least float32, so bfloat16 gradients do not overflow it.

    Versus the libraries: ``optax.clip_by_global_norm(c)`` computes the same factor (up to
    rounding: it writes (g/‖g‖)·c). ``torch.nn.utils.clip_grad_norm_(ps, c)`` multiplies by
    ``min(1, c/(‖g‖ + 1e-6))``: when it clips, its result is ours times ‖g‖/(‖g‖ + 1e-6),
    a relative difference of 1e-6/‖g‖, and it already clips (slightly) when
    c − 1e-6 < ‖g‖ ≤ c.

    Args:
      max_norm: c > 0 (``inf`` disables clipping).
      mask: which leaves are measured and clipped; None: all.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` (stateless; ``params`` is not needed).

    Example:
      >>> import jax.numpy as jnp
      >>> from optlab import clip_by_global_norm
      >>> tx = clip_by_global_norm(1.0)
      >>> grads = {"w": jnp.array([3.0]), "b": jnp.array([4.0])}  # ‖g‖ = 5
      >>> updates, _ = tx.update(grads, tx.init(grads))
      >>> print(updates["w"], updates["b"])
      [0.6] [0.8]

    References:
      Pascanu, Mikolov & Bengio, "On the difficulty of training recurrent neural
      networks", ICML 2013.
    """
    _check_positive("clip_by_global_norm", "max_norm", max_norm, "Use e.g. 1.0.")

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        selected = resolve_mask(mask, updates)
        leaves = [
            u for u, s in zip(jax.tree.leaves(updates), jax.tree.leaves(selected), strict=True) if s
        ]
        if not leaves:
            return updates, state
        sq_sums = [
            jnp.sum(abs_sq(u).astype(jnp.promote_types(abs_sq(u).dtype, jnp.float32)))
            for u in leaves
        ]
        norm_sq = sum(sq_sums[1:], sq_sums[0])
        clips = norm_sq > jnp.square(jnp.asarray(max_norm, norm_sq.dtype))
        # Double `where`: the unused branch never divides by a zero norm (no inf/NaN,
        # also not in a derivative taken through the update).
        safe_norm = jnp.sqrt(jnp.where(clips, norm_sq, 1.0))
        factor = jnp.where(clips, max_norm / safe_norm, 1.0)

        def scale(u, s):
            return u * scalar_like(factor, u) if s else u

        return jax.tree.map(scale, updates, selected), state

    return optax.GradientTransformationExtraArgs(optax.init_empty_state, update_fn)


def l2_penalty(lam: float, *, mask: MaskOrFn = None) -> optax.GradientTransformationExtraArgs:
    r"""The gradient of lecture 03's L2 penalty λ|W|², added to the gradient.

    Lecture 03: ``L = |y − W x_i|² + λ|W|²`` ("weight decay"). With |W|² = Σ W²,
    ∇_W(λ|W|²) = 2λW, so::

        g ← g + 2·λ·W

    exactly the gradient of ``loss + λ·Σ W²``. Symbols → arguments: λ = ``lam`` (the
    lecture's λ, not half of it); W = ``params``.

    Versus the libraries: ``torch.optim.SGD/Adam(weight_decay=wd)`` and
    ``optax.add_decayed_weights(wd)`` add ``wd·W``, i.e. the penalty (wd/2)·|W|²:
    they equal ``l2_penalty(wd / 2)``. For SGD this is the same as decoupled weight
    decay; for adaptive methods (Adam) it is not, see ``decoupled_weight_decay``.

    Place it before the optimizer: ``optax.chain(l2_penalty(lam), optlab.adam(lr))``.

    Args:
      lam: λ ≥ 0.
      mask: which leaves are penalized (e.g. not biases or norm scales); None: all.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` (stateless); ``update`` needs ``params``.

    Example:
      >>> import jax.numpy as jnp
      >>> from optlab import l2_penalty
      >>> tx = l2_penalty(0.5)
      >>> W = jnp.array([1.0, -2.0])
      >>> updates, _ = tx.update(jnp.array([0.1, 0.1]), tx.init(W), W)
      >>> print(updates)  # g + 2·0.5·W
      [ 1.1 -1.9]

    References:
      Krogh & Hertz, "A simple weight decay can improve generalization", NIPS 1991.
    """
    _validation.check_non_negative("l2_penalty", "lam", lam, "Use e.g. 1e-4 (0: no penalty).")
    return _gradient_penalty("l2_penalty", lambda p: scalar_like(2 * lam, p) * p, mask)


def l1_penalty(lam: float, *, mask: MaskOrFn = None) -> optax.GradientTransformationExtraArgs:
    r"""A subgradient of the L1 penalty λ|W|₁ = λ·Σ|W|, added to the gradient.

    ::

        g ← g + λ·sign(W)          sign(0) = 0

    Symbols → arguments: λ = ``lam``; W = ``params``. Away from W = 0 this is exactly the
    gradient of ``loss + λ·Σ|W|``; at W = 0 it picks the subgradient 0. (Plain subgradient
    steps make weights oscillate around 0 rather than land on it; a proximal step would.)
    PyTorch and optax have no built-in L1 term.

    Args:
      lam: λ ≥ 0.
      mask: which leaves are penalized; None: all.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` (stateless); ``update`` needs ``params``.

    Example:
      >>> import jax.numpy as jnp
      >>> from optlab import l1_penalty
      >>> tx = l1_penalty(0.5)
      >>> W = jnp.array([3.0, 0.0, -2.0])
      >>> updates, _ = tx.update(jnp.zeros(3), tx.init(W), W)
      >>> print(updates)
      [ 0.5  0.  -0.5]

    References:
      Tibshirani, "Regression shrinkage and selection via the lasso", 1996.
    """
    _validation.check_non_negative("l1_penalty", "lam", lam, "Use e.g. 1e-5 (0: no penalty).")
    return _gradient_penalty("l1_penalty", lambda p: scalar_like(lam, p) * jnp.sign(p), mask)


def elastic_net(
    alpha: float, beta: float, *, mask: MaskOrFn = None
) -> optax.GradientTransformationExtraArgs:
    r"""The (sub)gradient of lecture 03's elastic net α|W|² + β|W|, added to the gradient.

    Lecture 03: ``L = |y − W x_i|² + α|W|² + β|W|`` with |W|² = Σ W² and |W| = Σ|W|::

        g ← g + 2·α·W + β·sign(W)          sign(0) = 0

    Symbols → arguments: α = ``alpha``, β = ``beta``; W = ``params``. ``elastic_net(a, 0)``
    is ``l2_penalty(a)`` and ``elastic_net(0, b)`` is ``l1_penalty(b)``. (scikit-learn's
    ElasticNet writes the same penalty with ``alpha, l1_ratio``.)

    Args:
      alpha: α ≥ 0, the L2 weight.
      beta: β ≥ 0, the L1 weight.
      mask: which leaves are penalized; None: all.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` (stateless); ``update`` needs ``params``.

    Example:
      >>> import jax.numpy as jnp
      >>> from optlab import elastic_net
      >>> tx = elastic_net(0.5, 0.25)
      >>> W = jnp.array([2.0, -1.0])
      >>> updates, _ = tx.update(jnp.zeros(2), tx.init(W), W)
      >>> print(updates)  # 2·0.5·W + 0.25·sign(W)
      [ 2.25 -1.25]

    References:
      Zou & Hastie, "Regularization and variable selection via the elastic net", 2005.
    """
    _validation.check_non_negative("elastic_net", "alpha", alpha, "Use e.g. 1e-4 (0: no L2).")
    _validation.check_non_negative("elastic_net", "beta", beta, "Use e.g. 1e-5 (0: no L1).")

    def penalty_grad(p):
        return scalar_like(2 * alpha, p) * p + scalar_like(beta, p) * jnp.sign(p)

    return _gradient_penalty("elastic_net", penalty_grad, mask)


def decoupled_weight_decay(
    weight_decay: float, *, learning_rate: ScalarOrSchedule = 1.0, mask: MaskOrFn = None
) -> optax.GradientTransformationExtraArgs:
    r"""Weight decay applied to the step, not to the gradient (Loshchilov & Hutter).

    Placed LAST in a chain, after the learning rate has scaled the update u_t::

        u_t ← u_t − η_t·λ·θ_{t−1}          so θ_t = θ_{t−1} + u_t

    Symbols → arguments: λ = ``weight_decay``, η_t = ``learning_rate`` (a float, or a
    schedule evaluated at the number of updates already made, 0 first), θ = ``params``.
    The decay never enters an optimizer's moments, which is the point of "decoupled".

    ``optax.chain(optlab.adam(lr), decoupled_weight_decay(wd, learning_rate=lr))`` is
    ``optlab.adamw(lr, weight_decay=wd)`` (= ``torch.optim.AdamW`` = ``optax.adamw``);
    with ``learning_rate=lambda t: lr(t) / lr(0)`` it is the paper's η_t, i.e.
    ``adamw(..., decay_scaling="schedule")``. After ``optlab.sgd(lr)`` it equals
    ``torch.optim.SGD(lr, weight_decay=wd)``: for plain SGD coupled and decoupled decay
    coincide. Unlike ``optax.add_decayed_weights``, which adds λθ to the gradient before
    the learning rate, this term is already a step.

    Args:
      weight_decay: λ ≥ 0.
      learning_rate: η_t ≥ 0, a float or a schedule; usually the optimizer's own rate.
      mask: which leaves decay; None: all.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with a ``DecoupledWeightDecayState``;
      ``update`` needs ``params``.

    Example:
      >>> import jax.numpy as jnp, optax, optlab
      >>> from optlab import decoupled_weight_decay
      >>> tx = optax.chain(optlab.sgd(0.1), decoupled_weight_decay(0.5, learning_rate=0.1))
      >>> theta = jnp.array([2.0])
      >>> updates, _ = tx.update(jnp.array([1.0]), tx.init(theta), theta)
      >>> print(updates)  # −0.1·1 − 0.1·0.5·2
      [-0.2]

    References:
      Loshchilov & Hutter, "Decoupled weight decay regularization", ICLR 2019.
    """
    owner = "decoupled_weight_decay"
    _validation.check_non_negative(owner, "weight_decay", weight_decay, "Use e.g. 0.01.")
    _validation.check_learning_rate(owner, learning_rate)

    def init_fn(params):
        del params
        return DecoupledWeightDecayState(count=init_count())

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        _require_params(owner, params)
        decay = learning_rate_at(learning_rate, state.count) * weight_decay

        def step(u, p, selected):
            return u - (scalar_like(decay, p) * p).astype(u.dtype) if selected else u

        updates = jax.tree.map(step, updates, params, resolve_mask(mask, params))
        return updates, DecoupledWeightDecayState(count=next_count(state.count))

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
