"""The review widget in a real JupyterLab, driven by headless Chromium: verdicts clicked and typed in the page land in
the run's reviews.csv. Screenshots of each step go to ``runs/browser-screenshots/review_widget/`` (or
``$EXDD_LAB_SCREENSHOTS``). Marked ``browser``; skipped, with the reason, without Chromium or Playwright."""
from __future__ import annotations

import csv
import re
import shutil
import time
from pathlib import Path

import nbformat
import pytest

from lab_server import jupyterlab_server
from test_real_browser import LAPTOP, WIDGET_FALLBACKS, Screenshots, _wait_for

pytestmark = pytest.mark.browser
NOTEBOOK = "review.ipynb"


@pytest.fixture(scope="module")
def lab_with_a_run(tiny_mvtec, tmp_path_factory):
    """An archive run of the tiny test split (maps saved) and a two-cell notebook that opens its review."""
    from exdd_lab.archive import score_archive
    from exdd_lab.data import load_dataset
    from exdd_lab.features import FeatureConfig
    from exdd_lab.methods.patchcore import PatchCore

    root = tmp_path_factory.mktemp("review-lab")
    tiny = load_dataset(tiny_mvtec, "mvtec")
    PatchCore(FeatureConfig(image_size=64)).fit(tiny.train).save(root / "model")
    for i, s in enumerate(tiny.test):
        day = root / "archive" / f"2026-12-0{1 + i % 2}"
        day.mkdir(parents=True, exist_ok=True)
        shutil.copy(s.image_path, day / f"{s.defect_type}-{s.image_path.name}")
    score_archive(root / "model", root / "archive", root / "run", save_maps=True, progress=False)
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("from exdd_lab.analyst.review_widget import review"),
                      nbformat.v4.new_code_cell(f"review({str(root / 'run')!r})")]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(notebook, root / NOTEBOOK)
    with jupyterlab_server(root) as (url, token):
        yield url, token, root


def _reviews(run: Path) -> list[tuple[str, str]]:
    file = run / "reviews.csv"
    if not file.is_file():
        return []
    with file.open() as handle:
        return [(Path(r["path"]).name, r["verdict"]) for r in csv.DictReader(handle)]


def _wait_for_reviews(run: Path, count: int) -> list[tuple[str, str]]:
    deadline = time.time() + 30
    while time.time() < deadline:
        rows = _reviews(run)
        if len(rows) >= count:
            return rows
        time.sleep(0.3)
    raise AssertionError(f"reviews.csv holds {_reviews(run)}, expected {count} verdicts")


def _shown_name(page) -> str:
    return page.locator(".exdd-review .widget-html-content b").first.text_content()


def test_verdicts_clicked_and_typed_in_jupyterlab_land_in_reviews_csv(lab_with_a_run, chromium):
    url, token, root = lab_with_a_run
    run = root / "run"
    page = chromium.new_page(viewport=LAPTOP)
    shots = Screenshots(page, "review_widget")
    page.goto(f"{url}/lab/tree/{NOTEBOOK}?token={token}")
    page.get_by_text(re.compile(r"Python 3 \(ipykernel\) \| Idle")).wait_for(timeout=120_000)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_text("Run All Cells", exact=True).click()
    widget = page.locator(".exdd-review")
    widget.wait_for(timeout=120_000)
    _wait_for(page, "() => { const i = document.querySelector('.exdd-review img'); return i && i.naturalWidth > 0; }",
              60, "the review widget's picture")
    for fallback in WIDGET_FALLBACKS:
        assert page.get_by_text(fallback).count() == 0, f"the widget shows '{fallback}'"
    assert "image 1 of 10" in widget.text_content(), widget.text_content()[100:600]
    shots.take("opened", element=widget)

    first = _shown_name(page)
    widget.locator("button", has_text="defect (d)").click()  # a click
    assert _wait_for_reviews(run, 1) == [(Path(first).name, "defect")]
    _wait_for(page, "() => document.querySelector('.exdd-review').textContent.includes('image 2 of 10')", 30,
              "the widget to move to the next image")
    shots.take("after_click", element=widget)

    second = _shown_name(page)
    widget.locator("img").hover()  # keys are taken while the pointer is over the widget
    page.keyboard.press("n")
    rows = _wait_for_reviews(run, 2)
    assert rows[1] == (Path(second).name, "normal"), rows
    page.keyboard.press("k")  # back to the second image, then call it unsure instead
    _wait_for(page, "() => document.querySelector('.exdd-review').textContent.includes('image 2 of 10')", 30,
              "k to go back")
    page.keyboard.press("u")
    deadline = time.time() + 30
    while dict(_reviews(run)).get(Path(second).name) != "unsure" and time.time() < deadline:
        time.sleep(0.3)
    assert dict(_reviews(run)) == {Path(first).name: "defect", Path(second).name: "unsure"}
    assert page.locator(".jp-Notebook .jp-Cell").count() == 2, "a key reached JupyterLab (a cell was added or deleted)"
    shots.take("after_keys", element=widget)
    page.close()
