"""The package's shape: subpackages are floors that import only from the floors below them, no two files import
each other in a loop, and the top level holds only what every floor shares.

The imports are read from the source (``ast``), at any depth: inside functions and ``TYPE_CHECKING`` blocks too, so
a lazy import cannot hide an upward dependency.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "exdd_lab"

#: The floors, lowest first. A subpackage imports only from floors below it (and from the top-level helpers).
FLOORS = ("components", "data", "features", "bank", "synthesis", "student_teacher", "methods", "export", "evaluation",
          "archive", "plots", "experiments", "analyst", "lab")
#: The only top-level modules besides the package face and ``__main__``: ``cli`` on top, the rest under every floor.
CROSS_CUTTING = ("errors", "seeding", "storage", "numerics")
TOP_LEVEL = ("cli", *CROSS_CUTTING)
MAX_TOP_LEVEL_MODULES = 8


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")


def _imports(path: Path) -> set[str]:
    """Every ``exdd_lab`` module a file imports, at any depth (inside functions and TYPE_CHECKING too)."""
    module = _module_name(path)
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("exdd_lab")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("exdd_lab"):
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found - {module}


def _import_graph() -> dict[str, set[str]]:
    """``module -> modules of the package it imports`` (its own parent packages and the package face left out)."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {m: {i for i in _imports(p) if i in files and not m.startswith(i + ".") and i != "exdd_lab"}
            for m, p in files.items()}


def _place(module: str) -> str:
    """The floor or top-level module a module belongs to: ``exdd_lab.bank.memory`` -> ``bank``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Every import that runs sideways or upwards between floors, or out of a top-level helper, as a sentence."""
    rank = {floor: i for i, floor in enumerate(FLOORS)}
    found = []
    for module, imported in sorted(graph.items()):
        here = _place(module)
        if module in ("exdd_lab", "exdd_lab.__main__") or here == "cli":
            continue  # the face and the command line sit above everything
        for target in sorted(imported):
            there = _place(target)
            if there == here or there in CROSS_CUTTING:
                continue
            if here in CROSS_CUTTING:
                found.append(f"{module} (a top-level helper) imports {target}")
            elif there == "cli":
                found.append(f"{module} imports the command line ({target})")
            elif rank[there] >= rank[here]:
                found.append(f"{module} (floor {here}) imports {target} (floor {there}, not below it)")
    return found


def test_no_import_cycle_between_modules():
    graph = _import_graph()
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(trail[trail.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_top_level_holds_only_the_cross_cutting_modules():
    modules = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__"))
    assert len(modules) <= MAX_TOP_LEVEL_MODULES, f"{len(modules)} top-level modules: {modules}"
    assert set(modules) <= set(TOP_LEVEL), f"top-level modules outside {TOP_LEVEL}: {set(modules) - set(TOP_LEVEL)}"


def test_every_subpackage_is_a_floor_and_says_what_it_holds_and_never_does():
    subpackages = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))
    assert sorted(FLOORS) == subpackages, "place a new subpackage in FLOORS (and README's layout) or remove it"
    for name in subpackages:
        doc = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text())) or ""
        assert len(doc) > 80 and "never" in doc.lower(), f"exdd_lab/{name}/__init__.py must say what it holds and never does"


def test_floors_import_only_downwards():
    violations = layer_violations(_import_graph())
    assert not violations, "\n".join(violations)


@pytest.mark.parametrize("module,target", [
    ("exdd_lab.methods.registry", "exdd_lab.export.runtime"),  # the lazy import this layering removed
    ("exdd_lab.features.patches", "exdd_lab.bank.memory"),
    ("exdd_lab.errors", "exdd_lab.data.records"),
    ("exdd_lab.lab.runner", "exdd_lab.cli"),
])
def test_the_layer_check_catches_an_upward_import(module, target):
    graph = _import_graph()
    graph[module] = graph[module] | {target}
    assert any(module in v and target in v for v in layer_violations(graph))
