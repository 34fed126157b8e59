"""Wrappers around any optimizer: Lookahead, an EMA of the weights, and spike skipping
(``optlab.optimizers._skip_spikes``, re-exported here).

Each wraps an ``optax.GradientTransformation`` (extra arguments such as ``value=`` pass
through to it) and returns a plain ``optax.GradientTransformationExtraArgs`` on the params
the trainer holds, so it composes with ``optax.chain`` and the trainer. The point to
evaluate and checkpoint (Lookahead's slow weights, the averaged weights) lives in the
state; ``evaluation_point(opt_state, params)`` finds it anywhere in a state tree.
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab import _validation
from optlab.optimizers._base import check_like, init_count, next_count, scalar_like
from optlab.optimizers._skip_spikes import (  # noqa: F401  (re-exported)
    SkipSpikesState,
    skip_spikes,
)
from optlab.optimizers._wrapper_base import (
    _apply,
    _copy,
    _debiased_weight,
    _inner,
    _need_params,
    _where,
)


def _has_evaluation_point(x: Any) -> bool:
    return hasattr(x, "evaluation_point") and callable(x.evaluation_point)


def _merge_point(params: Any, point: Any) -> Any:
    """``point``'s leaves in ``params``' dtypes, keeping ``params``' leaf where ``point``
    holds an ``optax.MaskedNode`` (the leaves an ``optax.masked`` wrapper left out)."""

    def leaf(p, q):
        if isinstance(q, optax.MaskedNode) or q is None:
            return p
        return jnp.asarray(q).astype(jnp.asarray(p).dtype)

    return jax.tree.map(leaf, params, point)


def _state_nodes(tree: Any) -> list[Any]:
    """Every node with an ``evaluation_point`` method, outermost first (pre-order)."""
    found = []
    for node in jax.tree.leaves(tree, is_leaf=_has_evaluation_point):
        if _has_evaluation_point(node):
            found.append(node)
            # The node's own fields: search them for nested states (a wrapper's inner state).
            if isinstance(node, tuple):
                children = list(node)
            else:
                children = jax.tree_util.tree_flatten(
                    node, is_leaf=lambda x, node=node: x is not node
                )[0]
            for child in children:
                found.extend(_state_nodes(child))
    return found


def evaluation_point(opt_state: Any, params: Any) -> Any:
    """The point to evaluate and checkpoint, given the state and the params the trainer holds.

    Every state node in ``opt_state`` with an ``evaluation_point(params)`` method (this
    module's ``LookaheadState`` (the slow weights φ) and ``EmaParamsState`` (the average),
    a schedule-free state with that method) is found by searching the tree, also inside
    ``optax.chain``, ``optax.inject_hyperparams``, ``optax.MultiSteps`` and the wrappers'
    own inner states. They are applied innermost first: ``p ← inner.evaluation_point(p)``,
    then the next one out, so the outermost wrapper has the last word (for
    ``ema_params(lookahead(...))``: the average of the fast weights the trainer holds).
    With none, ``params`` is returned unchanged. Works under ``jax.jit``.

    Example:
      >>> import jax.numpy as jnp, numpy as np, optax
      >>> from optlab.optimizers._wrappers import ema_params, evaluation_point
      >>> tx = optax.chain(optax.clip(1.0), ema_params(optax.sgd(1.0), decay=0.5))
      >>> params = jnp.array([0.0])
      >>> state = tx.init(params)
      >>> for g in (-1.0, -1.0):  # θ_1 = 1, θ_2 = 2: debiased (0.5·1 + 2)/1.5
      ...     updates, state = tx.update(jnp.array([g]), state, params)
      ...     params = optax.apply_updates(params, updates)
      >>> print(np.asarray(params), np.asarray(evaluation_point(state, params)))
      [2.] [1.6666667]
    """
    point = params
    for node in reversed(_state_nodes(opt_state)):
        point = node.evaluation_point(point)
    return point


class LookaheadState(NamedTuple):
    """``fast_state``: the inner optimizer's state; ``slow``: φ, the slow weights (None for
    ``like="optax"``, whose ``optax.LookaheadParams`` carry them); ``count``: updates made.

    optax's ``LookaheadState`` is ``(fast_state, steps_since_sync)``; here the slow weights
    move into the state (the params stay the fast weights θ) and ``count`` counts all
    updates (``steps_since_sync = count % sync_period``).
    """

    fast_state: Any
    slow: Any
    count: jax.Array

    def evaluation_point(self, params: Any) -> Any:
        """φ, the slow weights: where the paper evaluates (Algorithm 1 returns φ)."""
        if self.slow is None:  # like="optax": the params are LookaheadParams(fast, slow)
            return params.slow if isinstance(params, optax.LookaheadParams) else params
        return _merge_point(params, self.slow)


def _check_lookahead(sync_period, slow_step_size, like) -> None:
    check_like("lookahead", like, ("optax",))
    if isinstance(sync_period, bool) or (
        isinstance(sync_period, numbers.Number)
        and not (isinstance(sync_period, numbers.Integral) and sync_period >= 1)
    ):
        _validation.fail(
            "lookahead",
            "sync_period",
            sync_period,
            "an integer >= 1",
            "The paper uses k = 5 or 10 fast steps per slow step.",
        )
    if _validation.is_concrete_number(slow_step_size) and not (0.0 < slow_step_size <= 1.0):
        _validation.fail(
            "lookahead",
            "slow_step_size",
            slow_step_size,
            "in (0, 1]",
            "The paper uses α = 0.5 (α = 1 is the inner optimizer alone).",
        )


def lookahead(
    fast_optimizer: optax.GradientTransformation,
    sync_period: int = 6,
    slow_step_size: float = 0.5,
    reset_state: bool = False,
    *,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Lookahead: Zhang, Lucas, Hinton & Ba's Algorithm 1 ("k steps forward, 1 step back").

    ::

        φ_0 ← θ_0
        for t = 1, 2, …
            θ_{t,0} ← φ_{t−1}                              (synchronize)
            for i = 1 … k:  θ_{t,i} ← θ_{t,i−1} + A(L, θ_{t,i−1}, d)
            φ_t ← φ_{t−1} + α·(θ_{t,k} − φ_{t−1})          (outer update)
        return φ

    Symbols → arguments: A = ``fast_optimizer`` (any optax transformation; its updates are
    added to the fast weights θ), k = ``sync_period``, α = ``slow_step_size``. The params
    the trainer holds are the fast weights θ; the state holds φ and the update count n. Each
    update returns A's update u, except every k-th (n ≡ 0 mod k after it), which returns
    φ_new − θ with φ_new = φ + α·(θ + u − φ), so that θ ← φ_new (the synchronization). The
    gradients are taken at θ, as in the paper; evaluate and checkpoint at φ
    (``state.evaluation_point(params)`` or ``evaluation_point(state, params)``).
    ``reset_state`` re-initializes A's state after each synchronization (at φ_new);
    Algorithm 1 leaves A's state alone (the default). optax gives no defaults; k = 6,
    α = 0.5 are TensorFlow Addons' (the paper's experiments use α ∈ {0.5, 0.8},
    k ∈ {5, 10}).

    Versus the libraries: ``optax.lookahead`` computes the same θ and φ, but keeps both in
    the params, ``optax.LookaheadParams(fast, slow)``, and its update returns updates for
    both: slow ``α·s·Δ`` and fast ``u − s·(1 − α)·Δ`` with Δ = θ + u − φ and s = 1 at a
    synchronization, else 0; its ``reset_state`` re-initializes at the fast params before
    the update, by the arithmetic blend ``(1 − s)·state + s·init``. ``like="optax"``
    reproduces that: init and update take ``LookaheadParams`` (the gradients are of the fast
    params alone) and return ``LookaheadParams`` updates; ``state.slow`` is then None. The
    default keeps the ordinary params, so ``optax.chain``, checkpoints and the trainer see no
    change of structure. torch.optim has no Lookahead: ``like="torch"`` raises.

    Args:
      fast_optimizer: A, the inner optimizer (an ``optax.GradientTransformation``).
      sync_period: k ≥ 1, fast steps per slow step.
      slow_step_size: α in (0, 1]; α = 1 is A alone.
      reset_state: re-initialize A's state at each synchronization.
      like: None (the paper, on plain params) or ``"optax"`` (on ``optax.LookaheadParams``).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose ``update`` needs ``params``.

    Example:
      >>> import jax.numpy as jnp, numpy as np, optax
      >>> from optlab.optimizers._wrappers import lookahead
      >>> tx = lookahead(optax.sgd(1.0), sync_period=2, slow_step_size=0.5)
      >>> theta = jnp.array([0.0])
      >>> state = tx.init(theta)
      >>> for g in (-1.0, -1.0):  # θ: 0 → 1 → 2, then θ = φ = 0 + 0.5·(2 − 0)
      ...     updates, state = tx.update(jnp.array([g]), state, theta)
      ...     theta = optax.apply_updates(theta, updates)
      >>> print(np.asarray(theta), np.asarray(state.evaluation_point(theta)))
      [1.] [1.]

    References:
      Zhang, Lucas, Hinton & Ba, "Lookahead optimizer: k steps forward, 1 step back",
      NeurIPS 2019 (arXiv:1907.08610).
    """
    _check_lookahead(sync_period, slow_step_size, like)
    inner = _inner(fast_optimizer, "lookahead", "fast_optimizer")
    if like == "optax":
        return _optax_lookahead(inner, sync_period, slow_step_size, reset_state)

    def init_fn(params):
        return LookaheadState(inner.init(params), _copy(params), init_count())

    def update_fn(updates, state, params=None, **extra_args):
        _need_params("lookahead", params)
        fast_updates, fast_state = inner.update(updates, state.fast_state, params, **extra_args)
        count = next_count(state.count)
        sync = count % sync_period == 0

        def leaf(u, theta, phi):
            theta_k = _apply(theta, u)
            phi_new = phi + scalar_like(slow_step_size, phi) * (theta_k.astype(phi.dtype) - phi)
            out = jnp.where(sync, (phi_new.astype(theta.dtype) - theta).astype(u.dtype), u)
            return out, jnp.where(sync, phi_new, phi)

        pairs = jax.tree.map(leaf, fast_updates, params, state.slow)
        treedef = jax.tree.structure(fast_updates)
        leaves = treedef.flatten_up_to(pairs)
        out = treedef.unflatten([pair[0] for pair in leaves])
        slow = treedef.unflatten([pair[1] for pair in leaves])
        if reset_state:
            fast_state = _where(sync, inner.init(optax.apply_updates(params, out)), fast_state)
        return out, LookaheadState(fast_state, slow, count)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _optax_lookahead(inner, sync_period, slow_step_size, reset_state):
    """optax.lookahead's update on ``optax.LookaheadParams``, with the extra arguments."""

    def fast_of(params):
        return params.fast if hasattr(params, "fast") else params

    def init_fn(params):
        return LookaheadState(inner.init(fast_of(params)), None, init_count())

    def update_fn(updates, state, params=None, **extra_args):
        if not (hasattr(params, "fast") and hasattr(params, "slow")):
            raise ValueError(
                "lookahead(like='optax'): `update` needs `params` as "
                "optax.LookaheadParams(fast, slow), got "
                f"{type(params).__name__}. Use like=None for plain params."
            )
        fast_updates, fast_state = inner.update(
            updates, state.fast_state, params.fast, **extra_args
        )
        sync_next = state.count % sync_period == sync_period - 1

        def slow_leaf(f, u, s):
            diff = f + u - s
            return scalar_like(slow_step_size, diff) * scalar_like(sync_next, diff) * diff

        def fast_leaf(f, u, s):
            diff = f + u - s
            step = scalar_like(sync_next, diff) * scalar_like(1 - slow_step_size, diff) * diff
            return u - step

        slow_updates = jax.tree.map(slow_leaf, params.fast, fast_updates, params.slow)
        fast_out = jax.tree.map(fast_leaf, params.fast, fast_updates, params.slow)
        if reset_state:
            initial = inner.init(params.fast)
            fast_state = jax.tree.map(
                lambda cur, ini: ((1 - sync_next) * cur + sync_next * ini).astype(cur.dtype),
                fast_state,
                initial,
            )
        new_state = LookaheadState(fast_state, None, next_count(state.count))
        return optax.LookaheadParams(fast=fast_out, slow=slow_updates), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


