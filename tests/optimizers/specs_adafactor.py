"""Contract specs of adafactor: the paper's form, optax's and torch's (one per distinct form)."""

import optlab
from optlab.testing import OptimizerSpec

# learning_rate is the relative step ρ (torch: its cap, ρ_t = min(lr, 1/√t)); the step is
# ρ·max(ε2, RMS(θ))·Û with RMS(Û) ≤ 1. Rosenbrock starts at θ = 0, where the step is
# ρ·ε2 = ρ·1e-3 and the scale grows only like (1 + ρ)^t: it needs 20,000 steps at 2e-3
# (at 10,000 no rate reaches 3e-2; larger rates rattle across the valley).
SPECS = [
    OptimizerSpec(
        "adafactor", lambda learning_rate: optlab.adafactor(learning_rate), 3e-2, 2e-3, 20_000
    ),
    OptimizerSpec(
        "adafactor_optax",
        lambda learning_rate: optlab.adafactor(learning_rate, like="optax"),
        3e-2,
        2e-3,
        20_000,
    ),
    OptimizerSpec(
        "adafactor_torch",
        lambda learning_rate: optlab.adafactor(learning_rate, like="torch"),
        3e-2,
        2e-3,
        20_000,
    ),
]


def specs_for(name: str) -> list[OptimizerSpec]:
    """The specs of optimizer ``name`` (its forms ``name``, ``name_*``)."""
    return [s for s in SPECS if s.name == name or s.name.startswith(name + "_")]
