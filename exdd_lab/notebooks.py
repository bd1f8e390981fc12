"""The headless notebook harness: execute notebooks with parameters, record and compare their numbers.

Every notebook starts with a papermill ``parameters`` cell and ends with
:func:`save_notebook_metrics`. The regression test executes each notebook and compares its
metrics JSON with ``tests/reference/notebook_metrics.json`` within the tolerances stored there;
``make references`` regenerates that file on purpose (see README).
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

from exdd_lab.storage import atomic_write_json

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
REFERENCE_FILE = REPO_ROOT / "tests" / "reference" / "notebook_metrics.json"
CHECK_MARK = "# NBVAL_CHECK_OUTPUT"
DEFAULT_ABS_TOL = 1e-3
DEFAULT_REL_TOL = 1e-3


def list_notebooks(folder: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The notebook sequence, in order (file names start with their number)."""
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


def default_metrics_path(name: str) -> Path:
    """Where a notebook writes its metrics when no ``metrics_path`` is given."""
    folder = Path(os.environ.get("EXDD_LAB_METRICS_DIR", REPO_ROOT / "runs" / "notebook-metrics"))
    return folder / f"{name}.json"


def artefact_dir(metrics_path: str | Path = "") -> Path:
    """Where a notebook writes files beyond its metrics (tables, figures): beside its metrics JSON, so a
    run folder collects them."""
    return Path(metrics_path).parent if metrics_path else default_metrics_path("x").parent


def save_notebook_metrics(name: str, metrics: dict, path: str | Path = "") -> Path:
    """Write a notebook's key numbers (the last cell of every notebook). Returns the path."""
    target = Path(path) if path else default_metrics_path(name)
    atomic_write_json(target, {"notebook": name, **metrics})
    return target


def execute_notebook(
    notebook: str | Path,
    output: str | Path,
    parameters: dict | None = None,
    timeout: int | None = 1800,
    progress: bool = False,
) -> float:
    """Run a notebook headlessly with papermill (cwd = its folder). Returns seconds taken.

    ``timeout`` limits each cell (seconds; ``None``: no limit, for full-mode runs whose sweeps take long).

    Raises papermill's ``PapermillExecutionError`` naming the failing cell if a cell fails. The kernel
    sees ``EXDD_LAB_HEADLESS=1``, so notebooks draw static figures where a person would get widgets.
    """
    import papermill as pm

    notebook = Path(notebook)
    start = time.perf_counter()
    previous = os.environ.get("EXDD_LAB_HEADLESS")
    os.environ["EXDD_LAB_HEADLESS"] = "1"  # the kernel inherits this process's environment
    try:
        pm.execute_notebook(
            str(notebook), str(output), parameters=parameters or {}, cwd=str(notebook.parent),
            kernel_name="python3", language="python", progress_bar=progress, execution_timeout=timeout, log_output=False,
        )
    finally:
        if previous is None:
            os.environ.pop("EXDD_LAB_HEADLESS", None)
        else:
            os.environ["EXDD_LAB_HEADLESS"] = previous
    return time.perf_counter() - start


def compare_metrics(actual: dict, reference: dict) -> list[str]:
    """Differences between a notebook's metrics and its reference, one readable line each.

    ``reference`` maps metric name to ``{"value": v, "abs_tol": a, "rel_tol": r}``; numbers pass when
    ``|actual - v| <= max(a, r * |v|)``; strings and lists must be equal. Missing metrics fail.
    """
    problems = []
    for key, ref in sorted(reference.items()):
        if key not in actual:
            problems.append(f"{key}: missing (reference {ref['value']!r})")
            continue
        got, want = actual[key], ref["value"]
        if isinstance(want, (int, float)) and not isinstance(want, bool):
            if not isinstance(got, (int, float)) or isinstance(got, bool) or not math.isfinite(float(got)):
                problems.append(f"{key}: {got!r} is not a finite number (reference {want})")
                continue
            tol = max(ref.get("abs_tol", DEFAULT_ABS_TOL), ref.get("rel_tol", DEFAULT_REL_TOL) * abs(want))
            if abs(float(got) - float(want)) > tol:
                problems.append(f"{key}: {got} differs from reference {want} by more than {tol:.3g}")
        elif got != want:
            problems.append(f"{key}: {got!r} != reference {want!r}")
    return problems


