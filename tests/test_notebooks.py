"""Every notebook runs headlessly and reproduces its committed numbers (see README: notebook regression).

Each notebook is executed with papermill for every reference run (the procedural default, and
MTD when ``../shared/data/mtd`` exists), and its metrics JSON is compared with
``tests/reference/notebook_metrics.json`` within the tolerances stored there.
"""
import json

import pytest

from exdd_lab.notebooks import compare_metrics, execute_notebook, list_notebooks, load_references, reference_runs

RUNS = reference_runs()
CASES = [(nb, run) for nb in list_notebooks() for run in ("procedural", "mtd")]


@pytest.mark.notebooks
@pytest.mark.parametrize("notebook,run", CASES, ids=[f"{nb.stem}-{run}" for nb, run in CASES])
def test_notebook_matches_reference(notebook, run, tmp_path):
    if run not in RUNS:
        pytest.skip("real data not available: ../shared/data/mtd is missing (it is present in CI)")
    reference = load_references().get(notebook.stem, {}).get(run)
    assert reference, f"no reference numbers for {notebook.stem} on {run}: run `make references` and commit them"
    metrics_file = tmp_path / "metrics.json"
    execute_notebook(notebook, tmp_path / notebook.name, dict(RUNS[run], metrics_path=str(metrics_file)))
    problems = compare_metrics(json.loads(metrics_file.read_text()), reference)
    assert not problems, f"{notebook.name} on {run} drifted from its reference:\n" + "\n".join(problems)
