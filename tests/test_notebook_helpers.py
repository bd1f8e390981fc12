"""Notebook helpers: parameters resolved per mode without overwriting what papermill set, and the source
display the lessons use; and no notebook reassigns a parameter behind the reader's back."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from exdd_lab.lab.notebooks import NOTEBOOKS_DIR, mode_parameters, show_source


def test_given_values_win_and_none_takes_the_mode_default(capsys):
    assert mode_parameters(True, epochs=(None, 6, 3), n=(50, 200, 16)) == (3, 50)
    assert mode_parameters(False, epochs=(None, 6, 3), n=(50, 200, 16)) == (6, 50)
    printed = capsys.readouterr().out
    assert "epochs=3 (fast-mode default)" in printed and "n=50 (given)" in printed and "epochs=6 (full-mode default)" in printed


def test_show_source_shows_the_functions_that_run():
    from exdd_lab.bank.coreset import greedy_k_center
    from exdd_lab.methods.exdd.ratio import gated_scores, ratio_scores

    code = show_source(ratio_scores, gated_scores).data
    assert "def ratio_scores(" in code and "def gated_scores(" in code
    assert show_source(greedy_k_center).data.startswith("def greedy_k_center(")


def _parameters_and_later_assignments(path: Path) -> tuple[set[str], list[tuple[str, int, str]]]:
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    params = {t.id for node in ast.parse("".join(cells[0]["source"])).body if isinstance(node, ast.Assign)
              for t in node.targets if isinstance(t, ast.Name)}
    found = []
    for number, cell in enumerate(cells[1:], 1):
        for node in ast.walk(ast.parse("".join(cell["source"]))):
            if not isinstance(node, ast.Assign):
                continue
            names = {n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)} & params
            via_helper = isinstance(node.value, ast.Call) and getattr(node.value.func, "id", "") == "mode_parameters"
            if names and not via_helper:
                found.append((", ".join(sorted(names)), number, ast.unparse(node)[:80]))
    return params, found


@pytest.mark.parametrize("path", sorted(NOTEBOOKS_DIR.glob("*.ipynb")), ids=lambda p: p.stem)
def test_no_notebook_overwrites_its_parameters(path):
    params, found = _parameters_and_later_assignments(path)
    assert {"fast", "seed"} <= params
    assert not found, f"{path.name} reassigns parameters (use mode_parameters): {found}"


def test_small_mode_warns_when_it_cuts_a_users_data_set(tiny_mvtec, recwarn):
    """`subsample` says, visibly, that a notebook uses part of a data set that is not the procedural default."""
    from exdd_lab import load_dataset
    from exdd_lab.lab.notebooks import subsample

    ds = load_dataset(str(tiny_mvtec), "mvtec", seed=0)
    with pytest.warns(UserWarning, match=r"small mode: this notebook uses 4 of 8 training and .* test images"):
        small = subsample(ds, n_train=4, n_test=5, seed=0)
    assert len(small.train) == 4
    recwarn.clear()
    assert len(subsample(ds, n_train=100, n_test=100, seed=0).train) == 8  # nothing cut: nothing to say
    assert not [w for w in recwarn if "small mode" in str(w.message)]
    procedural = load_dataset("procedural", "procedural", seed=0)
    subsample(procedural, n_train=4, n_test=5, seed=0)  # the lessons' own default: no warning
    assert not [w for w in recwarn if "small mode" in str(w.message)]