# ---------------------------------------------------------------------------- ema_params


class EmaParamsState(NamedTuple):
    """``inner_state``: the wrapped optimizer's state; ``ema``: the averaged weights, the
    point to evaluate (already bias-corrected when ``debias``); ``count``: updates made."""

    inner_state: Any
    ema: Any
    count: jax.Array

    def evaluation_point(self, params: Any) -> Any:
        """The averaged weights (in the params' dtypes)."""
        return _merge_point(params, self.ema)


def ema_params(
    optimizer: optax.GradientTransformation,
    decay: float = 0.999,
    *,
    debias: bool = True,
    ema_dtype: Any = None,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""``optimizer`` plus an exponential moving average of its iterates (Polyak averaging).

    ::

        θ_t ← θ_{t−1} + u_t                       (u_t: the wrapped optimizer's update)
        ē_t ← β·ē_{t−1} + (1 − β)·θ_t,   ē_0 = 0
        evaluate at  ē_t/(1 − β^t)                (debias=True)

    Symbols → arguments: β = ``decay``. Polyak & Juditsky average the iterates uniformly;
    large-model trainers keep this exponential average ("EMA of weights") and evaluate and
    checkpoint it while training continues from θ. The update itself returns u_t unchanged;
    the average lives in the state (``state.evaluation_point(params)`` or
    ``evaluation_point(state, params)``; before the first update it is θ_0). With
    ``debias=True`` the state keeps the corrected average a_t = ē_t/(1 − β^t) directly,
    through the equivalent recurrence a_t = a_{t−1} + w_t·(θ_t − a_{t−1}),
    w_t = (1 − β)/(1 − β^t) (w_1 = 1: a_1 = θ_1). With ``debias=False`` the average starts at
    the initial weights: ē_0 = θ_0, ē_t = β·ē_{t−1} + (1 − β)·θ_t (timm's ``ModelEma``).
    ``ema_dtype`` stores the average in another dtype: with bfloat16 params keep it in
    ``jnp.float32``, since bfloat16's 8-bit mantissa rounds away steps (1 − β)·(θ − ē)
    smaller than 2⁻⁸·|ē|.

    Versus the libraries: ``optax.ema(decay, debias)`` is an EMA of the *updates* (the
    gradients, as momentum), not of the weights; it changes the step, this leaves it
    alone. torch's ``AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))``,
    with ``update_parameters(model)`` after each step, copies the first weights it sees and
    then lerps: ē_1 = θ_1, ē_t = ē_{t−1} + (1 − β)·(θ_t − ē_{t−1}) — neither corrected nor
    started at θ_0; ``like="torch"`` reproduces it (``debias`` is then ignored). optax has
    no EMA of the weights: ``like="optax"`` raises.

    Args:
      optimizer: the wrapped optimizer (an ``optax.GradientTransformation``).
      decay: β in [0, 1).
      debias: divide by 1 − β^t (otherwise start the average at θ_0).
      ema_dtype: the dtype of the average (None: the params').
      like: None or ``"torch"`` (``torch.optim.swa_utils.AveragedModel``'s EMA).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose ``update`` needs ``params``.

    Example:
      >>> import jax.numpy as jnp, numpy as np, optax
      >>> from optlab.optimizers._wrappers import ema_params
      >>> tx = ema_params(optax.sgd(1.0), decay=0.5)
      >>> theta = jnp.array([0.0])
      >>> state = tx.init(theta)
      >>> for g in (-1.0, -1.0, -1.0):  # θ = 1, 2, 3: (0.25·1 + 0.5·2 + 3)/1.75
      ...     updates, state = tx.update(jnp.array([g]), state, theta)
      ...     theta = optax.apply_updates(theta, updates)
      >>> print(np.asarray(state.evaluation_point(theta)))
      [2.4285715]

    References:
      Polyak & Juditsky, "Acceleration of stochastic approximation by averaging", SIAM J.
      Control Optim. 30(4), 1992; Izmailov et al., "Averaging weights leads to wider optima
      and better generalization", UAI 2018 (torch's ``swa_utils``).
    """
    check_like("ema_params", like, ("torch",))
    _validation.check_unit_interval("ema_params", "decay", decay, "Typical values: 0.999, 0.9999.")
    inner = _inner(optimizer, "ema_params", "optimizer")

    def init_fn(params):
        return EmaParamsState(inner.init(params), _copy(params, ema_dtype), init_count())

    def update_fn(updates, state, params=None, **extra_args):
        _need_params("ema_params", params)
        updates, inner_state = inner.update(updates, state.inner_state, params, **extra_args)
        count = next_count(state.count)
        one_minus = 1 - jnp.asarray(decay, jnp.result_type(float))
        if like == "torch":
            weight = jnp.where(state.count == 0, jnp.ones_like(one_minus), one_minus)
        elif debias:
            weight = _debiased_weight(decay, count, one_minus.dtype)
        else:
            weight = one_minus

        def average(e, p, u):
            theta = _apply(p, u).astype(e.dtype)
            return e + scalar_like(weight, e) * (theta - e)

        ema = jax.tree.map(average, state.ema, params, updates)
        return updates, EmaParamsState(inner_state, ema, count)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


# --------------------------------------------------------------------------- skip_spikes
