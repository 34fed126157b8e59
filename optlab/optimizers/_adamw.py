"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab import _validation
from optlab.optimizers._adam import scale_by_adam
from optlab.optimizers._base import (
    MaskOrFn,
    ScalarOrSchedule,
    init_count,
    learning_rate_at,
    next_count,
    resolve_mask,
    scalar_like,
)

DECAY_SCALINGS = ("lr", "schedule")


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
    weight_decay: float = 0.01,
    *,
    mask: MaskOrFn = None,
    decay_scaling: str = "lr",
) -> optax.GradientTransformationExtraArgs:
    r"""AdamW: Adam plus weight decay applied to the parameters, not to the gradient.

    Loshchilov & Hutter's Algorithm 2 (the decay is "decoupled": it never enters m or v)::

        m_t, v_t, m̂_t, v̂_t as in Adam (``optlab.adam``)
        θ_t ← θ_{t−1} − η_t·( α·m̂_t/(√v̂_t + ε) + λ·θ_{t−1} )

    Symbols → arguments: α·η_t = ``learning_rate`` at step t, β1 = ``b1``, β2 = ``b2``,
    ε = ``eps``, λ = ``weight_decay``.

    ``decay_scaling="lr"`` (default) multiplies the decay by the full learning rate,
    ``θ ← θ − α_t·(m̂/(√v̂ + ε) + λθ)``, as ``torch.optim.AdamW`` and ``optax.adamw`` do.
    ``decay_scaling="schedule"`` multiplies it by the schedule multiplier only,
    η_t = α_t/α_0, as the paper does (so λ there is not scaled by α: choose it smaller).
    With a constant rate, η_t = 1.

    ``mask`` selects the parameters that decay (a pytree of bools or a function of the
    params), e.g. to leave biases and normalization scales alone; as in optax.

    Args:
      learning_rate: α ≥ 0, or a schedule.
      b1: β1 in [0, 1).
      b2: β2 in [0, 1).
      eps: ε ≥ 0.
      weight_decay: λ ≥ 0.
      mask: which leaves decay; None decays all.
      decay_scaling: ``"lr"`` (PyTorch, optax) or ``"schedule"`` (the paper).

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
    return optax.chain(
        scale_by_adam(b1, b2, eps),
        decoupled_step(learning_rate, weight_decay, mask=mask, decay_scaling=decay_scaling),
    )
