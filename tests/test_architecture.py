"""The layout ARCHITECTURE.md promises, checked on the source: no import cycles (function-level
imports included: a cycle hidden inside a function still ties two modules' fates together), and
the engine never imports the studio or gradio, so `e2gan` installs and runs without a UI."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("e2gan", "app")


def find_modules(root: Path, packages=PACKAGES) -> dict[str, Path]:
    modules = {}
    for package in packages:
        for path in (root / package).rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported_names(name: str, path: Path) -> set[str]:
    """Every module `name` imports, anywhere in its body, as written (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Each module -> the project's modules that importing it runs: each one it names, and the
    packages between (importing `a.b.c` runs `a/b/__init__.py` first)."""
    graph = {}
    for name, path in modules.items():
        targets = set()
        for imported in imported_names(name, path):
            while imported and imported not in modules and "." in imported:
                imported = imported.rsplit(".", 1)[0]
            while imported in modules and imported not in PACKAGES:
                if imported != name and not name.startswith(imported + "."):
                    targets.add(imported)
                imported = imported.rsplit(".", 1)[0]
        graph[name] = targets
    return graph


def import_cycle(modules: dict[str, Path]) -> list[str] | None:
    try:
        TopologicalSorter(import_graph(modules)).prepare()
    except CycleError as error:
        return error.args[1]
    return None


def test_the_project_has_no_import_cycles():
    assert import_cycle(find_modules(ROOT)) is None


def test_the_cycle_check_sees_a_cycle_hidden_in_a_function_and_through_a_package(tmp_path):
    package = tmp_path / "e2gan" / "inner"
    package.mkdir(parents=True)
    (tmp_path / "e2gan" / "__init__.py").write_text("")
    (tmp_path / "e2gan" / "first.py").write_text("from e2gan.second import thing\n")
    (tmp_path / "e2gan" / "second.py").write_text("def later():\n    from e2gan import first\n")
    assert set(import_cycle(find_modules(tmp_path, ("e2gan",)))) == {"e2gan.first", "e2gan.second"}
    (tmp_path / "e2gan" / "second.py").write_text("thing = 1\n")
    assert import_cycle(find_modules(tmp_path, ("e2gan",))) is None
    # importing a submodule runs its package's __init__: a cycle through it is still one
    (package / "__init__.py").write_text("from e2gan import first\n")
    (package / "leaf.py").write_text("")
    (tmp_path / "e2gan" / "second.py").write_text("from e2gan.inner import leaf\n")
    assert "e2gan.inner" in import_cycle(find_modules(tmp_path, ("e2gan",)))


@pytest.mark.parametrize("forbidden", ["app", "gradio"])
def test_the_engine_never_imports_the_studio(forbidden):
    offenders = sorted(name for name, path in find_modules(ROOT).items() if name.startswith("e2gan")
                       if any(imported == forbidden or imported.startswith(forbidden + ".")
                              for imported in imported_names(name, path)))
    assert not offenders, f"e2gan modules importing {forbidden}: {offenders}"
