"""Contract specs of muon. The parabola and Rosenbrock are vectors, which go to muon's
AdamW; the other checks run on a (3, 2) matrix and a vector, so both parts are covered."""

import optlab
from optlab.testing import OptimizerSpec

SPECS = [
    OptimizerSpec("muon", lambda learning_rate: optlab.muon(learning_rate), 1e-1, 1e-2),
    OptimizerSpec(
        "muon_optax", lambda learning_rate: optlab.muon(learning_rate, like="optax"), 1e-1, 1e-2
    ),
    OptimizerSpec(
        "muon_torch",
        lambda learning_rate: optlab.muon(learning_rate, like="torch"),
        1e-1,
        1e-2,
        moves_at_rest=True,  # torch's weight decay 0.1
    ),
]
