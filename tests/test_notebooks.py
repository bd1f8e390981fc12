"""Every notebook runs headlessly and reproduces its committed numbers (see README: notebook regression).

Each notebook is executed with papermill for every reference run (the procedural default, and
MTD when ``../shared/data/mtd`` exists), on the harness's pinned numeric path
(:func:`exdd_lab.numerics.harness_environment`; ``EXDD_LAB_ISA`` / ``EXDD_LAB_THREADS`` choose another),
and its metrics JSON is compared with ``tests/reference/notebook_metrics.json`` within the tolerances
and above the chance floors stored there. The harness itself is tested too: a deliberately broken
method must fail it.
"""
import json
import shutil

import pytest

from exdd_lab.lab.book import EXECUTED_DIR
from exdd_lab.lab.notebooks import NOTEBOOKS_DIR, execute_notebook, list_notebooks, reference_runs
from exdd_lab.lab.references import compare_metrics, load_references
from exdd_lab.numerics import harness_environment
from exdd_lab.storage import atomic_path

RUNS = reference_runs()
CASES = [(nb, run) for nb in list_notebooks() for run in ("procedural", "mtd")]


def run_and_compare(notebook, run, tmp_path, extra_env=None) -> list[str]:
    reference = load_references().get(notebook.stem, {}).get(run)
    assert reference, f"no reference numbers for {notebook.stem} on {run}: run `make references` and commit them"
    metrics_file = tmp_path / "metrics.json"
    execute_notebook(notebook, tmp_path / notebook.name, dict(RUNS[run], metrics_path=str(metrics_file)),
                     env={**harness_environment(), **(extra_env or {})})
    return compare_metrics(json.loads(metrics_file.read_text()), reference)


@pytest.mark.notebooks
@pytest.mark.parametrize("notebook,run", CASES, ids=[f"{nb.stem}-{run}" for nb, run in CASES])
def test_notebook_matches_reference(notebook, run, tmp_path):
    if run not in RUNS:
        pytest.skip("real data not available: ../shared/data/mtd is missing (it is present in CI)")
    problems = run_and_compare(notebook, run, tmp_path)
    if run == "procedural":  # kept for the book (tests/test_book.py builds from these, it does not execute again)
        with atomic_path(EXECUTED_DIR / notebook.name) as staged:
            shutil.copyfile(tmp_path / notebook.name, staged)
    assert not problems, f"{notebook.name} on {run} drifted from its reference:\n" + "\n".join(problems)


# Code an IPython startup file runs in the kernel before the notebook: PatchCore made useless in two ways.
BREAKAGES = {
    "constant_map": "p.maps[...] = 1.0\n    p.scores = np.ones_like(p.scores)",
    "shuffled_scores": "order = np.random.default_rng(7).permutation(len(p.scores))\n"
                       "    p.scores, p.maps = p.scores[order], p.maps[order]",
}


@pytest.mark.notebooks
@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_a_broken_method_fails_the_regression(breakage, tmp_path):
    """PatchCore's predictions replaced by a constant map, or shuffled between images, inside the real
    notebook 02 run: the harness must report its quality numbers, not pass them."""
    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00_break_patchcore.py").write_text(
        "import numpy as np\nfrom exdd_lab.methods.patchcore import PatchCore\n_predict = PatchCore.predict\n"
        "def _broken(self, *args, **kwargs):\n    p = _predict(self, *args, **kwargs)\n"
        f"    {BREAKAGES[breakage]}\n    return p\nPatchCore.predict = _broken\n")
    problems = run_and_compare(NOTEBOOKS_DIR / "02_negative_only_baselines.ipynb", "procedural", tmp_path,
                               {"IPYTHONDIR": str(tmp_path / "ipython")})
    failed = {line.split(":")[0] for line in problems}
    assert {"image_auroc", "image_ap", "f1_max"} <= failed, problems
    if breakage == "constant_map":
        assert {"pixel_auroc", "aupro"} <= failed, problems
        assert any("chance floor" in line for line in problems), problems
