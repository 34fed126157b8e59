"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab import _validation
from optlab.optimizers._adam import scale_by_adam, scale_by_adam_torch
from optlab.optimizers._base import (
    MaskOrFn,
    ScalarOrSchedule,
    check_like,
    init_count,
    learning_rate_at,
    next_count,
    resolve_mask,
    scalar_like,
)

DECAY_SCALINGS = ("lr", "schedule")
LIKE = ("optax", "torch")
# λ when the caller passes none: optlab's (and torch.optim.AdamW's) 0.01; optax.adamw's 1e-4.
DEFAULT_WEIGHT_DECAY = {None: 0.01, "torch": 0.01, "optax": 1e-4}


class DecoupledStepState(NamedTuple):
    """``count``: updates made, for the schedule."""

    count: jax.Array


def decoupled_step(
    learning_rate: ScalarOrSchedule,
    weight_decay: float,
    *,
    mask: MaskOrFn = None,
    decay_scaling: str = "lr",
) -> optax.GradientTransformationExtraArgs:
    """Turns a direction d into ``−(α_t·d + c_t·λ·θ)`` with c_t = α_t or η_t = α_t/α_0.

    ``mask`` (a pytree of bools like params, or a function of params returning one)
    selects the leaves that decay; others get ``−α_t·d``. Needs ``params`` in ``update``.
    """
    _validation.check_choice("adamw", "decay_scaling", decay_scaling, DECAY_SCALINGS)
    _validation.check_learning_rate("adamw", learning_rate)
    _validation.check_non_negative("adamw", "weight_decay", weight_decay, "Use e.g. 0.01.")
    if decay_scaling == "schedule" and callable(learning_rate):
        if _validation.check_schedule_start("adamw", learning_rate) == 0.0:
            raise ValueError(
                "adamw: decay_scaling='schedule' divides by the schedule's value at step 0, "
                "which is 0. Start the schedule above 0 or use decay_scaling='lr'."
            )

    def init_fn(params):
        del params
        return DecoupledStepState(count=init_count())

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        if params is None:
            raise ValueError("adamw: `update` needs `params` for the weight decay term.")
        alpha_t = learning_rate_at(learning_rate, state.count)
        if decay_scaling == "lr":
            decay_coeff = alpha_t
        else:  # the paper's η_t; a constant (or injected) rate has η_t = 1
            decay_coeff = 1.0
            if callable(learning_rate):  # α_0 in-graph, in the dtype the schedule computes in
                decay_coeff = alpha_t / learning_rate_at(learning_rate, jnp.zeros_like(state.count))
        decay_mask = resolve_mask(mask, params)

        def step(d, p, decays):
            u = scalar_like(alpha_t, d) * d
            if decays:
                u = u + scalar_like(decay_coeff * weight_decay, p) * p
            return -u

        updates = jax.tree.map(step, updates, params, decay_mask)
        return updates, DecoupledStepState(count=next_count(state.count))

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def adamw(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float | None = None,
    *,
    mask: MaskOrFn = None,
    decay_scaling: str = "lr",
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""AdamW: Adam plus weight decay applied to the parameters, not to the gradient.

    Loshchilov & Hutter's Algorithm 2 (the decay is "decoupled": it never enters m or v)::

        m_t, v_t, m̂_t, v̂_t as in Adam (``optlab.adam``)
        θ_t ← θ_{t−1} − η_t·( α·m̂_t/(√v̂_t + ε) + λ·θ_{t−1} )

    Symbols → arguments: α·η_t = ``learning_rate`` at step t, β1 = ``b1``, β2 = ``b2``,
    ε = ``eps``, λ = ``weight_decay`` (None, the default: 0.01, or optax's 1e-4 with
    ``like="optax"``).

    ``decay_scaling="lr"`` (default) multiplies the decay by the full learning rate,
    ``θ ← θ − α_t·(m̂/(√v̂ + ε) + λθ)``, as ``torch.optim.AdamW`` and ``optax.adamw`` do.
    ``decay_scaling="schedule"`` multiplies it by the schedule multiplier only,
    η_t = α_t/α_0, as the paper does (so λ there is not scaled by α: choose it smaller).
    With a constant rate, η_t = 1.

    ``mask`` selects the parameters that decay (a pytree of bools or a function of the
    params), e.g. to leave biases and normalization scales alone; as in optax.

    Versus the libraries: both multiply the decay by the whole learning rate α_t, which
    is ``decay_scaling="lr"`` (the default); the paper's ``"schedule"`` scaling is in
    neither, so it raises with ``like``.

    * ``optax.adamw`` (``eps_root=0``, ``nesterov=False``): chain(scale_by_adam,
      add_decayed_weights(λ, mask), scale_by_learning_rate), u = −α_t·(m̂_t/(√v̂_t + ε)
      + λ·θ_{t−1}): the default's numbers. Its default λ is 1e-4, not 0.01:
      ``like="optax"`` takes it when ``weight_decay`` is not passed.
    * ``torch.optim.AdamW`` (``amsgrad=False``): first θ ← θ·(1 − α_t·λ), then the Adam
      step θ ← θ − (α_t/(1 − β1^t))·m_t/(√v_t/√(1 − β2^t) + ε), i.e. again
      θ_t = θ_{t−1} − α_t·(m̂_t/(√v̂_t + ε) + λ·θ_{t−1}); its default λ is 0.01, as here.
      For complex parameters its Adam part works on the real view (Re and Im each with
      their own v, see ``optlab.adam``); ``like="torch"`` follows that. torch has no
      ``mask`` (it uses parameter groups with ``weight_decay=0``); ``mask`` works with
      every form.

    The state (optax's ``ScaleByAdamState`` and the step count) is the same in every form.

    Args:
      learning_rate: α ≥ 0, or a schedule.
      b1: β1 in [0, 1).
      b2: β2 in [0, 1).
      eps: ε ≥ 0.
      weight_decay: λ ≥ 0; None (default) for 0.01 (optax's 1e-4 with ``like="optax"``).
      mask: which leaves decay; None decays all.
      decay_scaling: ``"lr"`` (PyTorch, optax) or ``"schedule"`` (the paper).
      like: None (the paper's equations, decay scaled as chosen), ``"optax"`` or
        ``"torch"`` (keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its ``update`` needs ``params``.

    Example:
      >>> import jax.numpy as jnp, numpy as np, optlab
      >>> tx = optlab.adamw(0.1, weight_decay=0.5)
      >>> params = jnp.array([2.0])
      >>> updates, _ = tx.update(jnp.array([3.0]), tx.init(params), params)
      >>> print(np.round(np.asarray(updates, float), 4))  # −α(sign(g) + λθ) = −0.1·(1 + 1)
      [-0.2]

    References:
      Loshchilov & Hutter, "Decoupled weight decay regularization", ICLR 2019.
    """
    check_like("adamw", like, LIKE)
    if like is not None and decay_scaling != "lr":
        raise ValueError(
            f"adamw: decay_scaling={decay_scaling!r} conflicts with like={like!r}: optax.adamw "
            "and torch.optim.AdamW multiply the decay by the learning rate "
            "(decay_scaling='lr'). Drop one of the two."
        )
    if weight_decay is None:
        weight_decay = DEFAULT_WEIGHT_DECAY[like]
    direction = scale_by_adam_torch(b1, b2, eps) if like == "torch" else scale_by_adam(b1, b2, eps)
    return optax.chain(
        direction,
        decoupled_step(learning_rate, weight_decay, mask=mask, decay_scaling=decay_scaling),
    )
