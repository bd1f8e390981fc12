"""The main job writes a run folder with executed notebooks and a summary, and reports failures."""
import json

import nbformat

from exdd_lab.lab.runner import run_notebooks


def tiny_notebook(path, body):
    params = nbformat.v4.new_code_cell('dataset = "procedural"\nseed = 0\nfast = True\nmetrics_path = ""')
    params.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[params, nbformat.v4.new_code_cell(body)])
    nbformat.write(nb, str(path))
    return path


def test_run_writes_summary_and_executed_notebooks(tmp_path):
    good = tiny_notebook(tmp_path / "00_ok.ipynb",
                         "from exdd_lab.lab.notebooks import save_notebook_metrics\n"
                         "save_notebook_metrics('00_ok', {'seed_seen': seed, 'dataset': dataset}, metrics_path)")
    bad = tiny_notebook(tmp_path / "01_bad.ipynb", "raise ValueError('boom in cell')")
    lines = []
    run_dir, ok = run_notebooks(seed=5, fast=True, out_root=tmp_path / "runs", notebooks=[good, bad], log=lines.append)
    assert not ok
    summary = json.loads((run_dir / "summary.json").read_text())
    first, second = summary["notebooks"]
    assert first["status"] == "ok" and first["metrics"]["seed_seen"] == 5
    assert second["status"] == "failed" and "boom in cell" in second["error"]
    assert (run_dir / "00_ok.ipynb").is_file() and (run_dir / "summary.md").is_file()
    assert "| 01_bad.ipynb | failed |" in (run_dir / "summary.md").read_text()
    assert any("FAILED" in line for line in lines) and any("summary" in line for line in lines)

