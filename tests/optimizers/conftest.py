"""The test tiers of the optimizer shelf (the optimizers from the papers since the
lectures, issue 13).

In the quick tier (``pytest``) a shelf file runs its first test's first case: the paper's
algorithm box against its NumPy reference, so every optimizer is exercised once. Everything
else in those files (the other cases, the library forms' parity, the facts, bad input)
is marked ``slow`` and runs in the full tier (``pytest -m ""``), which CI runs. The
lectures' optimizers keep every test in the quick tier.
"""

import pytest

SHELF = {
    f"test_{name}.py"
    for name in (
        "adabelief adadelta adafactor adamax amsgrad radam lion adopt ademamix adan yogi "
        "rprop novograd lars lamb muon shampoo soap schedule_free prodigy like_existing sam sophia "
        "wrappers"
    ).split()
}


@pytest.hookimpl(tryfirst=True)  # before the -m selection reads the marks
def pytest_collection_modifyitems(config, items):
    seen = set()
    for item in items:
        if item.path.name not in SHELF:
            continue
        if item.path.name in seen:
            item.add_marker(pytest.mark.slow)
        seen.add(item.path.name)
