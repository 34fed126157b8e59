"""Gradient descent / stochastic gradient descent (lectures 01, 04, 05)."""

from __future__ import annotations

import optax

from optlab import _validation
from optlab.optimizers._base import ScalarOrSchedule, check_like, scale_by_learning_rate


def sgd(
    learning_rate: ScalarOrSchedule, *, like: str | None = None
) -> optax.GradientTransformationExtraArgs:
    r"""Plain (stochastic) gradient descent.

    Lecture 02 writes ``w := w − α ∂L/∂w``; lecture 04 ``θ ← θ − γ^{(t)} ∇E(θ)`` with a
    time-dependent rate; lecture 01 ``Δθ_j = −α ∂J(θ)/∂θ_j``. Whether the gradient is of the
    whole data set (GD), of one example (SGD) or of a mini-batch is decided by the data, not
    here.

    Symbols → arguments: α = γ^{(t)} = η = ``learning_rate`` (a float or a schedule
    ``t -> γ^{(t)}``, t counting updates from 0).

    Versus the libraries: ``optax.sgd(learning_rate)`` (``momentum=None``) is
    chain(identity, scale_by_learning_rate): u_t = −α_t·g_t; ``torch.optim.SGD(lr)``
    (``momentum=0``, ``dampening=0``, ``weight_decay=0``) does θ ← θ − lr·g. Both are
    this formula, so ``like="optax"`` and ``like="torch"`` are the default form. Their
    momentum options are ``optlab.momentum`` (``optax.sgd(momentum=μ)``,
    ``torch.optim.SGD(momentum=μ, dampening=τ)``) and ``optlab.nesterov``
    (``nesterov=True``); torch's coupled ``weight_decay`` (g ← g + λθ) and ``maximize``,
    and optax's ``accumulator_dtype``, are not options here.

    Args:
      learning_rate: step size α ≥ 0, or a schedule.
      like: None (the lecture), ``"optax"`` or ``"torch"`` (keyword-only; the same update).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose update is ``−α g``.

    Example:
      >>> import jax.numpy as jnp, numpy as np, optax, optlab
      >>> tx = optlab.sgd(0.1)
      >>> params = jnp.array([1.0, 1.0])
      >>> grads = jnp.array([12.0, 8.0])  # ∇f at (1, 1), f = 5x² + 2xy + 3y² (lecture 02)
      >>> updates, _ = tx.update(grads, tx.init(params))
      >>> print(optax.apply_updates(params, updates))
      [-0.20000005  0.19999999]

    References:
      Robbins & Monro, "A stochastic approximation method", 1951.
    """
    check_like("sgd", like, ("optax", "torch"))
    _validation.check_learning_rate("sgd", learning_rate)
    return scale_by_learning_rate(learning_rate)