def load_references(path: Path = REFERENCE_FILE) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def reference_entry(metrics: dict, previous: dict | None = None) -> dict:
    """Turn a metrics dict into reference entries, keeping tolerances already chosen for a metric."""
    previous = previous or {}
    entry = {}
    for key, value in metrics.items():
        if key == "notebook" or key.startswith("timing_"):  # timings are reported, never compared
            continue
        old = previous.get(key, {})
        item = {"value": value}
        if isinstance(value, float):
            item["abs_tol"] = old.get("abs_tol", DEFAULT_ABS_TOL)
            item["rel_tol"] = old.get("rel_tol", DEFAULT_REL_TOL)
        entry[key] = item
    return entry


def strip_outputs(nb_path: str | Path, executed: str | Path | None = None) -> None:
    """Keep a committed notebook small: no outputs except those of cells marked ``# NBVAL_CHECK_OUTPUT``.

    With ``executed`` (a run of the same notebook), the checked cells take its text outputs, so
    nbval has fresh references; everything else is cleared, execution counts included (checked
    cells keep their position as count, because nbval skips cells that look unexecuted).
    """
    import nbformat

    nb = nbformat.read(str(nb_path), as_version=4)
    ran = nbformat.read(str(executed), as_version=4) if executed else None
    ran_cells = {c.source: c for c in ran.cells if c.cell_type == "code"} if ran else {}
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    for number, cell in enumerate(code_cells, 1):
        cell.metadata = {k: v for k, v in cell.metadata.items() if k == "tags"}
        if CHECK_MARK not in cell.source:
            cell.execution_count = None
            cell.outputs = []
            continue
        if cell.source in ran_cells:
            cell.outputs = [o for o in ran_cells[cell.source].outputs if o.get("output_type") == "stream"]
        # nbval compares only cells that look executed: a checked cell keeps a (stable) count
        cell.execution_count = number if cell.outputs else None
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"}}
    nbformat.write(nb, str(nb_path))


SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def reference_runs() -> dict[str, dict]:
    """The parameter sets the regression test runs every notebook with (fast mode, seed 0).

    ``procedural`` always; ``mtd`` when ``../shared/data/mtd`` exists beside the repository.
    """
    runs = {"procedural": {"dataset": "procedural", "layout": "procedural", "fast": True, "seed": 0}}
    if (SHARED_DATA / "mtd").is_dir():
        runs["mtd"] = {"dataset": str(SHARED_DATA / "mtd"), "layout": "mtd", "fast": True, "seed": 0}
    return runs


def update_references(notebooks: list[Path] | None = None, out_dir: Path | None = None) -> Path:
    """Re-execute every notebook for every reference run; rewrite the reference file and the
    committed check-cell outputs. A deliberate act: run ``make references`` and review the diff."""
    import tempfile

    refs = load_references()
    work = Path(out_dir or tempfile.mkdtemp(prefix="exdd-refs-"))
    for nb in notebooks or list_notebooks():
        for run_name, params in reference_runs().items():
            metrics_file = work / f"{nb.stem}.{run_name}.json"
            executed = work / f"{nb.stem}.{run_name}.ipynb"
            print(f"executing {nb.name} on {run_name} ...", flush=True)
            execute_notebook(nb, executed, dict(params, metrics_path=str(metrics_file)))
            metrics = json.loads(metrics_file.read_text())
            old = refs.get(nb.stem, {}).get(run_name, {})
            refs.setdefault(nb.stem, {})[run_name] = reference_entry(metrics, old)
            if run_name == "procedural":  # the committed defaults: nbval re-checks these outputs
                strip_outputs(nb, executed)
    atomic_write_json(REFERENCE_FILE, refs)
    return REFERENCE_FILE
