"""actok's modules import each other without cycles: every import statement (at the top or inside a function,
where a cycle hides as a lazy import), read with `ast`, is an edge to the actok module it names."""

from __future__ import annotations

import ast
import graphlib
import sys
from pathlib import Path

import pytest

import actok

ROOT = Path(actok.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The actok modules `path` imports: `import a.b`, `from a import b` (module `a.b`, else `a`), relative too."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            out |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}
    return out & modules


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in ROOT.rglob("*.py")}
    return {name: imported_modules(path, set(paths)) - {name} for name, path in paths.items()}


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    assert graph["actok.tokenizers.fast"] >= {"actok.tokenizers._fast_kernels"}  # the walk sees imports
    try:
        list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as err:
        raise AssertionError(f"import cycle: {' -> '.join(err.args[1])}") from None


def test_a_cycle_is_found(tmp_path, monkeypatch):
    """The check itself: two modules importing each other (one lazily, inside a function) are a cycle."""
    package = tmp_path / "actok"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from actok import b\n")
    (package / "b.py").write_text("def f():\n    from actok.a import g\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", package)
    graph = import_graph()
    assert graph["actok.a"] == {"actok.b"} and graph["actok.b"] == {"actok.a"}
    with pytest.raises(graphlib.CycleError):
        list(graphlib.TopologicalSorter(graph).static_order())
