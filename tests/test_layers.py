"""Imports point one way (docs/architecture.md's layer table), with no cycle anywhere.

Every import statement of every module is read, those inside functions too: a lazy import
may keep start-up fast, but it may not point up the table, nor close a cycle that the
module-level imports alone would not show.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "optlab"

# package (or module) -> what it may never import
LOWER = ("optimizers", "schedules", "models", "data", "parallel", "testing", "regularizers")
FORBIDDEN = {
    **{name: ("train", "lab", "cli", "config") for name in LOWER},
    "_param_groups": ("train", "lab", "cli", "config"),
    "_validation": ("train", "lab", "cli", "config"),
    "_minimize": ("train", "lab", "cli", "config"),
    "config": ("train", "lab", "cli"),
    "train": ("lab", "cli"),
    "lab": ("cli",),
}


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _imports(name: str, source: str | None = None) -> list[tuple[str, int]]:
    """(imported optlab module, line) of every import in module ``name`` (or in
    ``source``, read as that module); ``from pkg import sub`` counts as importing
    ``pkg.sub`` when that is a module."""
    path = MODULES.get(name, ROOT / "_.py")
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source if source is not None else path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((sub if sub in MODULES else base, node.lineno))
    return [(m, line) for m, line in found if m == "optlab" or m.startswith("optlab.")]


def _top(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_the_tree_is_read():
    assert {"optlab.errors", "optlab.train.step", "optlab.cli", "optlab.config"} <= set(MODULES)
    assert "optlab.train.spec" in {m for m, _ in _imports("optlab.train.step")}


def test_errors_is_a_leaf():
    assert _imports("optlab.errors") == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_point_down(name):
    forbidden = FORBIDDEN.get(_top(name), ())
    wrong = [
        f"{name}:{line} imports {target}"
        for target, line in _imports(name)
        if _top(target) in forbidden
    ]
    assert not wrong, "\n".join(wrong)


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_even_through_function_level_imports():
    graph = {}
    for name in MODULES:
        # the package optlab's own __init__ re-exports the API; `import optlab` elsewhere
        # means that API, which imports only the lower layers
        graph[name] = {t for t, _ in _imports(name) if t in MODULES and t != name}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_checks_catch_a_bad_import():
    # An optimizer that imports the trainer inside a function, relatively and absolutely.
    source = (
        "def f():\n    from ..train import loop\n    import optlab.cli\n"
        "    from optlab import config as c\n"
    )
    found = {m for m, _ in _imports("optlab.optimizers._bad", source)}
    assert found == {"optlab.train.loop", "optlab.cli", "optlab.config"}
    assert all(_top(m) in FORBIDDEN["optimizers"] for m in found)
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
