"""Checks of schedule arguments that are concrete Python numbers, and the step as a float.

As in ``optlab._validation``, jax arrays and tracers (a vmapped sweep over ``init``, say)
are never compared with a Python ``if``; only concrete numbers are checked.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from optlab._validation import (
    check_choice,
    check_non_negative,
    check_unit_interval,
    fail,
    is_concrete_number,
)

__all__ = [
    "check_at_least",
    "check_choice",
    "check_factor",
    "check_momentum_range",
    "check_non_negative",
    "check_non_negative_int",
    "check_not_above",
    "check_positive",
    "check_positive_int",
    "check_unit_interval",
    "fail",
    "float_step",
    "is_concrete_number",
]


def float_step(step: Any) -> jax.Array:
    """The step (an int count, or an array of them) as floats of the default float dtype."""
    return jnp.asarray(step).astype(jnp.result_type(float))


def check_positive(owner: str, name: str, value: Any, fix: str = "") -> None:
    if is_concrete_number(value) and not (math.isfinite(value) and value > 0):
        fail(owner, name, value, "a finite number > 0", fix or "Use e.g. 1000.")


def _is_whole(value: Any) -> bool:
    return math.isfinite(value) and float(value).is_integer()


def check_positive_int(owner: str, name: str, value: Any, fix: str = "") -> None:
    if is_concrete_number(value) and not (_is_whole(value) and value >= 1):
        fail(owner, name, value, "an integer >= 1", fix or "Use e.g. 1000.")


def check_non_negative_int(owner: str, name: str, value: Any, fix: str = "") -> None:
    if is_concrete_number(value) and not (_is_whole(value) and value >= 0):
        fail(owner, name, value, "an integer >= 0", fix or "Use e.g. 0.")


def check_at_least(owner: str, name: str, value: Any, low: float, fix: str = "") -> None:
    if is_concrete_number(value) and not (math.isfinite(value) and value >= low):
        fail(owner, name, value, f"a finite number >= {low}", fix)


def check_factor(owner: str, name: str, value: Any, fix: str = "") -> None:
    """``value`` in (0, 1]: a multiplicative decay (1 means no decay)."""
    if is_concrete_number(value) and not (0.0 < value <= 1.0):
        fail(owner, name, value, "in (0, 1]", fix or "Typical values are 0.1 or 0.5.")


def check_not_above(owner: str, low: str, low_value: Any, high: str, high_value: Any) -> None:
    """``low_value <= high_value`` when both are concrete (e.g. base_lr <= max_lr)."""
    if (
        is_concrete_number(low_value)
        and is_concrete_number(high_value)
        and not low_value <= high_value
    ):
        fail(
            owner,
            low,
            low_value,
            f"<= `{high}` ({high_value!r})",
            f"Did you swap `{low}` and `{high}`?",
        )


def check_momentum_range(owner: str, base_momentum: Any, max_momentum: Any, fix: str) -> None:
    """A momentum cycle's bounds: both in [0, 1) and ``base_momentum <= max_momentum``."""
    check_unit_interval(owner, "base_momentum", base_momentum, fix)
    check_unit_interval(owner, "max_momentum", max_momentum, fix)
    check_not_above(owner, "base_momentum", base_momentum, "max_momentum", max_momentum)
