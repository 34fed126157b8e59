"""Conformance tools for optlab's optimizers and for yours.

* ``assert_matches_reference``: roll a transformation against a NumPy formula.
* ``OptimizerSpec`` + ``contract_suite`` / ``CONTRACT_CHECKS``: the shared contract
  (convergence, no recompiles, dtypes, vmap, inject_hyperparams, MultiSteps, masked,
  nnx.Optimizer, abstract init, extra arguments).
"""

from optlab.testing._contract import (
    CONTRACT_CHECKS,
    OptimizerSpec,
    check_abstract_init,
    check_dtypes,
    check_extra_args,
    check_inject_hyperparams,
    check_masked,
    check_multisteps,
    check_nnx_optimizer,
    check_no_recompile,
    check_parabola,
    check_rosenbrock,
    check_vmap,
    contract_suite,
)
from optlab.testing._problems import descent_gradient, parabola, rosenbrock
from optlab.testing._reference import (
    Difference,
    RolloutReport,
    assert_matches_reference,
    random_tree,
)

__all__ = [
    "CONTRACT_CHECKS",
    "Difference",
    "OptimizerSpec",
    "RolloutReport",
    "assert_matches_reference",
    "check_abstract_init",
    "check_dtypes",
    "check_extra_args",
    "check_inject_hyperparams",
    "check_masked",
    "check_multisteps",
    "check_nnx_optimizer",
    "check_no_recompile",
    "check_parabola",
    "check_rosenbrock",
    "check_vmap",
    "contract_suite",
    "descent_gradient",
    "parabola",
    "random_tree",
    "rosenbrock",
]
