"""Experiments are scripts (``experiments/NN_name.py``), loaded here by path.

A test module names its script in ``NAME`` (e.g. ``NAME = "02_gd_vs_sgd_vs_minibatch"``)
and asks for ``experiment`` (the script as a module) or ``quick`` (its ``--quick`` run:
``(result, out, printed)``), both module-scoped: each script runs once per test module.
``read_csv(path)`` reads what it wrote and ``check_files(out, names)`` checks the files
(``from tests.experiments.conftest import check_files, read_csv``).
"""

import contextlib
import csv
import importlib.util
import io
import pathlib
import sys

import pytest
from PIL import Image

EXPERIMENTS = pathlib.Path(__file__).resolve().parents[2] / "experiments"


def read_csv(path) -> list[dict]:
    """A CSV file's rows as dicts of strings (the header row gives the keys)."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def check_files(out: pathlib.Path, names: set[str]) -> None:
    """``out`` holds exactly the files ``names``, none empty, each PNG a valid PNG image
    wider than 100 pixels."""
    assert {p.name for p in out.iterdir()} == set(names)
    for name in names:
        assert (out / name).stat().st_size > 0, name
        if name.endswith(".png"):
            with Image.open(out / name) as image:
                assert image.format == "PNG" and image.size[0] > 100, name


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


@pytest.fixture(scope="module")
def experiment(request, load_experiment):
    """The test module's script (its ``NAME``), loaded once per module."""
    return load_experiment(request.module.NAME)


@pytest.fixture(scope="module")
def quick(request, experiment, tmp_path_factory):
    """``(result, out, printed)``: what ``main(["--quick", "--out", out])`` of the module's
    script returned, the folder it wrote, and what it printed (stdout, captured)."""
    out = tmp_path_factory.mktemp(request.module.NAME)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = experiment.main(["--quick", "--out", str(out)])
    return result, out, printed.getvalue()
