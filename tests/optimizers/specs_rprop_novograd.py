"""Contract specs of rprop and novograd (one per distinct form)."""

from optlab.optimizers._novograd import novograd
from optlab.optimizers._rprop import rprop
from optlab.testing import OptimizerSpec

SPECS = [
    # Rprop's learning_rate is only Δ_0 (the step sizes adapt), read by init: an injected
    # rate changes nothing afterwards, exactly as a schedule (read at count 0) does.
    OptimizerSpec("rprop", lambda learning_rate: rprop(learning_rate), 1e-1, 1e-3),
    OptimizerSpec(
        "rprop_torch", lambda learning_rate: rprop(learning_rate, like="torch"), 1e-1, 1e-3
    ),
    OptimizerSpec(
        "rprop_optax", lambda learning_rate: rprop(learning_rate, like="optax"), 1e-1, 1e-3
    ),
    OptimizerSpec("novograd", lambda learning_rate: novograd(learning_rate), 1e-2, 1e-3),
    OptimizerSpec(
        "novograd_optax",
        lambda learning_rate: novograd(learning_rate, like="optax"),
        1e-2,
        1e-3,
    ),
]


def specs_for(name: str) -> list[OptimizerSpec]:
    """The specs of optimizer ``name`` (its forms ``name``, ``name_*``)."""
    return [s for s in SPECS if s.name == name or s.name.startswith(name + "_")]
