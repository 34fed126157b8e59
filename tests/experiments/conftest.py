"""Experiments are scripts (``experiments/NN_name.py``), loaded here by path."""

import importlib.util
import pathlib
import sys

import pytest

EXPERIMENTS = pathlib.Path(__file__).resolve().parents[2] / "experiments"


@pytest.fixture(scope="session")
def load_experiment():
    """``load_experiment("01_optimizer_comparison")`` -> the script as a module."""
    if str(EXPERIMENTS) not in sys.path:
        sys.path.insert(0, str(EXPERIMENTS))  # for ``import _common``

    def load(name: str):
        spec = importlib.util.spec_from_file_location(
            f"experiment_{name}", EXPERIMENTS / f"{name}.py"
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
