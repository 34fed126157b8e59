"""The schedules by name, one set of names for the config, the command line and Python:
each is the name of its function in ``optlab.schedules`` (``--schedule step_decay`` is
``optlab.step_decay``)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from types import MappingProxyType

from optlab.schedules._basic import (
    constant,
    exponential_decay,
    inverse_time_decay,
    polynomial,
    step_decay,
)
from optlab.schedules._cosine import cosine_decay, sgdr
from optlab.schedules._cyclical import cyclical
from optlab.schedules._one_cycle import one_cycle

SCHEDULES: Mapping[str, Callable] = MappingProxyType(
    {
        f.__name__: f
        for f in (
            constant,
            step_decay,
            exponential_decay,
            inverse_time_decay,
            polynomial,
            cosine_decay,
            cyclical,
            one_cycle,
            sgdr,
        )
    }
)
# The command line's names before they became the functions' (still read, e.g. from the
# config.json of an older run folder, so that it resumes).
SCHEDULE_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "step": "step_decay",
        "exponential": "exponential_decay",
        "inverse_time": "inverse_time_decay",
        "cosine": "cosine_decay",
    }
)
# Filled from the run's length when not given.
HORIZONS = ("steps", "total_steps")


def get_schedule(name: str) -> Callable:
    """The schedule function called ``name`` (or one of its older aliases).

    Raises:
      ValueError: naming the schedules, for an unknown ``name``.
    """
    fn = SCHEDULES.get(SCHEDULE_ALIASES.get(name, name))
    if fn is None:
        raise ValueError(f"unknown schedule {name!r}; choose from {', '.join(SCHEDULES)}")
    return fn


def required_arguments(name: str) -> tuple[str, ...]:
    """The arguments a schedule needs besides its first (the peak or initial rate, which
    is the learning rate) and a horizon the trainer fills with the run's length."""
    params = list(inspect.signature(get_schedule(name)).parameters.values())[1:]
    return tuple(
        p.name for p in params if p.default is inspect.Parameter.empty and p.name not in HORIZONS
    )


def schedules_help() -> str:
    """Each schedule with its required arguments, e.g. ``step_decay (factor, every)``."""
    parts = []
    for name in SCHEDULES:
        needed = required_arguments(name)
        parts.append(f"{name} ({', '.join(needed)})" if needed else name)
    return ", ".join(parts)
