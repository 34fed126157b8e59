"""The test tiers of the optimizer shelf (the optimizers from the papers since the
lectures, issue 13).

In the quick tier (``pytest``) each test function of a shelf file runs its first case:
every formula, parity and fact test still runs once per optimizer. The other cases
(hyper-parameter corners, the other ``like`` forms' extra settings) are marked ``slow``
and run in the full tier (``pytest -m ""``), which CI runs. Tests without parameters are
quick. The lectures' optimizers keep every case in the quick tier.
"""

import pytest

SHELF = {
    f"test_{name}.py"
    for name in (
        "adabelief adadelta adafactor adamax amsgrad radam lion adopt ademamix adan yogi "
        "rprop novograd lars lamb muon shampoo soap schedule_free prodigy like_existing sam sophia"
    ).split()
}


@pytest.hookimpl(tryfirst=True)  # before the -m selection reads the marks
def pytest_collection_modifyitems(config, items):
    seen = set()
    for item in items:
        if item.path.name not in SHELF or not hasattr(item, "callspec"):
            continue
        key = (item.path.name, item.originalname)
        if key in seen:
            item.add_marker(pytest.mark.slow)
        seen.add(key)
