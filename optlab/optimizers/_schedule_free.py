"""Schedule-Free SGD and AdamW: interpolation and averaging instead of a schedule
(Defazio et al. 2024, "The road less scheduled").

Three sequences: z (the base optimizer's iterates), x (their weighted average, where
the model is evaluated) and y = (1 − β)·z + β·x (where the gradient is taken). The params
the trainer holds are y; the state keeps z, so x = (y − (1 − β)·z)/β is recovered from
(state, params) alone by ``schedule_free_eval_params``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from optlab import _validation
from optlab.optimizers._base import (
    ScalarOrSchedule,
    abs_sq,
    real_dtype,
    scalar_like,
    unzip,
)
from optlab.optimizers._schedule_free_core import (  # noqa: F401  (re-exported)
    ScheduleFreeState,
    _check,
    _decay_term,
    _schedule_free,
    schedule_free_eval_params,
)


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
