"""Every optimizer in the registry keeps optlab's contract (optlab.testing)."""

from optlab.testing import contract_suite
from tests.optimizers.registry import SPECS

test_contract = contract_suite(SPECS)
