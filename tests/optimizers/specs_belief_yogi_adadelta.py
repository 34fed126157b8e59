"""Contract specs of adabelief, yogi and adadelta (one per distinct form)."""

from optlab.optimizers._adabelief import adabelief
from optlab.optimizers._adadelta import adadelta
from optlab.optimizers._yogi import yogi
from optlab.testing import OptimizerSpec

SPECS = [
    # like="optax" computes the same iterates as the paper's form: one spec.
    OptimizerSpec("adabelief", lambda learning_rate: adabelief(learning_rate), 1e-1, 1e-2),
    OptimizerSpec("yogi", lambda learning_rate: yogi(learning_rate), 1e-1, 1e-2),
    OptimizerSpec(
        "yogi_optax",
        lambda learning_rate: yogi(learning_rate, like="optax"),
        1e-1,
        1e-2,
        moves_at_rest=True,  # optax starts m and v at 1e-6: m̂/√v̂ ≠ 0 with g = 0
    ),
    # ADADELTA starts with steps of ~√(ε/(1 − ρ)) and, on Rosenbrock, hovers at a distance
    # from (1, 1) that grows with α: a small α and twice the default steps.
    OptimizerSpec("adadelta", lambda learning_rate: adadelta(learning_rate), 1.0, 1e-2, 20_000),
    # optax squares complex g as g·g (complex roots rotate the step): no complex minimum.
    OptimizerSpec(
        "adadelta_optax",
        lambda learning_rate: adadelta(learning_rate, like="optax"),
        1.0,
        1e-2,
        20_000,
        complex_ok=False,
    ),
    OptimizerSpec(
        "adadelta_torch",
        lambda learning_rate: adadelta(learning_rate, like="torch"),
        1.0,
        1e-2,
        20_000,
    ),
]


def specs_for(name: str) -> list[OptimizerSpec]:
    """The specs of optimizer ``name`` (its forms ``name``, ``name_*``)."""
    return [s for s in SPECS if s.name == name or s.name.startswith(name + "_")]
