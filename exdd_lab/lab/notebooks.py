"""The headless notebook harness: execute notebooks with parameters, record and compare their numbers.

Every notebook starts with a papermill ``parameters`` cell and ends with
:func:`save_notebook_metrics`. The regression test executes each notebook and compares its
metrics JSON with ``tests/reference/notebook_metrics.json`` within the tolerances stored there;
``make references`` regenerates that file on purpose (see README).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from exdd_lab.components.environment import temporary_environment
from exdd_lab.errors import ExddError
from exdd_lab.lab.references import REFERENCE_FILE, build_references, load_references
from exdd_lab.storage import atomic_write_json

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
CHECK_MARK = "# NBVAL_CHECK_OUTPUT"


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


def save_notebook_metrics(name: str, metrics: dict, path: str | Path = "", dataset=None) -> Path:
    """Write a notebook's key numbers (the last cell of every notebook). Returns the path.

    With ``dataset`` (the split the numbers were measured on), its test composition is recorded too
    (``n_test_defect``, ``n_test_good``): the regression harness sets image-level chance floors from it."""
    target = Path(path) if path else default_metrics_path(name)
    composition = {}
    if dataset is not None:
        labels = [s.label for s in dataset.test]
        composition = {"n_test_defect": int(sum(labels)), "n_test_good": len(labels) - int(sum(labels))}
    atomic_write_json(target, {"notebook": name, **composition, **metrics})
    return target


def show_source(*functions: object) -> object:
    """The source of the kit's functions, highlighted, for a notebook cell (as the d2l book shows its saved code):
    the lesson shows the lines that run, not a paraphrase of them."""
    import inspect

    from IPython.display import Code

    return Code("\n\n".join(inspect.getsource(f).rstrip() for f in functions), language="python")


def subsample(ds, n_train: int, n_test: int, seed: int = 0, why: str = "small mode"):
    """``ds.subset(n_train, n_test, seed)``, with a **visible warning** in the notebook when it drops images of a data
    set that is not the procedural default: numbers on a subset are not the data set's, and a user who passed their
    own data must see that before reading them."""
    small = ds.subset(n_train=n_train, n_test=n_test, seed=seed)
    if ds.layout != "procedural" and (len(small.train) < len(ds.train) or len(small.test) < len(ds.test)):
        text = (f"**⚠ {why}: this notebook uses {len(small.train)} of {len(ds.train)} training and {len(small.test)} "
                f"of {len(ds.test)} test images of {ds.name}.** Its numbers describe that subset, not the data set: "
                "set `fast = False` (the full run) to use every image.")
        try:
            from IPython import get_ipython
            from IPython.display import Markdown, display

            if get_ipython() is None:
                raise ImportError
            display(Markdown(text))
        except ImportError:
            import warnings

            warnings.warn(text.replace("**", ""), stacklevel=2)
    return small


def mode_parameters(fast: bool, **parameters: tuple) -> tuple:
    """Resolve parameters whose default depends on the mode: each is ``name=(value, full, fast_value)``.

    A value that was set (papermill's, or an edit of the parameters cell) always wins; ``None`` takes the
    default of the mode (``fast_value`` in fast mode, else ``full``). Returns the values in the given order
    and prints where each came from, so fast mode never overwrites a value silently.
    """
    chosen, notes = [], []
    for name, (value, full, fast_value) in parameters.items():
        if value is not None:
            chosen.append(value)
            notes.append(f"{name}={value!r} (given)")
        else:
            chosen.append(fast_value if fast else full)
            notes.append(f"{name}={chosen[-1]!r} ({'fast' if fast else 'full'}-mode default)")
    print("parameters: " + ", ".join(notes))
    return tuple(chosen)


def execute_notebook(
    notebook: str | Path,
    output: str | Path,
    parameters: dict | None = None,
    timeout: int | None = 1800,
    progress: bool = False,
    env: dict[str, str] | None = None,
) -> float:
    """Run a notebook headlessly with papermill (cwd = its folder). Returns seconds taken.

    ``timeout`` limits each cell (seconds; ``None``: no limit, for full-mode runs whose sweeps take long).
    ``env``: extra environment variables for the kernel (the harness pins the numeric path with
    :func:`exdd_lab.numerics.harness_environment`).

    Raises papermill's ``PapermillExecutionError`` naming the failing cell if a cell fails. The kernel
    sees ``EXDD_LAB_HEADLESS=1``, so notebooks draw static figures where a person would get widgets.
    """
    import papermill as pm

    notebook = Path(notebook)
    start = time.perf_counter()
    with temporary_environment({**(env or {}), "EXDD_LAB_HEADLESS": "1"}):  # the kernel inherits os.environ
        pm.execute_notebook(
            str(notebook), str(output), parameters=parameters or {}, cwd=str(notebook.parent),
            kernel_name="python3", language="python", progress_bar=progress, execution_timeout=timeout, log_output=False,
        )
    return time.perf_counter() - start


#: Cell metadata a committed notebook keeps: tags (parameters, report, maintainer) and nbgrader's (the exercises).
KEPT_CELL_METADATA = ("tags", "nbgrader")


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
        cell.metadata = {k: v for k, v in cell.metadata.items() if k in KEPT_CELL_METADATA}
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


def run_reference_set(out_dir: Path, env: dict[str, str] | None = None, notebooks: list[Path] | None = None,
                      parameters: dict | None = None) -> dict[str, dict[str, dict]]:
    """Execute every notebook for every reference run into ``out_dir`` (executed notebooks and their
    metrics JSON side by side), with ``parameters`` on top of each run's (e.g. ``{"train_seed": 3}``).
    Returns ``{notebook: {run: metrics}}``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, dict]] = {}
    for nb in notebooks or list_notebooks():
        for run_name, params in reference_runs().items():
            metrics_file = out_dir / f"{nb.stem}.{run_name}.json"
            print(f"executing {nb.name} on {run_name} ...", flush=True)
            seconds = execute_notebook(nb, out_dir / f"{nb.stem}.{run_name}.ipynb",
                                       dict(params, **(parameters or {}), metrics_path=str(metrics_file)), env=env)
            print(f"  {seconds:.0f} s", flush=True)
            results.setdefault(nb.stem, {})[run_name] = json.loads(metrics_file.read_text())
    return results


