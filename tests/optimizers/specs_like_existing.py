"""Contract specs of the library forms (``like="optax"`` / ``like="torch"``) of sgd, momentum,
nesterov, adagrad, rmsprop, adam, nadam and adamw: one per form with its own code path.

sgd and nesterov (both libraries), momentum / adam / adamw with ``like="optax"`` run the
default form's code (same numbers, same state), which the registry's specs already cover.
"""

import optlab
from optlab.testing import OptimizerSpec

SPECS = [
    # torch's buffer with dampening (b_1 = g_1, then μb + (1 − τ)g).
    OptimizerSpec(
        "momentum_torch",
        lambda learning_rate: optlab.momentum(learning_rate, 0.9, dampening=0.5, like="torch"),
        1e-3,
    ),
    OptimizerSpec(
        "adagrad_optax",
        lambda learning_rate: optlab.adagrad(learning_rate, like="optax"),
        1.0,
        0.5,
        20_000,
    ),
    OptimizerSpec(
        "adagrad_torch",
        lambda learning_rate: optlab.adagrad(learning_rate, lr_decay=1e-4, like="torch"),
        1.0,
        0.5,
        20_000,
    ),
    # optax's momentum: the rate inside the trace.
    OptimizerSpec(
        "rmsprop_optax",
        lambda learning_rate: optlab.rmsprop(learning_rate, momentum=0.9, like="optax"),
        5e-3,
        1e-3,
    ),
    OptimizerSpec(
        "rmsprop_torch",
        lambda learning_rate: optlab.rmsprop(
            learning_rate, centered=True, momentum=0.9, like="torch"
        ),
        5e-3,
        1e-3,
    ),
    OptimizerSpec(
        "adam_torch", lambda learning_rate: optlab.adam(learning_rate, like="torch"), 1e-1, 1e-2
    ),
    OptimizerSpec(
        "nadam_optax", lambda learning_rate: optlab.nadam(learning_rate, like="optax"), 1e-2
    ),
    OptimizerSpec(
        "nadam_torch", lambda learning_rate: optlab.nadam(learning_rate, like="torch"), 1e-2
    ),
    OptimizerSpec(
        "adamw_torch",
        lambda learning_rate: optlab.adamw(learning_rate, weight_decay=1e-4, like="torch"),
        1e-1,
        1e-2,
        moves_at_rest=True,  # decoupled weight decay
    ),
]
