"""Contract specs of the sign family: lion, adopt, ademamix, adan (one per distinct form)."""

import optlab
from optlab.testing import OptimizerSpec

SPECS = [
    OptimizerSpec(
        "lion", lambda learning_rate: optlab.lion(learning_rate), 1e-2, 1e-3, moves_at_rest=True
    ),
    OptimizerSpec("adopt", lambda learning_rate: optlab.adopt(learning_rate), 1e-1, 1e-2),
    OptimizerSpec(
        "adopt_optax",
        lambda learning_rate: optlab.adopt(learning_rate, like="optax"),
        1e-1,
        1e-2,
    ),
    # β3 = 0.999 (the paper's advice for short runs) with both warm-ups over the run.
    OptimizerSpec(
        "ademamix",
        lambda learning_rate: optlab.ademamix(
            learning_rate, b3=0.999, alpha_warmup=10_000, b3_warmup=10_000
        ),
        1e-2,
        1e-3,
    ),
    OptimizerSpec(
        "ademamix_optax",
        lambda learning_rate: optlab.ademamix(
            learning_rate, b3=0.999, alpha_warmup=10_000, b3_warmup=10_000, like="optax"
        ),
        1e-2,
        1e-3,
    ),
    # b1 = 0.98 is heavy momentum: at 0.1 the paper's form is still mid-oscillation (loss
    # up) after nnx_optimizer's 31 steps on its linear model; it settles later.
    OptimizerSpec("adan", lambda learning_rate: optlab.adan(learning_rate), 5e-2, 5e-3),
    OptimizerSpec(
        "adan_optax", lambda learning_rate: optlab.adan(learning_rate, like="optax"), 5e-2, 5e-3
    ),
]


def specs_for(name: str) -> list[OptimizerSpec]:
    """The specs of optimizer ``name`` (its forms ``name``, ``name_*``)."""
    return [s for s in SPECS if s.name == name or s.name.startswith(name + "_")]
