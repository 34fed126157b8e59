"""Sphinx extension: optlab's API reference and configuration reference, written at build time.

Nothing under ``docs/reference/`` is kept in git: each build regenerates it from the code, so
a name added to a package's ``__all__`` (or a field added to a config dataclass) is never
missing from the site.

* One page per public package (``PACKAGES``, plus every public sub-module a package lists
  in ``__all__``, such as ``optlab.data.augment``): the module docstring, then
  ``autosummary`` tables and ``autofunction``/``autoclass`` entries for every name in
  ``__all__`` (a package without ``__all__`` contributes its public attributes). A name
  re-exported from a more specific package (``optlab.adam`` is documented on ``optlab``;
  ``optlab.constant`` lives on ``optlab.schedules``) is listed with a link to its home.
* ``reference/config.rst``: each config dataclass's fields with type, default and
  description; the description is the field's attribute docstring (a string literal right
  under the field), else its comment, read from the source with ``ast``.
* Every "lecture 0N" in a docstring becomes a link to that lecture's entry in
  ``lectures.md``.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import io
import pathlib
import pkgutil
import pprint
import re
import tokenize
import types

from sphinx.pycode import ModuleAnalyzer

# The public packages, in the order the reference lists them. One that does not import
# (a package being written) is left out.
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
CONFIG_MODULE = "optlab.config"
CONFIG_CLASSES = ["RunConfig", "DataConfig", "ModelConfig", "OptimizerConfig", "TrainConfig"]
OUT = "reference"  # relative to the docs source folder


# ---------------------------------------------------------------------------- names


def public_names(module: types.ModuleType) -> list[str]:
    """``__all__``, or (for a package without one) its public, non-module attributes."""
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    return [
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    ]


def documented_modules() -> list[types.ModuleType]:
    """``PACKAGES`` that import, then the public sub-modules they list, depth first."""
    found: list[types.ModuleType] = []

    def add(module: types.ModuleType) -> None:
        if module in found:
            return
        found.append(module)
        for name in public_names(module):
            value = getattr(module, name, None)
            if inspect.ismodule(value) and value.__name__.startswith(module.__name__ + "."):
                add(value)

    for name in PACKAGES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:
                raise
            continue
        add(module)
    return found


def _kind(obj) -> str:
    if inspect.ismodule(obj):
        return "module"
    if inspect.isclass(obj):
        return "exception" if issubclass(obj, BaseException) else "class"
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        return "function"
    return "data"


def _home(module: types.ModuleType, name: str, modules: list[types.ModuleType]) -> str:
    """The most specific documented module exporting this very object under ``name``."""
    obj = getattr(module, name)
    homes = [
        m.__name__
        for m in modules
        if name in public_names(m) and getattr(m, name, None) is obj and _kind(obj) != "data"
    ]
    return max(homes, key=len) if homes else module.__name__


# ------------------------------------------------------------------- data docstrings


def _submodules(module: types.ModuleType) -> list[str]:
    names = [module.__name__]
    if hasattr(module, "__path__"):
        names += [
            info.name
            for info in pkgutil.walk_packages(module.__path__, module.__name__ + ".")
            if not info.name.endswith("__main__")
        ]
    return names


def _data_doc(module: types.ModuleType, name: str) -> str:
    """The docstring under ``name = ...`` (or its ``#:`` comment) in the module or below."""
    value = getattr(module, name)
    for modname in _submodules(module):
        try:
            docs = ModuleAnalyzer.for_module(modname).find_attr_docs()
        except Exception:  # a module the analyzer cannot read (no source)
            continue
        if ("", name) in docs:
            sub = importlib.import_module(modname)
            if modname == module.__name__ or getattr(sub, name, None) is value:
                return "\n".join(docs[("", name)])
    # an alias ``INITIALIZERS = NAMES``: look the object up under its other names
    for modname in _submodules(module):
        sub = importlib.import_module(modname)
        for other, obj in vars(sub).items():
            if other != name and obj is value and not isinstance(value, (int, str, bool)):
                docs = ModuleAnalyzer.for_module(modname).find_attr_docs()
                if ("", other) in docs:
                    return "\n".join(docs[("", other)])
    return ""


def _short_repr(value) -> str | None:
    text = repr(value)
    return text if len(text) <= 70 and "\n" not in text else None


# ------------------------------------------------------------------------- API pages


def _heading(text: str, char: str) -> str:
    return f"{text}\n{char * len(text)}\n"


def _module_page(module: types.ModuleType, modules: list[types.ModuleType]) -> str:
    modname = module.__name__
    groups: dict[str, list[str]] = {
        "function": [],
        "class": [],
        "exception": [],
        "data": [],
        "module": [],
        "reexport": [],
    }
    for name in public_names(module):
        obj = getattr(module, name)
        kind = _kind(obj)
        if kind == "module":
            groups["module"].append(name)
        elif _home(module, name, modules) != modname:
            groups["reexport"].append(name)
        else:
            groups[kind].append(name)

    out = [
        _heading(modname, "="),
        f".. automodule:: {modname}\n\n",
        f".. currentmodule:: {modname}\n\n",
    ]
    titles = {
        "function": "Functions",
        "class": "Classes",
        "exception": "Exceptions",
    }
    for kind in ("function", "class", "exception"):
        names = groups[kind]
        if not names:
            continue
        out.append(_heading(titles[kind], "-"))
        out.append(".. autosummary::\n   :nosignatures:\n\n")
        out.extend(f"   {name}\n" for name in names)
        out.append("\n")
        for name in names:
            if kind == "function":
                out.append(f".. autofunction:: {name}\n\n")
            else:
                directive = "autoexception" if kind == "exception" else "autoclass"
                out.append(f".. {directive}:: {name}\n   :members:\n")
                if getattr(module, name).__bases__ != (object,):  # "Bases: object" says nothing
                    out.append("   :show-inheritance:\n")
                out.append("\n")
    if groups["data"]:
        out.append(_heading("Constants", "-"))
        for name in groups["data"]:
            value = getattr(module, name)
            out.append(f".. py:data:: {name}\n")
            shown = _short_repr(value)
            if shown is not None:
                out.append(f"   :value: {shown}\n")
            else:
                out.append(f"   :type: {type(value).__name__}\n")
            doc = link_lectures(_data_doc(module, name).splitlines())
            out.append("\n")
            out.extend(f"   {line}\n" if line else "\n" for line in doc)
            out.append("\n")
            if shown is None:  # a longer value: shown in full when it fits a screen
                text = pprint.pformat(value, width=88, compact=True)
                if text.count("\n") < 40:
                    out.append("   .. code-block:: python\n\n")
                    out.extend(f"      {line}\n" for line in text.splitlines())
                    out.append("\n")
    if groups["module"]:
        out.append(_heading("Modules", "-"))
        for name in groups["module"]:
            sub = getattr(module, name)
            summary = (inspect.getdoc(sub) or "").split("\n\n")[0].replace("\n", " ")
            out.append(f"* ``{modname}.{name}``: :mod:`{sub.__name__}`. {summary}\n")
        out.append("\n")
    if groups["reexport"]:
        out.append(_heading("Re-exported here", "-"))
        out.append(f"These names are documented where they are defined; ``{modname}.<name>``\n")
        out.append("is the same object.\n\n")
        by_home: dict[str, list[str]] = {}
        for name in groups["reexport"]:
            by_home.setdefault(_home(module, name, modules), []).append(name)
        for home, names in by_home.items():
            links = ", ".join(f":py:obj:`{modname}.{name} <{home}.{name}>`" for name in names)
            out.append(f"* from :mod:`{home}`: {links}\n")
        out.append("\n")
    return "".join(out)


def _api_index(modules: list[types.ModuleType]) -> str:
    out = [_heading("API reference", "=")]
    out.append(
        "Every public name, one page per package, generated from the docstrings at build\n"
        "time. ``optlab.<name>`` holds the optimizers, the regularizers, the schedules,\n"
        "parameter groups and ``minimize``; the sub-packages hold the rest. Anything whose\n"
        "name starts with ``_`` is private.\n\n"
    )
    out.append(".. toctree::\n   :maxdepth: 1\n\n")
    out.extend(f"   {m.__name__}\n" for m in modules)
    out.append("   config\n")
    return "".join(out)


# ----------------------------------------------------------------- config reference


def _field_notes(cls: type) -> dict[str, str]:
    """Field name → its attribute docstring, else its trailing or preceding comment."""
    path = pathlib.Path(inspect.getsourcefile(cls))
    source = path.read_text()
    tree = ast.parse(source)
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == cls.__name__)
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    lines = source.splitlines()
    notes: dict[str, str] = {}
    body = node.body
    for i, stmt in enumerate(body):
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
            continue
        name = stmt.target.id
        after = body[i + 1] if i + 1 < len(body) else None
        if (
            isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            notes[name] = inspect.cleandoc(after.value.value)
            continue
        text = comments.get(stmt.end_lineno, "")
        if not text:  # comment lines right above the field
            above = []
            line = stmt.lineno - 1
            while line in comments and lines[line - 1].strip().startswith("#"):
                above.insert(0, comments[line])
                line -= 1
            text = " ".join(above)
        notes[name] = text
    return notes


def _default_text(field: dataclasses.Field, classes: dict[type, str]) -> str:
    if field.default is not dataclasses.MISSING:
        return f"``{field.default!r}``"
    factory = field.default_factory
    if factory is dataclasses.MISSING:
        return "(required)"
    if factory in classes:
        return f":ref:`{factory.__name__}() <config-{factory.__name__}>`"
    return f"``{factory()!r}``"


def _cell(text: str, indent: str = " " * 7) -> str:
    lines = text.splitlines() or [""]
    return lines[0] + "".join(f"\n{indent}{line}" if line else "\n" for line in lines[1:])


def _config_page() -> str:
    module = importlib.import_module(CONFIG_MODULE)
    classes = {getattr(module, name): name for name in CONFIG_CLASSES}
    out = [".. _config-reference:\n\n", _heading("Configuration reference", "=")]
    out.append(
        f"The run configuration, ``{CONFIG_MODULE}.RunConfig``, is plain dataclasses:\n"
        "``RunConfig(out=...)`` holds one section of each kind below. The CLI fills them\n"
        "from its flags (``optlab train --help``), ``--config FILE`` from a JSON or YAML\n"
        'mapping of sections (``{"optimizer": {"optimizer": "nesterov"}, ...}``), and\n'
        "every run writes the one it ran to ``config.json``. This page is generated from\n"
        f"the dataclasses in ``{CONFIG_MODULE}``.\n\n"
    )
    for cls, name in classes.items():
        out.append(f".. _config-{name}:\n\n")
        out.append(_heading(name, "-"))
        doc = inspect.getdoc(cls)
        if doc and not doc.startswith(f"{name}("):  # not the dataclass-made signature
            out.append(doc + "\n\n")
        notes = _field_notes(cls)
        out.append(".. list-table::\n   :header-rows: 1\n   :width: 100%\n")
        out.append("   :widths: 16 18 14 52\n\n")
        out.append("   * - field\n     - type\n     - default\n     - description\n")
        for field in dataclasses.fields(cls):
            kind = (
                field.type if isinstance(field.type, str) else inspect.formatannotation(field.type)
            )
            note = "\n".join(link_lectures(notes.get(field.name, "").splitlines()))
            out.append(f"   * - ``{field.name}``\n")
            out.append(f"     - ``{kind}``\n")
            out.append(f"     - {_default_text(field, classes)}\n")
            out.append(f"     - {_cell(note)}\n")
        out.append("\n")
    return "".join(out)


# ------------------------------------------------------- docstring text, made safe

_LECTURES = re.compile(r"\b([Ll]ectures?)(\s+)(0[1-5](?:(?:,\s*|\s*[–/-]\s*|\s+and\s+)0[1-5])*)\b")
_NUMBER = re.compile(r"0[1-5]")
_LITERAL = re.compile(r"(``.+?``|`[^`]+`)")
_TABLE_BORDER = re.compile(r"^\s*(=+(\s+=+)+|\+[-=+]+\+)\s*$")
_ALNUM = re.compile(r"[A-Za-z0-9]")


def _lecture_link(match: re.Match) -> str:
    word, space, numbers = match.groups()
    if word.lower() == "lecture":
        return f":ref:`{word}{space}{numbers} <lecture-{numbers}>`"
    linked = _NUMBER.sub(lambda m: f":ref:`{m.group()} <lecture-{m.group()}>`", numbers)
    return f"{word}{space}{linked}"


def _text_line(line: str) -> str:
    """One line of running text: lecture numbers linked, a bare ``|`` escaped (``|W|²`` is
    a norm, not a substitution), and an inline literal glued to a word (````vmap````ped)
    separated by an escaped space so that docutils sees its end."""
    parts = _LITERAL.split(line)
    for i in range(0, len(parts), 2):  # even parts lie outside inline literals and roles
        text = parts[i].replace("|", r"\|")
        text = _LECTURES.sub(_lecture_link, text)
        if i > 0 and text[:1] and _ALNUM.match(text[0]):
            text = "\\ " + text
        if i + 1 < len(parts) and text[-1:] and _ALNUM.match(text[-1]):
            text += "\\ "
        parts[i] = text
    return "".join(parts)


def link_lectures(lines: list[str]) -> list[str]:
    """Makes docstring text safe for docutils and links "lecture 03" to lectures.md.

    Literal (``::``) and doctest blocks and tables are left exactly as they are."""
    out: list[str] = []
    block: list[str] = []
    opener: int | None = None  # indent of the line that opened a literal block

    def flush() -> None:
        if any(_TABLE_BORDER.match(line) for line in block):
            out.extend(block)
        else:
            out.extend(_text_line(line) for line in block)
        block.clear()

    in_doctest = False
    for line in lines:
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if opener is not None:
            if stripped and indent <= opener:
                opener = None
            else:
                out.append(line)
                continue
        if stripped.startswith(">>>"):
            flush()
            in_doctest = True
        if in_doctest:
            if stripped:
                out.append(line)
                continue
            in_doctest = False
        if not stripped:
            flush()
            out.append(line)
            continue
        if stripped.startswith(".. "):  # a directive or comment: its body is not text
            flush()
            out.append(line)
            opener = indent
            continue
        block.append(line)
        if stripped.endswith("::"):
            flush()
            opener = indent
    flush()
    return out


def _process_docstring(app, what, name, obj, options, lines: list[str]) -> None:
    lines[:] = link_lectures(lines)


_SENTENCE_BEFORE_COLON = re.compile(r"^\s*[A-Za-z]+(?: [A-Za-z]+)+:\s")


def _keep_attribute_summary(app, what, name, obj, options, lines: list[str]) -> None:
    """Runs before napoleon. Napoleon reads a property's (or attribute's) first line as
    ``type: description``; "Epochs completed: the epoch ..." is a sentence, not a type, so
    the line is given an empty type, which napoleon drops."""
    if what in ("attribute", "property", "data") and lines:
        if _SENTENCE_BEFORE_COLON.match(lines[0]):
            lines[0] = ": " + lines[0]


def _skip_member(app, what, name, obj, skip, options):
    # NamedTuple fields: their docstring is "Alias for field number N"; the class's own
    # docstring (and its signature) already names them.
    doc = getattr(obj, "__doc__", None) or ""
    if doc.startswith("Alias for field number"):
        return True
    return None


# ----------------------------------------------------------------------- the hooks


_ALIASES: dict[str, str] = {}  # "optlab.l2_penalty" -> "optlab.regularizers.l2_penalty"


def _resolve_alias(app, env, node, contnode):
    """A reference to a re-exported name (``optlab.constant``) resolves to its home."""
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    home = _ALIASES.get(target) or _ALIASES.get(f"{node.get('py:module')}.{target}")
    if home is None:
        return None
    domain = env.get_domain("py")
    return domain.resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], home, node, contnode
    )


