"""The step spec: one frozen description of a train step, built once from the run config.

The jit step, the pmap step and the laboratory's steps (sweep, LR finder, doctor) all take
a ``StepSpec``; what differs between them (a learning-rate function read from an injected
hyper-parameter, a different non-finite policy) is a ``dataclasses.replace`` of the
trainer's spec, never a second list of arguments.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

LOSSES = ("cross_entropy", "mse", "next_token")
NONFINITE = ("stop", "skip")


def _zero_rate(_: Any) -> jax.Array:
    return jnp.zeros([])


@dataclasses.dataclass(frozen=True)
class StepSpec:
    """What a train step does besides the model and the optimizer.

    Attributes:
      loss: ``"cross_entropy"`` (classification: integer labels, accuracy in the
        metrics) or ``"mse"`` (regression).
      learning_rate_fn: ``step -> α_t``, reported as ``metrics["learning_rate"]`` (the
        optimizer applies its own rate; this only reports it).
      accumulate: K micro-batches summed (``lax.scan``) before one update; a batch then
        has a leading micro-batch axis ``(K, B, ...)``.
      nonfinite: a step whose loss or gradient is not finite is never applied;
        ``"stop"`` also skips every later update, so the state stays the one from just
        before the first bad step until the host loop notices and stops; ``"skip"``
        skips only that step.
      loss_scaling: dynamic loss scaling (float16): the loss is multiplied by
        ``state.loss_scale`` before differentiation and the gradients divided by it; an
        overflow halves the scale and skips the update without counting as a failure.
      scale_growth_interval: good steps in a row after which the loss scale doubles.
      augment: ``augment(key, x) -> x`` (jit-able), applied to each batch on device.
      monitor: add the gradient norms (global and per layer) and the update-to-parameter
        ratio to the metrics; they cost extra passes, so the host loop compiles a second,
        monitored step (``monitored()``) and runs it only on the steps it logs.
    """

    loss: str = "cross_entropy"
    learning_rate_fn: Callable[[jax.Array], jax.Array] = _zero_rate
    accumulate: int = 1
    nonfinite: str = "stop"
    loss_scaling: bool = False
    scale_growth_interval: int = 2000
    augment: Callable[[jax.Array, jax.Array], jax.Array] | None = None
    monitor: bool = False

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"StepSpec: `loss` must be one of {LOSSES}, got {self.loss!r}")
        if self.nonfinite not in NONFINITE:
            raise ValueError(
                f"StepSpec: `nonfinite` must be one of {NONFINITE}, got {self.nonfinite!r}"
            )
        if not (isinstance(self.accumulate, int) and self.accumulate >= 1):
            raise ValueError(f"StepSpec: `accumulate` must be >= 1, got {self.accumulate!r}")

    @property
    def stop_after_nonfinite(self) -> bool:
        return self.nonfinite == "stop"

    def monitored(self) -> StepSpec:
        """The same spec with monitoring on (the steps the host loop logs)."""
        return dataclasses.replace(self, monitor=True)
