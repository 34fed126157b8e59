"""Contract specs of schedule_free_sgd, schedule_free_adamw and prodigy (one per form).

The convergence checks read the params the optimizer holds: for the schedule-free
optimizers that is y = (1 − β)·z + β·x, which converges on these deterministic problems
too (the evaluation point x is ``schedule_free_eval_params(state, params)``).
"""

from optlab.optimizers._prodigy import prodigy
from optlab.optimizers._schedule_free import schedule_free_adamw, schedule_free_sgd
from optlab.testing import OptimizerSpec

SPECS = [
    OptimizerSpec(
        "schedule_free_sgd", lambda learning_rate: schedule_free_sgd(learning_rate), 0.1, 1e-2
    ),
    # optax's wrapper reads the rate at the next count for its averaging weight, so an
    # injected rate (constant to the wrapper) and the same rates as a schedule differ.
    OptimizerSpec(
        "schedule_free_sgd_optax",
        lambda learning_rate: schedule_free_sgd(learning_rate, like="optax"),
        0.1,
        1e-2,
        schedule_equivalent=False,
    ),
    OptimizerSpec(
        "schedule_free_adamw", lambda learning_rate: schedule_free_adamw(learning_rate), 1e-2
    ),
    OptimizerSpec(
        "schedule_free_adamw_optax",
        lambda learning_rate: schedule_free_adamw(learning_rate, like="optax"),
        1e-2,
        schedule_equivalent=False,
    ),
    # γ multiplies the estimated step d; 1.0 is the authors' advice. On Rosenbrock the
    # estimated step overshoots the curved valley at 1.0 (complex64 ends 3e-2 away).
    OptimizerSpec("prodigy", lambda learning_rate: prodigy(learning_rate), 1.0, 0.1),
    OptimizerSpec(
        "prodigy_optax",
        lambda learning_rate: prodigy(learning_rate, like="optax"),
        1.0,
        0.1,
        finite_at_zero=False,  # optax's d is 0/0 when every gradient so far is 0
    ),
]


def specs_for(name: str) -> list[OptimizerSpec]:
    """The specs of optimizer ``name`` (its forms ``name``, ``name_*``)."""
    return [s for s in SPECS if s.name == name or s.name.startswith(name + "_")]