def generate(app) -> None:
    """Writes ``docs/reference/`` before Sphinx reads the sources."""
    out = pathlib.Path(app.srcdir) / OUT
    out.mkdir(exist_ok=True)
    modules = documented_modules()
    for module in modules:
        for name in public_names(module):
            obj = getattr(module, name)
            if inspect.ismodule(obj):
                continue
            home = _home(module, name, modules)
            if home != module.__name__:
                _ALIASES[f"{module.__name__}.{name}"] = f"{home}.{name}"
    pages = {f"{m.__name__}.rst": _module_page(m, modules) for m in modules}
    pages["index.rst"] = _api_index(modules)
    pages["config.rst"] = _config_page()
    for stale in out.glob("*.rst"):
        if stale.name not in pages:
            stale.unlink()
    for filename, text in pages.items():
        path = out / filename
        if not path.exists() or path.read_text() != text:  # unchanged pages stay cached
            path.write_text(text)


def setup(app):
    app.connect("builder-inited", generate)
    app.connect("autodoc-process-docstring", _keep_attribute_summary, priority=400)
    app.connect("autodoc-process-docstring", _process_docstring, priority=600)
    app.connect("autodoc-skip-member", _skip_member)
    app.connect("missing-reference", _resolve_alias)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


__all__ = ["PACKAGES", "documented_modules", "link_lectures", "public_names", "setup"]
