"""Checks of hyper-parameters that are concrete Python numbers.

Optimizer factories are also called with traced values (``optax.inject_hyperparams``
passes arrays, a vmapped sweep passes tracers); those cannot be compared with a
Python ``if`` and are deliberately left alone here.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from typing import Any

import jax.numpy as jnp


def is_concrete_number(value: Any) -> bool:
    """True for Python and NumPy real scalars (never for jax arrays or tracers)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def fail(owner: str, name: str, value: Any, must: str, fix: str) -> None:
    raise ValueError(f"{owner}: `{name}` must be {must}, got {value!r}. {fix}")


def check_learning_rate(owner: str, learning_rate: Any) -> None:
    """A learning rate is a non-negative finite number or a schedule ``step -> rate``."""
    if callable(learning_rate) or not is_concrete_number(learning_rate):
        return
    if not math.isfinite(learning_rate) or learning_rate < 0:
        fail(
            owner,
            "learning_rate",
            learning_rate,
            "a finite number >= 0 (or a schedule step -> rate)",
            "Pass a positive step size such as 1e-3; the update already subtracts it.",
        )


def check_non_negative(owner: str, name: str, value: Any, fix: str = "") -> None:
    if is_concrete_number(value) and not (math.isfinite(value) and value >= 0):
        fail(owner, name, value, "a finite number >= 0", fix or "Use e.g. 1e-8.")


def check_unit_interval(owner: str, name: str, value: Any, fix: str = "") -> None:
    """``value`` in [0, 1): a decay rate or momentum coefficient."""
    if is_concrete_number(value) and not (0.0 <= value < 1.0):
        fail(owner, name, value, "in [0, 1)", fix or "Typical values are 0.9 or 0.999.")


def check_choice(owner: str, name: str, value: Any, choices: Iterable[str]) -> None:
    choices = tuple(choices)
    if value not in choices:
        fail(owner, name, value, f"one of {choices}", f"Pick one of {', '.join(choices)}.")


def check_schedule_start(owner: str, learning_rate: Callable[[Any], Any]) -> float:
    """Evaluates a schedule at step 0 (it must be a pure function of the step)."""
    try:
        value = float(learning_rate(jnp.zeros([], jnp.int32)))
    except Exception as err:  # a schedule that cannot be evaluated eagerly
        raise ValueError(
            f"{owner}: `learning_rate` schedule could not be evaluated at step 0 ({err}). "
            "Pass a pure function of the step, e.g. optax.cosine_decay_schedule(...)."
        ) from err
    return value
