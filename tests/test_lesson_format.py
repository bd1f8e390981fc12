"""Every notebook opens and closes like a lesson, typesets its mathematics, and keeps maintenance out of the lesson.

The format (issue "Lessons a student works through"): an opening with 3-5 objectives, prerequisites, time in small
and full mode and what to do when it is slow; a recap of 3-5 points, a questionnaire of 6-10 questions whose answers
are in ``notebooks/answers.md``, references with arXiv or DOI links and a link to the next notebook; maintainer
cells (tagged ``maintainer``) only at the end.
"""
from __future__ import annotations

import re

import nbformat
import pytest

from exdd_lab.lab.notebooks import NOTEBOOKS_DIR, list_notebooks

NOTEBOOKS = list_notebooks()
ANSWERS = (NOTEBOOKS_DIR / "answers.md").read_text()

#: Formulas each notebook must typeset (a fragment of its LaTeX), as the lessons issue lists them.
FORMULAS = {
    "01": [r"s(p) \;=\; \min", r"S(x) \;=\; \max"],
    "02": [r"\min_{\mathcal{C} \subset \mathcal{M}", r"P(S > S')", r"\mathrm{AUPRO}", r"q_{0.025}"],
    "03": [r"q(x_t \mid x_0)", r"\lVert \epsilon - \epsilon_\theta(x_t, t) \big\rVert"],
    "04": [r"R(p) = \frac{d_{\mathrm{neg}}(p)}", r"R_{\mathrm{NA}}(p)", r"G(p) = d_{\mathrm{neg}}(p)", r"V_{10}(X_i)"],
    "05": [r"D_l(y, x) = 1 - \frac", r"L_{\mathrm{focal}}", r"L_{\mathrm{Dice}}"],
}


def _cells(path):
    return nbformat.read(str(path), as_version=4).cells


def _section(cells, heading: str) -> str:
    found = [c.source for c in cells if c.cell_type == "markdown" and c.source.startswith(heading)]
    assert len(found) == 1, f"expected one cell starting with {heading!r}, found {len(found)}"
    return found[0]


def _bullets(text: str) -> list[str]:
    return re.findall(r"^- ", text, re.M)


def _numbered(text: str) -> list[str]:
    return re.findall(r"^\d+\. ", text, re.M)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem[:2] for p in NOTEBOOKS])
def test_a_lesson_opens_with_objectives_prerequisites_and_time(path):
    cells = _cells(path)
    assert cells[0].source.startswith("# "), "the first cell is the title"
    opening = cells[1].source
    assert opening.startswith("## Before you start")
    objectives = opening.split("**After this lesson you can**")[1].split("**Prerequisites:**")[0]
    assert 3 <= len(_bullets(objectives)) <= 5
    for part in ("**Prerequisites:**", "**Time** on a 2-core laptop:", "small mode", "full mode", "**When it is slow:**"):
        assert part in opening, f"{path.name}: the opening lacks {part!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem[:2] for p in NOTEBOOKS])
def test_a_lesson_closes_with_recap_questionnaire_references_and_next(path):
    cells = _cells(path)
    number = path.stem[:2]
    assert 3 <= len(_bullets(_section(cells, "## Recap"))) <= 5
    questionnaire = _section(cells, "## Questionnaire")
    questions = _numbered(questionnaire)
    assert 6 <= len(questions) <= 10
    assert f"(answers.md#notebook-{number})" in questionnaire
    answers = ANSWERS.split(f"## Notebook {number}\n")[1].split("\n## ")[0]
    assert len(_numbered(answers)) == len(questions), f"{path.name}: one answer per question in answers.md"
    references = _section(cells, "## References")
    assert re.search(r"\]\(https://(arxiv\.org/abs/\d{4}\.\d{4,5}|doi\.org/10\.)", references), "references link arXiv or DOI"
    following = [p for p in NOTEBOOKS if p.name > path.name]
    target = following[0].name if following else NOTEBOOKS[0].name
    assert f"]({target})" in references, f"{path.name}: the closing links the next notebook ({target})"
    order = [i for i, c in enumerate(cells) if c.cell_type == "markdown"
             and c.source.startswith(("## Recap", "## Questionnaire", "## References"))]
    assert order == sorted(order) and len(order) == 3


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem[:2] for p in NOTEBOOKS])
def test_maintenance_stays_out_of_the_lesson(path):
    cells = _cells(path)
    tagged = [i for i, c in enumerate(cells) if "maintainer" in c.metadata.get("tags", [])]
    assert tagged and tagged == list(range(len(cells) - len(tagged), len(cells))), \
        f"{path.name}: maintainer cells must close the notebook, all of them together"
    assert "save_notebook_metrics" in cells[-1].source and cells[-1].cell_type == "code"
    for i, cell in enumerate(cells):
        if i in tagged:
            continue
        if cell.cell_type == "markdown":
            assert not re.search(r"\bCI\b|nbval|papermill", cell.source), f"{path.name} cell {i} speaks of CI"
        assert "unreferenced(" not in cell.source, f"{path.name} cell {i}: unreferenced() belongs to the maintainer cells"


@pytest.mark.parametrize("number,fragments", sorted(FORMULAS.items()))
def test_the_mathematics_is_typeset(number, fragments):
    path = next(p for p in NOTEBOOKS if p.stem.startswith(number))
    display = "\n".join(m for c in _cells(path) if c.cell_type == "markdown" for m in re.findall(r"\$\$(.*?)\$\$", c.source, re.S))
    for fragment in fragments:
        assert fragment in display, f"{path.name}: no displayed formula holds {fragment!r}"


def test_every_link_between_lessons_points_at_a_notebook_or_the_answers():
    names = {p.name for p in NOTEBOOKS} | {"answers.md"}
    for path in NOTEBOOKS:
        for cell in _cells(path):
            if cell.cell_type == "markdown":
                for target in re.findall(r"\]\(([^)#:]+\.(?:ipynb|md))(?:#[^)]*)?\)", cell.source):
                    assert target in names, f"{path.name} links {target}, which is not a lesson"
    for number in (p.stem[:2] for p in NOTEBOOKS):
        assert f"## Notebook {number}\n" in ANSWERS
