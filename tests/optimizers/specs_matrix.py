"""Contract specs of the matrix preconditioners: shampoo, soap (one per distinct form)."""

from optlab.optimizers._shampoo import shampoo
from optlab.optimizers._soap import soap
from optlab.testing import OptimizerSpec

# The contract's problems (parabola, Rosenbrock) are 1-D leaves, where both methods fall
# back to Adam; the matrix code runs in the other checks (their "w" is a 3 × 2 matrix)
# and in the least-squares tests of test_shampoo.py / test_soap.py.
SPECS = [
    OptimizerSpec(
        "shampoo", lambda learning_rate: shampoo(learning_rate), 1e-1, 1e-2, complex_ok=False
    ),
    OptimizerSpec(
        "shampoo_ungrafted",
        lambda learning_rate: shampoo(learning_rate, graft=None),
        1e-1,
        1e-2,
        complex_ok=False,
    ),
    OptimizerSpec("soap", lambda learning_rate: soap(learning_rate), 1e-1, 1e-2, complex_ok=False),
]


def specs_for(name: str) -> list[OptimizerSpec]:
    """The specs of optimizer ``name`` (its forms ``name``, ``name_*``)."""
    return [s for s in SPECS if s.name == name or s.name.startswith(name + "_")]
