"""The course as a static, offline HTML book: the executed notebooks, navigable and searchable, formulas typeset.

Sphinx with myst-nb reads the notebooks *as executed* (``nb_execution_mode = "off"``: nothing runs a second time),
the Furo theme gives the sidebar, previous/next links and the search page, and MathJax comes from the copy bundled
in ``sphinx-mathjax-offline``, so the book opens from ``file://`` with no network. (Jupyter Book 2 downloads its
theme when it builds; Jupyter Book 1 is this same Sphinx + myst-nb stack with more pinned dependencies.)

The executed notebooks come from a folder of ``<notebook>.ipynb`` files: a ``make run`` folder (``runs/<id>/``), or
the regression run's copies (``runs/executed/``, written by ``tests/test_notebooks.py``). Cells tagged ``maintainer``
are removed from the pages; widgets appear as the static output a headless run draws.

    python -m exdd_lab.lab.book [--from runs/<id>] [--out runs/book]   # prints the path of index.html
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

from exdd_lab.errors import ExddError
from exdd_lab.lab.notebooks import NOTEBOOKS_DIR, REPO_ROOT, list_notebooks
from exdd_lab.lab.student_versions import ANSWERS

#: Where the regression run keeps its executed notebooks (the procedural default), for the book.
EXECUTED_DIR = REPO_ROOT / "runs" / "executed"
DEFAULT_OUT = REPO_ROOT / "runs" / "book"
HIDDEN_TAG = "maintainer"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

CONF = '''
project = "exdd_lab: defect detection, lesson by lesson"
extensions = ["myst_nb", "sphinx.ext.mathjax", "sphinx-mathjax-offline"]
nb_execution_mode = "off"                      # the notebooks arrive executed
nb_ipywidgets_js = {}                          # no widget manager from a CDN: widgets show their static output
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 2                       # answers.md#notebook-00 is a heading's anchor
html_theme = "furo"
html_title = project
html_show_sourcelink = False
exclude_patterns = ["_build"]
suppress_warnings = ["mystnb.unknown_mime_type", "myst.header"]
'''


def find_executed(source: str | Path | None = None) -> Path:
    """The folder of executed notebooks to build from: ``source``, else the newest ``runs/<id>/`` or the regression
    run's ``runs/executed/`` holding every lesson. Raises :class:`ExddError` saying how to make one."""
    names = [nb.name for nb in list_notebooks()]

    def complete(folder: Path) -> bool:
        return all((folder / name).is_file() for name in names)

    if source is not None:
        folder = Path(source)
        if not complete(folder):
            missing = [n for n in names if not (folder / n).is_file()]
            raise ExddError(f"{folder} lacks executed notebooks: {', '.join(missing)}",
                            "point --from at a `make run` folder (runs/<id>/), or run `make run` first")
        return folder
    candidates = [p for p in (REPO_ROOT / "runs").glob("*") if p.is_dir() and complete(p)]
    if not candidates:
        raise ExddError("no executed notebooks found under runs/",
                        "run `make run` (the notebooks, small mode, about 7 minutes), then `make book` again")
    # the procedural default first (the lessons' own data, as `make run` labels it), then the newest
    return max(candidates, key=lambda p: (p.name.endswith("procedural") or p == EXECUTED_DIR,
                                          max((p / n).stat().st_mtime for n in names)))


def _page(executed: Path, master: Path) -> nbformat.NotebookNode:
    """An executed notebook ready for a page: maintainer cells removed, the master's cell tags kept."""
    nb = nbformat.read(str(executed), as_version=4)
    nb.metadata.pop("widgets", None)  # widget state would make myst-nb load a widget manager from a CDN
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            output.get("data", {}).pop(WIDGET_VIEW, None)  # a widget's text/plain (or static) fallback stays
    nb.cells = [c for c in nb.cells
                if HIDDEN_TAG not in c.get("metadata", {}).get("tags", [])
                and "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    if not any(c.cell_type == "markdown" and c.source.startswith("## Recap") for c in nb.cells):
        raise ExddError(f"{executed} is not an executed lesson of this version (no recap)",
                        f"execute the notebooks of {master.parent} again (`make run`)")
    return nb


def _executed_on(executed: Path) -> str:
    """What the notebooks were run on, from the first lesson's injected parameters (``dataset``, ``fast``)."""
    nb = nbformat.read(str(executed / list_notebooks()[0].name), as_version=4)
    injected = next((c.source for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])), "")
    dataset = next((line.split("=", 1)[1].strip().strip("\"'") for line in injected.splitlines()
                    if line.startswith("dataset")), "procedural")
    small = "fast = False" not in injected
    return f"{'the small mode' if small else 'the full mode'} on {Path(dataset).name}"


def write_sources(executed: Path, folder: Path) -> list[str]:
    """The Sphinx source: conf.py, index.md (the table of contents), the pages and the answers; returns the pages."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "conf.py").write_text(CONF)
    pages = []
    for master in list_notebooks():
        nbformat.write(_page(executed / master.name, master), str(folder / master.name))
        pages.append(master.stem)
    shutil.copyfile(NOTEBOOKS_DIR / ANSWERS, folder / ANSWERS)
    index = ["# Defect detection, lesson by lesson", "",
             f"Nine lessons, as executed in {_executed_on(executed)}: read them here, work them in JupyterLab "
             "(`exdd-lab lessons --out my-lessons` writes the versions whose exercises you solve).", "",
             "```{toctree}", ":maxdepth: 1", ":caption: Lessons", "", *pages, "```", "",
             "```{toctree}", ":maxdepth: 1", ":caption: After the lessons", "", Path(ANSWERS).stem, "```", ""]
    (folder / "index.md").write_text("\n".join(index))
    return pages


def build_book(source: str | Path | None = None, out: str | Path = DEFAULT_OUT) -> Path:
    """Build the book from executed notebooks into ``out`` (replaced as a whole); returns ``out/index.html``."""
    executed = find_executed(source)
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="exdd-book-") as tmp:
        src, html = Path(tmp) / "src", Path(tmp) / "html"
        write_sources(executed, src)
        done = subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-q", "-j", "1", str(src), str(html)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise ExddError(f"sphinx could not build the book from {executed}:\n{done.stderr[-3000:]}",
                            "read the error above; `pip install -e .[dev]` installs sphinx, myst-nb, furo and "
                            "sphinx-mathjax-offline")
        staged = out.with_name(out.name + ".partial")
        shutil.rmtree(staged, ignore_errors=True)
        shutil.copytree(html, staged)
        (staged / "built-from.json").write_text(json.dumps({"executed": str(executed)}))
        shutil.rmtree(out, ignore_errors=True)
        staged.rename(out)  # a half-built book never replaces a whole one
    return out / "index.html"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the lessons into an offline HTML book.")
    parser.add_argument("--from", dest="source", default=None,
                        help="folder of executed notebooks (default: the newest complete runs/<id>/ or runs/executed/)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help=f"where the book goes (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    try:
        index = build_book(args.source, args.out)
    except ExddError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(index)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
