"""The test tiers of the optimizer shelf (the optimizers from the papers since the
lectures, issue 13).

The shelf's test files and the lectures' optimizers' ``like=`` formula and parity tests are
marked ``slow``: they run in the full tier (``pytest -m ""``), which CI runs, so that the
quick tier (``pytest``) stays under its 5-minute budget on 2 cores. The quick tier still
builds every registered optimizer (``test_registry.py``) and runs the lectures' optimizers'
own tests and contract suite.
"""

import re

import pytest

SHELF = {
    f"test_{name}.py"
    for name in (
        "adabelief adadelta adafactor adamax amsgrad radam lion adopt ademamix adan yogi "
        "rprop novograd lars lamb muon shampoo soap schedule_free prodigy like_existing sam sophia "
        "wrappers"
    ).split()
}


LIKE_FORMS = re.compile(
    r"test_((optax|torch|library)_formula|formula_like|parity_(optax|torch)_like)"
)


@pytest.hookimpl(tryfirst=True)  # before the -m selection reads the marks
def pytest_collection_modifyitems(config, items):
    for item in items:
        shelf = item.path.name in SHELF
        like_form = item.path.parent.name == "optimizers" and LIKE_FORMS.fullmatch(
            getattr(item, "originalname", "")
        )
        if shelf or like_form:
            item.add_marker(pytest.mark.slow)