MEASURED_DIR = REPO_ROOT / "tests" / "reference" / "measured"


def pinned_path(measurements: dict, references: dict | None = None) -> tuple[str, str]:
    """The ``(machine, path)`` whose numbers the references hold: the committed file's, while that machine's
    measurements are still there (another CPU only widens the spread), else this CPU's ``avx2-t2``."""
    from exdd_lab.numerics import cpu_label

    committed = (references if references is not None else load_references()).get("_numeric_paths", {}).get("pinned", "")
    machine, _, path = committed.partition("/")
    if path and path in measurements.get(machine, {}):
        return machine, path
    return cpu_label(), "avx2-t2"


def update_references(measured_dir: Path = MEASURED_DIR, pinned: tuple[str, str] | None = None,
                      only: list[str] | None = None, executed_dir: Path | None = None) -> Path:
    """Rewrite the reference file (and, with ``executed_dir``, the committed check-cell outputs) from the measured
    numeric paths and training seeds of every machine.

    ``measured_dir`` holds ``<machine>/<path>/metrics/*.json`` as ``benchmarks/numeric_spread.py`` copies them
    (a path ``<isa>-t<threads>``, or ``<isa>-t<threads>-seed<k>`` for a training seed) and a machine's
    ``recorded_spread.json`` where only its range was kept. The values come from ``pinned`` (machine, path); the
    tolerances from the spread over all of them (:func:`exdd_lab.lab.references.build_references`); ``pinned``
    defaults to :func:`pinned_path`.
    ``only`` (notebook numbers, e.g. ``["08"]``) replaces just those notebooks' entries and keeps the others as
    committed. ``executed_dir``: the pinned path's executed notebooks, whose procedural runs give the check cells
    their outputs (default ``runs/numeric-spread/<machine>/<path>/metrics`` where this machine ran them; else the
    check cells stay as committed). A deliberate act: run ``make references`` and review the diff."""
    from exdd_lab.lab.references import load_measurements, load_recorded_spreads

    measurements = load_measurements(measured_dir)
    pinned = pinned or pinned_path(measurements)
    executed_dir = executed_dir or REPO_ROOT / "runs" / "numeric-spread" / pinned[0] / pinned[1] / "metrics"
    built = build_references(measurements, pinned, load_recorded_spreads(measured_dir))
    chosen = [nb for nb in list_notebooks() if not only or nb.name[:2] in only]
    missing = [nb.stem for nb in chosen if nb.stem not in built]
    if missing:
        raise ExddError(f"the pinned path {'/'.join(pinned)} has no measurements of {', '.join(missing)}",
                        f"measure them there (benchmarks/numeric_spread.py --notebooks ...) or pass only=[...] "
                        f"with the notebooks it has")
    if only:
        kept = load_references()
        built = {**kept, **{nb.stem: built[nb.stem] for nb in chosen}, "_numeric_paths": built["_numeric_paths"]}
    atomic_write_json(REFERENCE_FILE, built)
    for nb in chosen:  # the committed defaults (procedural): nbval re-checks these outputs
        executed = Path(executed_dir) / f"{nb.stem}.procedural.ipynb"
        if executed.is_file():
            strip_outputs(nb, executed)
    return REFERENCE_FILE
