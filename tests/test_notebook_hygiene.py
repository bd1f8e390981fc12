"""Committed notebooks stay small and reviewable, and all follow the harness conventions.

Policy: no outputs are committed except the text outputs of cells marked ``# NBVAL_CHECK_OUTPUT``
(nbval compares those); no execution counts; every notebook opens with a papermill ``parameters``
cell and ends by saving its metrics. ``make references`` (or ``exdd_lab.lab.notebooks.strip_outputs``)
restores this state.
"""
import shutil

import nbformat
import pytest

from exdd_lab.lab.notebooks import CHECK_MARK, list_notebooks, strip_outputs

NOTEBOOKS = list_notebooks()
COMMON_PARAMETERS = ("dataset", "layout", "category", "seed", "image_size", "fast", "metrics_path")


def test_there_are_notebooks():
    assert [nb.name[:2] for nb in NOTEBOOKS][:2] == ["00", "01"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_is_small_and_clean(path):
    assert path.stat().st_size < 60_000, f"{path.name} is too large to review; strip its outputs"
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if CHECK_MARK not in cell.source:
            assert cell.execution_count is None, f"{path.name}: execution counts must be stripped"
            assert not cell.outputs, f"{path.name}: outputs of unchecked cells must be stripped:\n{cell.source[:80]}"
        else:
            assert cell.outputs, f"{path.name}: a checked cell needs its reference output (make references)"
        for out in cell.outputs:
            assert out.output_type == "stream", f"{path.name}: only text outputs may be committed"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_follows_harness_conventions(path):
    nb = nbformat.read(str(path), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", []), f"{path.name}: first code cell must be tagged 'parameters'"
    for name in COMMON_PARAMETERS:
        assert f"\n{name} = " in "\n" + code[0].source, f"{path.name}: parameter {name!r} missing"
    assert "save_notebook_metrics(" in code[-1].source, f"{path.name}: the last cell must save the metrics"
    assert nb.cells[0].cell_type == "markdown", f"{path.name}: open with a markdown introduction"
    assert any(CHECK_MARK in c.source for c in code), f"{path.name}: mark at least one cell for nbval"


def test_strip_outputs_removes_everything_but_checked_text(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("print(1)", outputs=[nbformat.v4.new_output("stream", text="1\n")], execution_count=3),
        nbformat.v4.new_code_cell(f"{CHECK_MARK}\nprint(2)", outputs=[nbformat.v4.new_output("stream", text="2\n")]),
        nbformat.v4.new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION",
                                  metadata={"nbgrader": {"solution": True, "grade_id": "Exercise 1"}, "tags": ["x"],
                                            "collapsed": True}),
    ])
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, str(path))
    strip_outputs(path)
    cleaned = nbformat.read(str(path), as_version=4).cells
    assert cleaned[0].outputs == [] and cleaned[0].execution_count is None
    assert cleaned[1].outputs[0]["text"] == "2\n" and cleaned[1].execution_count == 2
    assert cleaned[2].metadata == {"nbgrader": {"solution": True, "grade_id": "Exercise 1"}, "tags": ["x"]}  # exercises survive
    shutil.copy(path, tmp_path / "again.ipynb")
    strip_outputs(tmp_path / "again.ipynb")
    assert (tmp_path / "again.ipynb").read_text() == path.read_text(), "stripping is idempotent"


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.name[:2] in ("03", "04", "05", "06", "07")], ids=lambda p: p.stem)
def test_training_notebooks_take_a_training_seed_apart_from_the_split(path):
    """The references' seed spread re-runs these notebooks with ``train_seed=k``: it must reach what the notebook
    trains or draws, and leave the data split on ``seed`` (a different split is not the spread over trainings)."""
    nb = nbformat.read(str(path), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "\ntrain_seed = None" in "\n" + code[0].source, f"{path.name}: parameter 'train_seed' missing"
    body = "\n".join(c.source for c in code[1:])
    assert "training_seed = seed if train_seed is None else train_seed" in body  # a parameter is never reassigned
    assert body.count("training_seed") >= 2, f"{path.name}: train_seed reaches nothing that trains"
    for line in body.splitlines():
        if "load_dataset(" in line or "subsample(" in line:
            assert "train_seed" not in line and "training_seed" not in line, \
                f"{path.name}: the data split must stay on seed: {line.strip()}"
