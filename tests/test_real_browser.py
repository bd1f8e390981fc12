"""What a person sees: notebook 06 run in a real JupyterLab by headless Chromium, and a run's report.html
opened in Chromium from disk.

The callback tests (tests/test_browser.py) drive the failure browser's Python objects; these drive the page a
student looks at. Every step leaves a screenshot in ``$EXDD_LAB_SCREENSHOTS/<test>/`` (default
``runs/browser-screenshots/<test>/``). Checks are on content — images decoded, controls present, the shown
case and caption changing — never pixel goldens, which break across fonts. Select them with ``-m browser``;
they skip, with the reason, where Chromium or Playwright is missing.
"""
from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import nbformat
import pytest

from lab_server import jupyterlab_server

pytestmark = pytest.mark.browser
REPO = Path(__file__).resolve().parents[1]
SHOT_ROOT = Path(os.environ.get("EXDD_LAB_SCREENSHOTS") or REPO / "runs" / "browser-screenshots")
LAPTOP = {"width": 1366, "height": 900}
NOTEBOOK = "06_failure_case_analysis.ipynb"
WIDGET_FALLBACKS = ("Error displaying widget", "Loading widget", "Widget Javascript not detected")


class Screenshots:
    """Numbered screenshots of one test's steps in a folder named after it (emptied first)."""

    def __init__(self, page, name: str) -> None:
        self.page, self.folder, self.taken = page, SHOT_ROOT / name, []
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)

    def take(self, step: str, full_page: bool = False, element=None) -> Path:
        path = self.folder / f"{len(self.taken) + 1:02d}_{step}.png"
        (element or self.page).screenshot(path=str(path), **({"full_page": True} if full_page else {}))
        self.taken.append(path)
        return path


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory):
    """JupyterLab serving a copy of notebook 06 (tests/jupyterlab_server.py)."""
    root = tmp_path_factory.mktemp("lab")
    shutil.copy(REPO / "notebooks" / NOTEBOOK, root / NOTEBOOK)
    with jupyterlab_server(root) as (url, token):
        yield url, token, root


def _wait_for(page, script: str, timeout_s: float, what: str):
    """Poll a JavaScript expression until it is truthy; fail naming ``what`` otherwise."""
    try:
        page.wait_for_function(script, timeout=timeout_s * 1000, polling=500)
    except Exception as exc:  # playwright's TimeoutError
        raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}") from exc


BROWSER_CAPTION = r"case \d+ of \d+|no \w+ cases"


def _browser_state(page) -> dict:
    """The failure browser as shown: its caption (the position label), the case details text, and the picture's
    size and a fingerprint of its decoded pixels (a blob URL changes on every update, so it proves nothing)."""
    return page.evaluate("""() => {
        const next = [...document.querySelectorAll('.jupyter-widgets button')].find(b => b.textContent.includes('next'));
        const root = next.closest('.widget-vbox');
        const label = [...root.querySelectorAll('.widget-label')].map(e => e.textContent).find(t => /%s/.test(t));
        const details = root.querySelector('.widget-html-content');
        const img = root.querySelector('img');
        let pixels = '';
        if (img && img.naturalWidth) {
            const canvas = document.createElement('canvas');
            canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
            const ctx = canvas.getContext('2d'); ctx.drawImage(img, 0, 0);
            const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
            let h = 0; for (let i = 0; i < data.length; i += 7) h = (h * 31 + data[i]) >>> 0;
            pixels = canvas.width + 'x' + canvas.height + ':' + h;
        }
        return {caption: label || '', details: details ? details.textContent : '', width: img ? img.naturalWidth : 0,
                height: img ? img.naturalHeight : 0, pixels: pixels};
    }""" % BROWSER_CAPTION)


def _same_aspect(state: dict, reference: dict) -> bool:
    """Whether two pictures have one aspect ratio (within 1 %): the same layout, whatever size Chromium decoded
    them at."""
    aspect = lambda s: s["width"] / s["height"]
    return abs(aspect(state) - aspect(reference)) <= 0.01 * aspect(reference)


def _wait_for_case(page, caption: str, previous: dict) -> dict:
    """Wait until the caption reads ``caption`` and the picture and details are no longer ``previous``'s, and the
    page has settled: the same state twice in a row (a picture can be caught while the widget is still replacing it)."""
    deadline, last = time.time() + 60, None
    while time.time() < deadline:
        state = _browser_state(page)
        if state["caption"].startswith(caption) and state["pixels"] != previous["pixels"] and state["details"] != previous["details"]:
            if state == last:
                return state
            last = state
        else:
            last = None
        time.sleep(0.3)
    raise AssertionError(f"the browser did not move to '{caption}' with a new picture: {_browser_state(page)}")


def _click_in_browser(page, text: str) -> None:
    page.locator(".widget-vbox", has=page.locator("button", has_text="next ▶")).last \
        .locator("button", has_text=re.compile(rf"^\s*{re.escape(text)}\s*$")).first.click()


