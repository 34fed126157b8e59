"""Contract specs of the Adam variants: amsgrad, adamax, radam (one per distinct form)."""

from optlab.optimizers._adam_variants import adamax, amsgrad, radam
from optlab.testing import OptimizerSpec

SPECS = [
    OptimizerSpec("amsgrad", lambda learning_rate: amsgrad(learning_rate), 1e-1, 1e-2),
    OptimizerSpec(
        "amsgrad_optax", lambda learning_rate: amsgrad(learning_rate, like="optax"), 1e-1, 1e-2
    ),
    OptimizerSpec(
        "amsgrad_torch", lambda learning_rate: amsgrad(learning_rate, like="torch"), 1e-1, 1e-2
    ),
    OptimizerSpec("adamax", lambda learning_rate: adamax(learning_rate), 1e-1, 1e-2),
    OptimizerSpec(
        "adamax_optax", lambda learning_rate: adamax(learning_rate, like="optax"), 1e-1, 1e-2
    ),
    # The same iterates as adamax_optax on real numbers; complex ones per real part (torch).
    OptimizerSpec(
        "adamax_torch", lambda learning_rate: adamax(learning_rate, like="torch"), 1e-1, 1e-2
    ),
    OptimizerSpec("radam", lambda learning_rate: radam(learning_rate), 1e-1, 1e-2),
    OptimizerSpec(
        "radam_optax", lambda learning_rate: radam(learning_rate, like="optax"), 1e-1, 1e-2
    ),
    OptimizerSpec(
        "radam_torch", lambda learning_rate: radam(learning_rate, like="torch"), 1e-1, 1e-2
    ),
]


def specs_for(name: str) -> list[OptimizerSpec]:
    """The specs of optimizer ``name`` (its forms ``name``, ``name_*``)."""
    return [s for s in SPECS if s.name == name or s.name.startswith(name + "_")]
