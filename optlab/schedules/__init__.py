"""Learning-rate (and momentum) schedules ``t -> value``, and a plateau-driven step scale.

t counts the updates already made (0 for the first update, as in optax). Every schedule is
a pure jnp function of t: it jits, vmaps and is any optimizer's ``learning_rate``, e.g.
``optlab.sgd(optlab.schedules.cosine_decay(0.1, 1000))``.
"""

from optlab.schedules._basic import (
    Schedule,
    constant,
    exponential_decay,
    inverse_time_decay,
    polynomial,
    step_decay,
)
from optlab.schedules._cosine import cosine_decay, sgdr
from optlab.schedules._cyclical import cyclical, cyclical_momentum
from optlab.schedules._one_cycle import one_cycle, one_cycle_momentum
from optlab.schedules._plateau import ReduceOnPlateauState, reduce_on_plateau
from optlab.schedules._registry import (
    HORIZONS,
    SCHEDULE_ALIASES,
    SCHEDULES,
    get_schedule,
    required_arguments,
    schedules_help,
)
from optlab.schedules._robbins_monro import RobbinsMonroReport, robbins_monro

__all__ = [
    "HORIZONS",
    "SCHEDULES",
    "SCHEDULE_ALIASES",
    "ReduceOnPlateauState",
    "RobbinsMonroReport",
    "Schedule",
    "constant",
    "cosine_decay",
    "cyclical",
    "cyclical_momentum",
    "exponential_decay",
    "get_schedule",
    "inverse_time_decay",
    "one_cycle",
    "one_cycle_momentum",
    "polynomial",
    "reduce_on_plateau",
    "required_arguments",
    "robbins_monro",
    "schedules_help",
    "sgdr",
    "step_decay",
]
