"""The documentation site: it builds with warnings as errors, and its generated reference
lists every public name and every config field.

The build test runs ``sphinx-build`` (the ``docs`` extra: ``pip install -e ".[docs]"``) in a
subprocess; it is skipped when Sphinx is not installed.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# The public packages whose ``__all__`` the API reference must cover.
PACKAGES = [
    "optlab",
    "optlab.errors",
    "optlab.schedules",
    "optlab.regularizers",
    "optlab.testing",
    "optlab.train",
    "optlab.parallel",
    "optlab.lab",
    "optlab.data",
    "optlab.models",
    "optlab.config",
]
CONFIG_CLASSES = ["RunConfig", "DataConfig", "ModelConfig", "OptimizerConfig", "TrainConfig"]


def _public(module) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:  # a package without __all__: its public, non-module attributes
        names = [
            n for n, v in vars(module).items() if not n.startswith("_") and not inspect.ismodule(v)
        ]
    return list(names)


def _packages() -> list:
    found = []
    for name in PACKAGES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:
                raise
            continue
        found.append(module)
        # a public sub-module listed in __all__ (optlab.data.augment) gets its own page
        for attr in _public(module):
            value = getattr(module, attr)
            if inspect.ismodule(value) and value.__name__.startswith(name + "."):
                found.append(value)
    return found


def _extension():
    pytest.importorskip("sphinx")
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        return importlib.import_module("optlab_docs")
    finally:
        sys.path.remove(str(DOCS / "_ext"))


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> pathlib.Path:
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_parser")
    pytest.importorskip("furo")
    out = tmp_path_factory.mktemp("docs")
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    cmd = [sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html"]
    cmd += ["-d", str(out / "doctrees"), str(DOCS), str(out / "html")]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"sphinx-build -W failed:\n{done.stdout}\n{done.stderr}"
    return out / "html"


@pytest.mark.slow
def test_every_public_name_has_its_api_page(html: pathlib.Path):
    missing = []
    for module in _packages():
        page = html / "reference" / f"{module.__name__}.html"
        assert page.is_file(), f"no API page for {module.__name__}"
        text = page.read_text()
        for name in _public(module):
            full = f"{module.__name__}.{name}"
            # documented on this page (its anchor), or listed with a link to its home
            if f'id="{full}"' not in text and f'<span class="pre">{full}</span>' not in text:
                missing.append(full)
    assert not missing, f"names in __all__ missing from the API pages: {missing}"


@pytest.mark.slow
def test_config_reference_lists_every_field(html: pathlib.Path):
    config = importlib.import_module("optlab.config")
    text = (html / "reference" / "config.html").read_text()
    for cls_name in CONFIG_CLASSES:
        start = text.find(f'<section id="{cls_name.lower()}"')
        assert start >= 0, f"no section for {cls_name}"
        end = text.find("<section", start + 1)
        section = text[start : end if end > 0 else len(text)]
        for field in dataclasses.fields(getattr(config, cls_name)):
            assert f'<span class="pre">{field.name}</span>' in section, f"{cls_name}.{field.name}"


@pytest.mark.slow
def test_each_lecture_has_an_anchor(html: pathlib.Path):
    text = (html / "lectures.html").read_text()
    for number in ("01", "02", "03", "04", "05"):
        assert f'id="lecture-{number}"' in text
    # a docstring's "lecture 04" links there
    api = (html / "reference" / "optlab.html").read_text()
    assert "lectures.html#lecture-04" in api


def test_config_notes_read_attribute_docstrings_then_comments(tmp_path, monkeypatch):
    ext = _extension()
    source = textwrap.dedent(
        '''
        import dataclasses

        @dataclasses.dataclass
        class Example:
            steps: int = 10
            """How many updates; None: run the epochs."""
            seed: int = 0  # the run's one seed
            # comment lines right above a field
            # are joined
            mode: str = "minibatch"
            bare: bool = False
        '''
    )
    (tmp_path / "example_config_mod.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("example_config_mod")
    notes = ext._field_notes(module.Example)
    assert notes == {
        "steps": "How many updates; None: run the epochs.",
        "seed": "the run's one seed",
        "mode": "comment lines right above a field are joined",
        "bare": "",
    }


def test_lecture_links_leave_literals_alone():
    ext = _extension()
    lines = [
        "Lecture 04's momentum, as ``lecture 04`` writes it (lectures 01, 02)::",
        "",
        "    Δ ← μΔ − g   (lecture 04)",
        "",
        ">>> f(1)  # lecture 02",
        "1.0 (lecture 02)",
        "",
        "the norm |W|² and ``vmap``ped steps",
    ]
    out = ext.link_lectures(lines)
    assert out[0].startswith(":ref:`Lecture 04 <lecture-04>`'s momentum, as ``lecture 04``")
    assert ":ref:`01 <lecture-01>`, :ref:`02 <lecture-02>`" in out[0]
    assert out[1:7] == lines[1:7]  # the literal block, the doctest and its output
    assert out[7] == r"the norm \|W\|² and ``vmap``\ ped steps"
