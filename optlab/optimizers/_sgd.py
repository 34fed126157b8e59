"""Gradient descent / stochastic gradient descent (lectures 01, 04, 05)."""

from __future__ import annotations

import optax

from optlab import _validation
from optlab.optimizers._base import ScalarOrSchedule, scale_by_learning_rate


def sgd(learning_rate: ScalarOrSchedule) -> optax.GradientTransformationExtraArgs:
    r"""Plain (stochastic) gradient descent.

    Lecture 02 writes ``w := w − α ∂L/∂w``; lecture 04 ``θ ← θ − γ^{(t)} ∇E(θ)`` with a
    time-dependent rate; lecture 01 ``Δθ_j = −α ∂J(θ)/∂θ_j``. Whether the gradient is of the
    whole data set (GD), of one example (SGD) or of a mini-batch is decided by the data, not
    here.

    Symbols → arguments: α = γ^{(t)} = η = ``learning_rate`` (a float or a schedule
    ``t -> γ^{(t)}``, t counting updates from 0).

    Same as ``torch.optim.SGD(lr)`` and ``optax.sgd(learning_rate)`` with no momentum.

    Args:
      learning_rate: step size α ≥ 0, or a schedule.

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
    _validation.check_learning_rate("sgd", learning_rate)
    return scale_by_learning_rate(learning_rate)
