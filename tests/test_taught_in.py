"""The "Taught in" back-links in the package's docstrings are true: each named notebook exists and uses
what the docstring belongs to: its code or its prose names the module (dotted name or a public name) or the function."""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE, NOTEBOOKS = REPO / "exdd_lab", REPO / "notebooks"
LINK = re.compile(r"Taught\s+in\s+(?:``notebooks/(\d\d)_[\w]+\.ipynb``|notebook\s+(\d\d))")


def _notebook_text(number: str) -> str:
    found = sorted(NOTEBOOKS.glob(f"{number}_*.ipynb"))
    assert found, f"notebook {number} does not exist"
    cells = json.loads(found[0].read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells)  # code or prose: a mention either way


def _links() -> list[tuple[str, str, set[str], str]]:
    """(where, notebook number, names that count as a mention, docstring kind) for every back-link."""
    links = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        module = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        public = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and not n.name.startswith("_")}
        targets = [t for n in tree.body if isinstance(n, ast.Assign) for t in n.targets]
        targets += [n.target for n in tree.body if isinstance(n, ast.AnnAssign)]
        public |= {t.id for t in targets if isinstance(t, ast.Name) and not t.id.startswith("_")}
        for match in LINK.finditer(ast.get_docstring(tree) or ""):
            links.append((module, match.group(1) or match.group(2), {module} | public, "module"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                for match in LINK.finditer(ast.get_docstring(node) or ""):
                    links.append((f"{module}.{node.name}", match.group(1) or match.group(2), {node.name}, "function"))
    return links


LINKS = _links()


def test_back_links_are_found():
    assert len(LINKS) > 30  # the pattern still matches how the docstrings write them


@pytest.mark.parametrize("where,number,names,kind", LINKS, ids=[f"{w}->{n}" for w, n, _, _ in LINKS])
def test_back_link_names_a_notebook_that_uses_it(where, number, names, kind):
    code = _notebook_text(number)
    assert any(re.search(rf"\b{re.escape(name)}\b", code) for name in names), \
        f"{where} says it is taught in notebook {number}, which never uses it"
