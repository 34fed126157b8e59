"""Contract specs of the trust-ratio family: lars, lamb (one per distinct form).

lars's two forms differ only where weight decay is on (the norm in the local rate is
‖g‖ + β‖w‖ in the paper, ‖g + βw‖ in optax), hence β = 1e-4 in both (so they move θ
at rest: a zero gradient still leaves the decay step). lamb's like="optax"
is the same formula as its default, so it has no spec of its own. LARS's steps are about
γ·η·‖w‖ long (η = 0.001), but a zero-initialized leaf (nnx.Linear's bias) gets λ = 1, a
plain momentum step γ·g, which diverges in nnx_optimizer's check from γ ≈ 0.3 on.
"""

from optlab.optimizers._trust_ratio import lamb, lars
from optlab.testing import OptimizerSpec

SPECS = [
    OptimizerSpec(
        "lars",
        lambda learning_rate: lars(learning_rate, weight_decay=1e-4),
        0.1,
        moves_at_rest=True,
    ),
    OptimizerSpec(
        "lars_optax",
        lambda learning_rate: lars(learning_rate, weight_decay=1e-4, like="optax"),
        0.1,
        moves_at_rest=True,
    ),
    OptimizerSpec("lamb", lambda learning_rate: lamb(learning_rate), 3e-3, 1e-3),
]


def specs_for(name: str) -> list[OptimizerSpec]:
    """The specs of optimizer ``name`` (its forms ``name``, ``name_*``)."""
    return [s for s in SPECS if s.name == name or s.name.startswith(name + "_")]
