"""Shared fixtures: an isolated cache, small procedural datasets, and the real MTD data when present."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_MTD = REPO.parent / "shared" / "data" / "mtd"


def pytest_collection_modifyitems(config, items):
    """The book is built from the notebooks the regression run executed (runs/executed/): its tests run last."""
    items.sort(key=lambda item: item.get_closest_marker("book") is not None)


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Every test session gets its own cache folder, so tests never depend on a user's cache."""
    root = tmp_path_factory.mktemp("exdd-cache")
    old = os.environ.get("EXDD_LAB_CACHE")
    os.environ["EXDD_LAB_CACHE"] = str(root)
    os.environ["EXDD_LAB_METRICS_DIR"] = str(root / "notebook-metrics")
    yield root
    if old is None:
        os.environ.pop("EXDD_LAB_CACHE", None)
    else:
        os.environ["EXDD_LAB_CACHE"] = old


#: The system's Chromium, which Playwright drives (no browser download): the browser and book tests use it.
CHROMIUM = os.environ.get("EXDD_LAB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def chromium():
    """A headless Chromium (Playwright), or a skip naming what to install."""
    if not CHROMIUM:
        pytest.skip("Chromium is not installed: `apt-get install chromium` (Debian), or point EXDD_LAB_CHROMIUM at one")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install -e '.[dev]'")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def tiny_mvtec(tmp_path_factory) -> Path:
    """A small procedural dataset in the MVTec layout (64 px): 8 train, 4 good + 6 defect test images."""
    from exdd_lab.data import write_procedural_dataset

    return write_procedural_dataset(tmp_path_factory.mktemp("tiny"), "tile", n_train=8, n_test_good=4,
                                    n_test_defect=6, image_size=64, seed=3)


@pytest.fixture()
def mtd_root() -> Path:
    if not SHARED_MTD.is_dir():
        pytest.skip(f"real data not available: {SHARED_MTD} is missing (it is present in CI)")
    return SHARED_MTD


def save_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


@pytest.fixture()
def make_png():
    return save_png


# The hand-made two-method case of tests/test_results_analysis.py and tests/test_browser.py.
CASE_SIZE = 32
LABELS = np.array([0, 0, 0, 0, 1, 1, 1, 1])
SCORES_A = np.array([0.1, 0.2, 0.3, 0.9, 0.8, 0.85, 0.95, 0.05])
SCORES_B = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9])


def _square(i: int) -> np.ndarray:
    m = np.zeros((CASE_SIZE, CASE_SIZE), bool)
    m[4 + i : 12 + i, 6:14] = True
    return m


@pytest.fixture()
def case(tmp_path, make_png):
    """(samples, {"A": prediction, "B": prediction}): see tests/test_results_analysis.py for the answers."""
    from exdd_lab.data.records import Sample
    from exdd_lab.methods.base import Prediction

    rng = np.random.default_rng(0)
    samples, masks = [], []
    for i, label in enumerate(LABELS):
        image = make_png(tmp_path / f"img{i}.png", rng.integers(0, 255, (CASE_SIZE, CASE_SIZE, 3), dtype=np.uint8))
        if label:
            mask = _square(i)
            mask_path = make_png(tmp_path / f"img{i}_mask.png", (mask * 255).astype(np.uint8))
            samples.append(Sample(image, 1, "scratch" if i < 6 else "dent", mask_path))
            masks.append(mask)
        else:
            samples.append(Sample(image, 0))
            masks.append(np.zeros((CASE_SIZE, CASE_SIZE), bool))
    maps_a = np.stack([m.astype(np.float32) for m in masks])
    maps_a[3, 20:24, 20:24] = 0.5  # A's false alarm has a blob
    maps_a[7] = 1.0 - masks[7]     # A's miss looks everywhere but the defect
    maps_b = np.stack([m.astype(np.float32) for m in masks])
    predictions = {"A": Prediction(maps_a, SCORES_A), "B": Prediction(maps_b, SCORES_B)}
    return samples, predictions


# A run of the main job's runner over three tiny notebooks: one with a key figure, one writing notebook 06's
# methods table (all the report's columns), one that fails. tests/test_report.py reads its files,
# tests/test_real_browser.py opens its report.html in Chromium: one run serves both.
REPORT_FIGURE = ("# figure: a line that goes up\nimport matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
                 "%matplotlib inline\nfig, ax = plt.subplots(); ax.plot([0, 1], [0, 1])")


def write_notebook(path: Path, *cells: tuple[str, list[str] | None]) -> Path:
    """A notebook with the harness's parameters cell, then ``(source, tags)`` code cells."""
    import nbformat

    params = nbformat.v4.new_code_cell('dataset = "procedural"\nseed = 0\nfast = True\nmetrics_path = ""')
    params.metadata["tags"] = ["parameters"]
    body = []
    for source, tags in cells:
        cell = nbformat.v4.new_code_cell(source)
        if tags:
            cell.metadata["tags"] = tags
        body.append(cell)
    nbformat.write(nbformat.v4.new_notebook(cells=[params, *body]), str(path))
    return path


@pytest.fixture(scope="session")
def small_run(tmp_path_factory) -> tuple[Path, bool, list[str]]:
    """``(run folder, all notebooks ok, the runner's log lines)``."""
    from exdd_lab.lab.report import METRIC_COLUMNS
    from exdd_lab.lab.runner import run_notebooks

    folder = tmp_path_factory.mktemp("small-run")
    methods = ("import pandas as pd\nfrom exdd_lab.lab.notebooks import artefact_dir, save_notebook_metrics\n"
               f"columns = {METRIC_COLUMNS!r}\n"
               "pd.DataFrame([[0.875] * len(columns), [0.5] * len(columns)], index=['alpha-method', 'beta-method'], "
               "columns=columns).to_csv(artefact_dir(metrics_path) / '06_x.methods.csv')\n"
               "save_notebook_metrics('06_x', {'answer': 42.0}, metrics_path)")
    save = "from exdd_lab.lab.notebooks import save_notebook_metrics\nsave_notebook_metrics('00_fig', {'seed_seen': seed}, metrics_path)"
    books = [write_notebook(folder / "00_fig.ipynb", (REPORT_FIGURE, ["report"]), ("print('not a key figure')", None), (save, None)),
             write_notebook(folder / "01_methods.ipynb", (methods, None)),
             write_notebook(folder / "02_bad.ipynb", ("raise ValueError('boom in cell')", None))]
    lines: list[str] = []
    run_dir, ok = run_notebooks(seed=3, fast=True, out_root=folder / "runs", notebooks=books, log=lines.append)
    return run_dir, ok, lines
