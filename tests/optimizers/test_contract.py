"""Every optimizer in the registry keeps optlab's contract (optlab.testing)."""

import pytest

from optlab.testing import contract_suite
from tests.optimizers.registry import LECTURE_SPECS, SHELF_SPECS

test_contract = contract_suite(LECTURE_SPECS)
test_contract_shelf = pytest.mark.slow(contract_suite(SHELF_SPECS))
