"""Sphinx configuration for optlab's documentation.

Build: ``pip install -e ".[docs]" && sphinx-build -W -b html docs docs/_build/html``.
The API and configuration references (``docs/reference/``) are generated at build time
by ``docs/_ext/optlab_docs.py``; the guides are MyST Markdown.
"""

import os
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent))  # the optlab in this checkout, installed or not

# Importing optlab imports jax; the docs need no accelerator and no device memory.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import optlab  # noqa: E402

project = "optlab"
author = "optlab authors"
copyright = "optlab authors"
release = version = optlab.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "myst_parser",
    "optlab_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []

# --- MyST (the guides, architecture and lecture pages) ---
myst_enable_extensions = ["colon_fence", "deflist", "dollarmath"]
myst_heading_anchors = 3

# --- autodoc / autosummary / napoleon (the API reference) ---
default_role = "py:obj"  # `name` in a docstring links to it when it is documented
autosummary_generate = False  # the pages come from optlab_docs, one per package
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True  # show ``learning_rate=1e-3``, not a re-evaluated repr
autodoc_inherit_docstrings = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_include_init_with_doc = False
napoleon_use_rtype = False
napoleon_use_ivar = False
napoleon_attr_annotations = True
# "Example:" and "References:" stay as headed paragraphs (napoleon's default rubrics).

# --- HTML ---
html_theme = "furo"
html_title = f"optlab {release}"
html_static_path: list[str] = []
pygments_style = "friendly"
pygments_dark_style = "monokai"
