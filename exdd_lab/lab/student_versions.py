"""The student versions of the lessons: each exercise's solution replaced by a stub, everything else intact.

The committed notebooks are the *master* versions: solved, runnable lessons that ``make run``, papermill and nbval
execute. An exercise's solution lives in a code cell marked the nbgrader way (cell metadata
``nbgrader.solution = true``, the solution between ``### BEGIN SOLUTION`` and ``### END SOLUTION``);
nbgrader's own :class:`~nbgrader.preprocessors.ClearSolutions` replaces it with a stub that raises
:class:`NotImplementedError` naming the exercise, so the check cell after it fails until the student writes the
code. ``exdd-lab lessons --out DIR`` is :func:`write_student_notebooks`; a notebook the student has edited since it
was written is never overwritten.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import nbformat

from exdd_lab.errors import ExddError
from exdd_lab.lab.notebooks import NOTEBOOKS_DIR, list_notebooks
from exdd_lab.storage import atomic_write, atomic_write_json, file_digest

MANIFEST = ".exdd-lessons.json"  # what was written, with each file's digest: an edited file is never overwritten
STUB = ("raise NotImplementedError(\"{exercise}: write this part yourself (its docstring says what), run the cell, "
        "then run the check below\")")


@dataclass
class LessonsWritten:
    """What :func:`write_student_notebooks` did: the notebooks written, and those kept because the student edited them."""

    folder: Path
    written: list[str]
    kept: list[str]

    def describe(self) -> str:
        lines = [f"wrote {len(self.written)} student notebook(s) into {self.folder}"]
        if self.kept:
            lines.append(f"kept {len(self.kept)} you have edited (delete one to get a fresh copy): {', '.join(self.kept)}")
        return "\n".join(lines)


def exercise_cells(nb: nbformat.NotebookNode) -> list[int]:
    """Indices of the cells that hold an exercise's solution (nbgrader metadata ``solution: true``)."""
    return [i for i, cell in enumerate(nb.cells) if cell.get("metadata", {}).get("nbgrader", {}).get("solution")]


def student_version(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` with every exercise's solution replaced by a stub that raises (nbgrader's ClearSolutions)."""
    from nbgrader.preprocessors import ClearSolutions

    student = nbformat.from_dict(json.loads(json.dumps(nb)))
    for index in exercise_cells(student):
        cell = student.cells[index]
        exercise = cell.metadata["nbgrader"].get("grade_id", "this exercise")
        clear = ClearSolutions(code_stub={"python": STUB.format(exercise=exercise)}, enforce_metadata=True)
        student.cells[index], _ = clear.preprocess_cell(cell, {"language": "python"}, index)
        if "### BEGIN SOLUTION" in student.cells[index].source:
            raise ExddError(f"exercise {exercise}: its solution markers were not replaced",
                            "write them as `### BEGIN SOLUTION` / `### END SOLUTION` on lines of their own")
    return student


#: The questionnaires' answers, one section per notebook (``answers.md#notebook-NN``); copied beside the student versions.
ANSWERS = "answers.md"


def write_student_notebooks(out: str | Path, notebooks: list[Path] | None = None) -> LessonsWritten:
    """Write the student version of every lesson into ``out``; a notebook edited there since it was written is kept."""
    out = Path(out)
    if out.resolve() == NOTEBOOKS_DIR.resolve():
        raise ExddError(f"{out} holds the master notebooks", "write the student versions into another folder")
    out.mkdir(parents=True, exist_ok=True)
    record_path = out / MANIFEST
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    written, kept = [], []
    for source in notebooks or list_notebooks():
        target = out / source.name
        if target.exists() and record.get(source.name) != file_digest(target):
            kept.append(source.name)
            continue
        text = nbformat.writes(student_version(nbformat.read(str(source), as_version=4)))
        with atomic_write(target, "w") as handle:
            handle.write(text)
        record[source.name] = file_digest(target)
        written.append(source.name)
    answers = NOTEBOOKS_DIR / ANSWERS
    if answers.is_file():  # the questionnaires' answers, beside the notebooks their links point from
        with atomic_write(out / ANSWERS, "w") as handle:
            handle.write(answers.read_text())
    atomic_write_json(record_path, record)
    return LessonsWritten(out, written, kept)
