"""Schedule-Free SGD and AdamW: interpolation and averaging instead of a schedule
(Defazio et al. 2024, "The road less scheduled").

Three sequences: z (the base optimizer's iterates), x (their weighted average, where
the model is evaluated) and y = (1 − β)·z + β·x (where the gradient is taken). The params
the trainer holds are y; the state keeps z, so x = (y − (1 − β)·z)/β is recovered from
(state, params) alone by ``schedule_free_eval_params``.
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab import _validation
from optlab.optimizers._base import (
    ScalarOrSchedule,
    abs_sq,
    check_like,
    learning_rate_at,
    real_dtype,
    scalar_dtype,
    scalar_like,
    unzip,
)


class ScheduleFreeState(NamedTuple):
    """optax.contrib's ``ScheduleFreeState``: the same fields, in the same order.

    ``b1``: the β that formed the current y (what ``schedule_free_eval_params`` divides
    by); ``weight_sum``: Σ_{i≤t} w_i; ``step_count``: t of the next update (1 for the
    first, optax's convention); ``max_lr``: γ^max_t = max_{i≤t} γ_i; ``base_optimizer_state``:
    ``optax.EmptyState()`` for SGD, ``optax.ScaleByRmsState(nu=v)`` for AdamW; ``z``.
    """

    b1: jax.Array
    weight_sum: jax.Array
    step_count: jax.Array
    max_lr: jax.Array
    base_optimizer_state: Any
    z: Any

    def evaluation_point(self, params: Any) -> Any:
        """x = (y − (1 − β)·z)/β for the held params y: where to evaluate and export."""
        return _eval_point(self, params)


def _is_schedule_free_state(x: Any) -> bool:
    return isinstance(x, (ScheduleFreeState, optax.contrib.ScheduleFreeState))


def schedule_free_eval_params(state: Any, params: Any) -> Any:
    """The evaluation point x = (y − (1 − β)·z)/β of a schedule-free optimizer.

    ``params`` are the params the trainer holds (y); ``state`` is the optimizer state, or
    any state tree that holds exactly one ``ScheduleFreeState`` (ours or optax.contrib's):
    inside ``optax.chain``, ``optax.with_extra_args_support``, ``optax.inject_hyperparams``
    and the like it is found by searching the tree.

    Raises:
      ValueError: when ``state`` holds no schedule-free state, or more than one.

    Example:
      >>> import jax.numpy as jnp, numpy as np, optax
      >>> from optlab.optimizers._schedule_free import (
      ...     schedule_free_eval_params, schedule_free_sgd)
      >>> tx = optax.chain(optax.clip_by_global_norm(10.0), schedule_free_sgd(0.5, b1=0.5))
      >>> y = jnp.array([1.0])
      >>> state = tx.init(y)
      >>> updates, state = tx.update(jnp.array([1.0]), state, y)  # z = 0.5, c = 1: x = 0.5
      >>> y = optax.apply_updates(y, updates)
      >>> print(np.asarray(y), np.asarray(schedule_free_eval_params(state, y)))
      [0.5] [0.5]
    """
    found = [
        s
        for s in jax.tree.leaves(state, is_leaf=_is_schedule_free_state)
        if _is_schedule_free_state(s)
    ]
    if len(found) != 1:
        what = "no ScheduleFreeState" if not found else f"{len(found)} ScheduleFreeStates"
        raise ValueError(
            f"schedule_free_eval_params: `state` holds {what}; pass the state of "
            "schedule_free_sgd / schedule_free_adamw (or of a chain holding exactly one)."
        )
    return _eval_point(found[0], params)


def _eval_point(sf: Any, params: Any) -> Any:
    def leaf(y, z):
        dtype = jnp.result_type(y, z)
        b1 = scalar_like(sf.b1, jnp.zeros((), dtype).real)
        x = (y.astype(dtype) - (1 - b1).astype(dtype) * z.astype(dtype)) / b1.astype(dtype)
        return x.astype(y.dtype)

    return jax.tree.map(leaf, params, sf.z)


def _check(owner, learning_rate, warmup_steps, b1, weight_lr_power, r, like, extra=()):
    check_like(owner, like, ("optax",))
    _validation.check_learning_rate(owner, learning_rate)
    if warmup_steps is not None and _validation.is_concrete_number(warmup_steps):
        if not (float(warmup_steps).is_integer() and warmup_steps >= 0):
            _validation.fail(
                owner, "warmup_steps", warmup_steps, "None or an integer >= 0", "Use e.g. 100."
            )
    if _validation.is_concrete_number(b1) and not 0.0 < b1 <= 1.0:
        _validation.fail(
            owner,
            "b1",
            b1,
            "in (0, 1]",
            "x = (y − (1 − β)·z)/β needs β > 0; Defazio et al. use 0.9.",
        )
    _validation.check_non_negative(owner, "weight_lr_power", weight_lr_power, "Use 2.0.")
    _validation.check_non_negative(owner, "r", r, "Use 0.0 (the authors' default).")
    if like == "optax":
        if _validation.is_concrete_number(r) and r != 0:  # (a traced r is unused there)
            raise ValueError(
                f"{owner}: `r` must be 0 with like='optax' (optax.contrib has no polynomial "
                f"weighting t^r), got {r!r}."
            )
        if warmup_steps is not None and callable(learning_rate):
            raise ValueError(
                f"{owner}: like='optax' warms up to a float peak (optax's "
                "warmup_constant_schedule(0, learning_rate, warmup_steps)); pass a float "
                "`learning_rate` or warmup_steps=None."
            )
    for name, value, check in extra:
        check(owner, name, value)


def _warmup_factor(warmup_steps, t):
    """min(1, t/T_warmup); 1 without warmup (None or 0). ``t``: a float array."""
    if warmup_steps is None:
        return 1.0
    w = jnp.asarray(warmup_steps, t.dtype)
    return jnp.where(w > 0, jnp.minimum(1.0, t / jnp.where(w > 0, w, 1.0)), 1.0)


def _optax_rate(learning_rate, warmup_steps, n, dtype):
    """optax's rate at count n: ``warmup_constant_schedule(0, α, W)(n)`` (optax evaluates
    it in float32, even with 64-bit floats on: the same function is called here), or the
    schedule α(n)."""
    if warmup_steps is None:
        return learning_rate_at(learning_rate, n)
    if _validation.is_concrete_number(warmup_steps):
        return optax.schedules.warmup_constant_schedule(0.0, learning_rate, int(warmup_steps))(n)
    w = jnp.asarray(warmup_steps, dtype)  # traced (inject_hyperparams): the same formula
    frac = 1 - jnp.clip(n.astype(dtype), 0, w) / jnp.where(w > 0, w, 1)
    return jnp.where(w > 0, (0 - learning_rate) * frac + learning_rate, learning_rate)


def _schedule_free(
    owner, learning_rate, warmup_steps, b1, weight_lr_power, state_dtype, r, like, base
):
    """The schedule-free wrapper around a z step; ``base`` = (init, direction, bias_factor).

    ``direction(g, y, base_state, t) -> (d tree, new base state)``: z_{t+1} = z_t − γ_t·d.
    ``bias_factor(t)`` multiplies γ_t (√(1 − β2^t) in the paper's AdamW, else 1).
    """
    base_init, direction, bias_factor = base

    def init_fn(params):
        dtype = scalar_dtype(params)
        z = params if state_dtype is None else optax.tree.cast(params, state_dtype)
        z = jax.tree.map(lambda p: jnp.array(p, copy=True), z)
        return ScheduleFreeState(
            b1=jnp.asarray(b1, dtype),
            weight_sum=jnp.zeros([], dtype),
            step_count=jnp.ones([], jnp.int32),
            max_lr=jnp.zeros([], dtype),
            base_optimizer_state=base_init(params),
            z=z,
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        if params is None:
            raise ValueError(f"{owner}: `update` needs `params` (the point y the gradient is at).")
        dtype = state.max_lr.dtype
        t = state.step_count  # t of this update, from 1
        tf = t.astype(dtype)
        if like == "optax":
            gamma_z = _optax_rate(learning_rate, warmup_steps, t - 1, dtype)  # the base's own count
            gamma_w = jnp.asarray(_optax_rate(learning_rate, warmup_steps, t, dtype), dtype)
            b_old = b_new = jnp.asarray(b1, dtype)  # optax's update reads the closure's b1
        else:
            gamma_z = (
                learning_rate_at(learning_rate, t - 1) * _warmup_factor(warmup_steps, tf)
            ) * bias_factor(tf)
            gamma_w = jnp.asarray(gamma_z, dtype)
            b_old, b_new = state.b1, jnp.asarray(b1, dtype)
        max_lr = jnp.maximum(state.max_lr, gamma_w)
        weight = max_lr**weight_lr_power
        if like != "optax" and not (_validation.is_concrete_number(r) and r == 0):
            weight = tf**r * weight
        weight_sum = state.weight_sum + weight
        if like == "optax":  # optax.contrib's guard, term by term
            c = jnp.where(
                jnp.isnan(weight) | jnp.isnan(weight_sum),
                jnp.full(weight.shape, jnp.nan, dtype),
                jnp.nan_to_num(weight / weight_sum, nan=0.0, posinf=jnp.inf),
            )
        else:  # c_{t+1} = w_t / Σ w_i, and 0 while every weight is 0 (the authors' code)
            c = jnp.where(weight_sum > 0, weight / jnp.where(weight_sum > 0, weight_sum, 1), 0.0)
        d, base_state = direction(updates, params, state.base_optimizer_state, tf)

        def leaf(g, y, z, d):
            f = jnp.result_type(y, z)
            real = jnp.zeros((), f).real
            one = scalar_like(1.0, real)
            z_new = (z.astype(f) - scalar_like(gamma_z, real).astype(f) * d.astype(f)).astype(
                z.dtype
            )
            bo, bn, ck = (scalar_like(v, real).astype(f) for v in (b_old, b_new, c))
            x = (y.astype(f) - (one.astype(f) - bo) * z.astype(f)) / bo
            x = (one.astype(f) - ck) * x + ck * z_new.astype(f)
            y_new = bn * x + (one.astype(f) - bn) * z_new.astype(f)
            return (y_new - y.astype(f)).astype(g.dtype), z_new

        out = jax.tree.map(leaf, updates, params, state.z, d)
        new_updates, z = unzip(updates, out, 2)
        new_state = ScheduleFreeState(
            b1=b_new if like != "optax" else state.b1,
            weight_sum=weight_sum,
            step_count=optax.safe_increment(state.step_count),
            max_lr=max_lr,
            base_optimizer_state=base_state,
            z=z,
        )
        return new_updates, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _decay_term(weight_decay):
    """λ·y added to the direction, or nothing for None/0."""
    if weight_decay is None or (
        isinstance(weight_decay, numbers.Real)
        and not isinstance(weight_decay, bool)
        and weight_decay == 0
    ):
        return None
    return weight_decay


def schedule_free_sgd(
    learning_rate: ScalarOrSchedule,
    warmup_steps: int | None = None,
    b1: float = 0.9,
    weight_decay: float | None = None,
    weight_lr_power: float = 2.0,
    state_dtype: Any = None,
    *,
    r: float = 0.0,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Schedule-Free SGD: Defazio et al.'s SGD form with their warmup and averaging weights.

    ::

        z_1 = x_1 = y_1 = θ_0,  W_0 = 0,  γ^max_0 = 0
        for t = 1, 2, …
            g_t ← ∇f(y_t) + λ·y_t                         (y_t: the params held)
            γ_t ← α(t−1)·min(1, t/T_warmup)
            z_{t+1} ← z_t − γ_t·g_t
            γ^max_t ← max(γ^max_{t−1}, γ_t)
            w_t ← t^r·(γ^max_t)^p,   W_t ← W_{t−1} + w_t,   c_{t+1} ← w_t/W_t
            x_{t+1} ← (1 − c_{t+1})·x_t + c_{t+1}·z_{t+1}
            y_{t+1} ← (1 − β)·z_{t+1} + β·x_{t+1}

    The paper's equations (1)–(3) with c_{t+1} = 1/(t+1) are r = 0, p = 0; its warmup rule
    c_{t+1} = γ_t²/Σ_{i≤t} γ_i² is p = 2 for a non-decreasing γ_t (then γ^max_t = γ_t);
    γ^max and t^r are the authors' code (``SGDScheduleFree``, ``lr_max``, ``r``). x never
    needs storing: the update recovers x_t = (y_t − (1 − β)·z_t)/β from the params and z,
    and ``schedule_free_eval_params(state, params)`` returns x, the point to evaluate.

    Symbols → arguments: α = ``learning_rate`` (a float, or a schedule of the updates
    made: update t reads α(t − 1)), T_warmup = ``warmup_steps`` (None or 0: none), β =
    ``b1``, λ = ``weight_decay`` (None: 0; an L2 term at y, as the authors' SGD), p =
    ``weight_lr_power``, r = ``r`` (keyword-only, the authors'), the z dtype =
    ``state_dtype``. Defaults are optax's and the authors': β = 0.9, p = 2, r = 0, no
    warmup. ``learning_rate`` has no default here (optax: 1.0; the authors: 1.0, "10x-50x
    larger than classical rates"). A β changed between updates (inject_hyperparams)
    recovers x_t with the β that formed y_t and forms y_{t+1} with the new one.

    Versus the libraries: ``optax.contrib.schedule_free_sgd`` (same arguments and state
    fields; ``like="optax"``) reads its rates one step apart: the z step uses the SGD's
    own count, γ^z_t = α_o(t − 1), while the weight uses the wrapper's count,
    γ^w_t = α_o(t), with α_o(n) = α·min(n/T_warmup, 1) (``warmup_constant_schedule(0, α,
    T_warmup)``) or the schedule α(n). So with warmup its first z step is 0·g_1 and
    z_{t+1} = z_t − α·(t−1)/T_warmup·g_t, w_t = (α·t/T_warmup)^p during warmup, where the
    paper and the authors use γ_t = α·t/T_warmup for both; with a schedule the weight
    reads α(t) for the step that moves by α(t − 1). With a constant α and no warmup the
    forms agree. optax has no r (``like="optax"`` requires r = 0), keeps the β of
    ``init`` in the state, and sets c = NaN when w_t or W_t is NaN, else
    nan_to_num(w_t/W_t) (0 for 0/0, as the paper form). torch.optim has no schedule-free
    optimizer: ``like="torch"`` raises.

    Args:
      learning_rate: α ≥ 0, or a schedule.
      warmup_steps: T_warmup, an integer ≥ 0, or None.
      b1: β in (0, 1] (1: the gradient is taken at x itself).
      weight_decay: λ ≥ 0 or None.
      weight_lr_power: p ≥ 0.
      state_dtype: the dtype of z (None: the params').
      r: the polynomial weighting power r ≥ 0 (must be 0 with ``like="optax"``).
      like: None (the paper) or ``"optax"``.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose state is a ``ScheduleFreeState``.

    Example:
      >>> import jax.numpy as jnp, numpy as np, optax
      >>> from optlab.optimizers._schedule_free import (
      ...     schedule_free_eval_params, schedule_free_sgd)
      >>> tx = schedule_free_sgd(0.5, b1=0.5)
      >>> y = jnp.array([2.0])
      >>> state = tx.init(y)
      >>> for _ in range(2):  # f = y²/2: z_2 = 2 − 0.5·2 = 1, x_2 = 1, y_2 = 1; …
      ...     updates, state = tx.update(y, state, y)
      ...     y = optax.apply_updates(y, updates)
      >>> print(np.asarray(y), np.asarray(schedule_free_eval_params(state, y)))
      [0.625] [0.75]

    References:
      Defazio, Yang, Mehta, Mishchenko, Khaled, Cutkosky, "The Road Less Scheduled",
      NeurIPS 2024 (arXiv:2405.15682); github.com/facebookresearch/schedule_free.
    """
    owner = "schedule_free_sgd"
    _check(
        owner,
        learning_rate,
        warmup_steps,
        b1,
        weight_lr_power,
        r,
        like,
        [("weight_decay", weight_decay, _check_optional_non_negative)],
    )
    decay = _decay_term(weight_decay)

    def direction(grads, params, base_state, t):
        del t
        if decay is None:
            return grads, base_state
        return jax.tree.map(lambda g, y: g + scalar_like(decay, y) * y, grads, params), base_state

    base = (lambda params: optax.EmptyState(), direction, lambda t: 1.0)
    return _schedule_free(
        owner, learning_rate, warmup_steps, b1, weight_lr_power, state_dtype, r, like, base
    )


def _check_optional_non_negative(owner, name, value):
    if value is not None:
        _validation.check_non_negative(owner, name, value, "Use e.g. 1e-4.")


def schedule_free_adamw(
    learning_rate: ScalarOrSchedule,
    warmup_steps: int | None = None,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    weight_lr_power: float = 2.0,
    state_dtype: Any = None,
    *,
    r: float = 0.0,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Schedule-Free AdamW: Defazio et al.'s Algorithm 1.

    ::

        z_1 = x_1 = y_1 = θ_0,  v_0 = 0,  W_0 = 0,  γ^max_0 = 0
        for t = 1, 2, …
            g_t ← ∇f(y_t)                                  (y_t: the params held)
            v_t ← β2·v_{t−1} + (1 − β2)·g_t²
            γ_t ← α(t−1)·√(1 − β2^t)·min(1, t/T_warmup)   (warmup and bias correction)
            z_{t+1} ← z_t − γ_t·g_t/(√v_t + ε) − γ_t·λ·y_t
            γ^max_t ← max(γ^max_{t−1}, γ_t)
            w_t ← t^r·(γ^max_t)^p,   W_t ← W_{t−1} + w_t,   c_{t+1} ← w_t/W_t
            x_{t+1} ← (1 − c_{t+1})·x_t + c_{t+1}·z_{t+1}
            y_{t+1} ← (1 − β1)·z_{t+1} + β1·x_{t+1}

    The box's c_{t+1} = γ_t²/Σ_{i≤t} γ_i² is p = 2, r = 0 for its non-decreasing γ_t
    (γ^max_t = γ_t); γ^max and t^r are the authors' code (``AdamWScheduleFreePaper``,
    which this form reproduces). The weight decay is taken at y. x is recovered as
    (y − (1 − β1)·z)/β1; ``schedule_free_eval_params(state, params)`` returns it.

    Symbols → arguments: α = ``learning_rate`` (update t reads α(t − 1)), T_warmup =
    ``warmup_steps`` (None or 0: none), β1 = ``b1`` (the interpolation: there is no
    momentum buffer), β2 = ``b2``, ε = ``eps``, λ = ``weight_decay``, p =
    ``weight_lr_power``, r = ``r`` (keyword-only), the z dtype = ``state_dtype``. The
    defaults are optax's and the authors': β1 = 0.9, β2 = 0.999, ε = 1e-8, λ = 0, p = 2,
    r = 0; ``learning_rate`` is required (optax and the authors: 0.0025).

    Versus the libraries: ``optax.contrib.schedule_free_adamw`` (``like="optax"``) is
    the authors' later ``AdamWScheduleFree`` (v1.3), with optax's step index:

    * the second moment is bias-corrected inside the root and ε is not scaled:
      z_{t+1} = z_t − γ^z_t·(g_t/(√(v_t/(1 − β2^t)) + ε) + λ·y_t), where the paper's
      γ_t·g_t/(√v_t + ε) is α_t·g_t/(√(v_t/(1 − β2^t)) + ε/√(1 − β2^t));
    * the weights use the rate without √(1 − β2^t): w_t = (max_{i≤t} γ^w_i)^p;
    * the rates are read one step apart (as in ``schedule_free_sgd``): γ^z_t = α_o(t − 1)
      for the z step, γ^w_t = α_o(t) for the weight, α_o(n) = α·min(n/T_warmup, 1) or the
      schedule α(n); so with warmup the first z step is 0 and the weights lead the steps;
    * no r; the β1 of ``init`` stays in the state; c = NaN if w_t or W_t is NaN.

    torch.optim has no schedule-free optimizer: ``like="torch"`` raises.

    Args:
      learning_rate: α ≥ 0, or a schedule.
      warmup_steps: T_warmup, an integer ≥ 0, or None.
      b1: β1 in (0, 1].
      b2: β2 in [0, 1).
      eps: ε ≥ 0.
      weight_decay: λ ≥ 0.
      weight_lr_power: p ≥ 0.
      state_dtype: the dtype of z (None: the params').
      r: the polynomial weighting power r ≥ 0 (must be 0 with ``like="optax"``).
      like: None (the paper) or ``"optax"``.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose state is a ``ScheduleFreeState``
      (``base_optimizer_state`` = ``optax.ScaleByRmsState(nu=v)``).

    Example:
      >>> import jax.numpy as jnp, numpy as np
      >>> from optlab.optimizers._schedule_free import schedule_free_adamw
      >>> tx = schedule_free_adamw(0.1, eps=0.0)
      >>> y = jnp.array([1.0])
      >>> updates, state = tx.update(jnp.array([3.0]), tx.init(y), y)
      >>> # γ_1 = 0.1·√0.001, z_2 = 1 − γ_1·3/√(0.001·9) = 0.9, c_2 = 1: y_2 = 0.9
      >>> print(np.round(np.asarray(updates, float), 4))
      [-0.1]

    References:
      Defazio, Yang, Mehta, Mishchenko, Khaled, Cutkosky, "The Road Less Scheduled",
      NeurIPS 2024 (arXiv:2405.15682), Algorithm 1; github.com/facebookresearch/schedule_free.
    """
    owner = "schedule_free_adamw"
    _check(
        owner,
        learning_rate,
        warmup_steps,
        b1,
        weight_lr_power,
        r,
        like,
        [
            ("b2", b2, lambda o, n, v: _validation.check_unit_interval(o, n, v, "Use 0.999.")),
            ("eps", eps, lambda o, n, v: _validation.check_non_negative(o, n, v, "Use 1e-8.")),
            ("weight_decay", weight_decay, _check_optional_non_negative),
        ],
    )
    decay = _decay_term(weight_decay)

    def base_init(params):
        return optax.ScaleByRmsState(
            nu=jax.tree.map(lambda p: jnp.zeros(p.shape, real_dtype(p.dtype)), params)
        )

    def direction(grads, params, base_state, t):
        def leaf(g, y, v):
            v = scalar_like(b2, v) * v + scalar_like(1.0 - b2, v) * abs_sq(g).astype(v.dtype)
            if like == "optax":
                v_hat = v / scalar_like(1.0 - b2**t, v)
                denom = jnp.sqrt(v_hat) + scalar_like(eps, v)
            else:
                denom = jnp.sqrt(v) + scalar_like(eps, v)
            d = g / denom.astype(g.dtype)
            if decay is not None:
                d = d + scalar_like(decay, y) * y
            return d, v

        out = jax.tree.map(leaf, grads, params, base_state.nu)
        d, nu = unzip(grads, out, 2)
        return d, optax.ScaleByRmsState(nu=nu)

    def bias_factor(t):
        return jnp.sqrt(1.0 - b2**t)

    base = (base_init, direction, bias_factor)
    return _schedule_free(
        owner, learning_rate, warmup_steps, b1, weight_lr_power, state_dtype, r, like, base
    )