def test_notebook_06_runs_in_jupyterlab_and_its_failure_browser_responds(jupyterlab, chromium):
    url, token, root = jupyterlab
    page = chromium.new_page(viewport=LAPTOP)
    shots = Screenshots(page, "notebook06_jupyterlab")
    page.goto(f"{url}/lab/tree/{NOTEBOOK}?token={token}")
    page.get_by_text(re.compile(r"Python 3 \(ipykernel\) \| Idle")).wait_for(timeout=120_000)
    shots.take("opened")
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_text("Run All Cells", exact=True).click()
    _wait_for(page, """() => { const p = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
                               return p.length && p.every(e => /\\[\\d+\\]/.test(e.textContent)); }""",
              1200, "every cell of notebook 06 to finish")
    page.get_by_text(re.compile(r"Python 3 \(ipykernel\) \| Idle")).wait_for(timeout=120_000)
    shots.take("all_cells_ran")

    # what the kernel did: the notebook saved from the page has no error output and every cell executed
    page.keyboard.press("Control+s")
    _wait_for(page, "() => !document.querySelector('.jp-mod-dirty')", 30, "the notebook to be saved")
    saved = nbformat.read(str(root / NOTEBOOK), as_version=4)
    code = [c for c in saved.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, f"cells failed in JupyterLab: {[e['ename'] + ': ' + e['evalue'] for e in errors]}"
    assert all(c.execution_count for c in code), "a cell did not run"

    # figures are rendered as decoded images, and the widget is a widget, not its fallback text
    figures = page.eval_on_selector_all(".jp-OutputArea-output img", "es => es.map(e => e.naturalWidth)")
    wanted = sum(c.source.startswith("# figure:") for c in code)
    assert len(figures) >= wanted - 2 and all(w > 0 for w in figures), f"figures: {figures} (figure cells: {wanted})"
    for fallback in WIDGET_FALLBACKS:
        assert page.get_by_text(fallback).count() == 0, f"the widget shows '{fallback}'"
    controls = page.locator(".widget-vbox", has=page.locator("button", has_text="next ▶")).last
    controls.scroll_into_view_if_needed()
    shots.take("failure_browser", element=controls)

    # clicking through cases changes the picture, the details and the caption together
    shown = _browser_state(page)
    assert shown["width"] > 0 and re.search(BROWSER_CAPTION, shown["caption"]), shown
    _click_in_browser(page, "TP")  # true positives: the longest list, so next/previous can move
    first = _wait_for_case(page, "TP case 1 of", {"pixels": "", "details": ""})
    assert int(re.match(r"TP case 1 of (\d+)", first["caption"]).group(1)) >= 2, first
    assert "label defect" in first["details"]
    shots.take("tp_case_1", element=controls)
    _click_in_browser(page, "next ▶")
    second = _wait_for_case(page, "TP case 2 of", first)
    shots.take("tp_case_2", element=controls)
    _click_in_browser(page, "◀ previous")
    again = _wait_for_case(page, "TP case 1 of", second)
    # back on case 1: its details exactly, and a new picture (not case 2's, see _wait_for_case) of the same layout.
    # Not pixel-equal to the first visit's: CI's and this machine's Chromium, in about 1 run in 30, read the first
    # callback's picture differently (once at 964x218 instead of 771x175, once at 771x175 with other pixels), so
    # byte-for-byte return is checked where it is deterministic, on the widget itself (tests/test_browser.py).
    assert again["details"] == first["details"], "previous did not return to case 1's details"
    assert _same_aspect(again, first), f"previous showed a picture of another layout: {again['pixels']} now, " \
                                       f"{first['pixels']} on the first visit"
    shots.take("tp_case_1_again", element=controls)
    _click_in_browser(page, "TN")  # the outcome filter: true negatives are normal images
    filtered = _wait_for_case(page, "TN case 1 of", again)
    assert "label normal" in filtered["details"], filtered
    shots.take("tn_filter", element=controls)
    page.close()


def test_run_report_in_chromium(chromium, small_run):
    run_dir, _, _ = small_run  # three notebooks: a key figure, the methods table, one that fails
    page = chromium.new_page(viewport=LAPTOP)
    shots = Screenshots(page, "run_report")
    page.goto((run_dir / "report.html").as_uri())
    page.wait_for_load_state("load")
    shots.take("report", full_page=True)
    images = page.eval_on_selector_all("img", "es => es.map(e => [e.alt, e.naturalWidth])")
    assert len(images) == 1 and all(width > 0 for _, width in images), images
    headers = page.eval_on_selector_all("h2 + p + table th, h2 + p + table td", "es => es.map(e => e.textContent)")
    assert "alpha-method" in headers and "false_alarm_rate_normal_only" in headers and "0.875" in headers, headers
    broken = page.evaluate("""() => [...document.querySelectorAll('h2 + p + table td')].filter(td => {
        const range = document.createRange(); range.selectNodeContents(td);
        return range.getClientRects().length > 1; }).map(td => td.textContent)""")
    assert not broken, f"numbers wrapped over two lines in the methods table: {broken}"
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"report.html scrolls sideways by {overflow} px at {LAPTOP['width']} px"
    links = page.eval_on_selector_all("a[href^='html/']", "es => es.map(e => e.getAttribute('href'))")
    assert sorted(links) == ["html/00_fig.html", "html/01_methods.html", "html/02_bad.html"]
    for href in links:
        page.goto((run_dir / href).as_uri())
        page.wait_for_load_state("load")
        assert Path(href).stem in page.title() or Path(href).stem in page.inner_text("body")[:2000]
        shots.take(f"linked_{Path(href).stem}")
    page.close()
