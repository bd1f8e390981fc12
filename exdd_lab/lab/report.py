"""The run report: one self-contained ``runs/<id>/report.html`` that a student or reviewer opens first.

It holds what a run did and found: the dataset and split, the environment (versions, device,
backbone and where its weights came from), the metrics table of all methods (notebook 06's
comparison on one split), each notebook's status, time and key numbers with a link to its executed
HTML, and the key figures (code cells tagged ``report`` in the notebooks, captioned by their
``# figure: ...`` comment). Figures are embedded, so the file can be mailed or attached to CI.
"""
from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from exdd_lab.components.metric_names import HEADLINE_METRICS
from exdd_lab.storage import atomic_write

REPORT_TAG = "report"
METRIC_COLUMNS = [*HEADLINE_METRICS, "recall_f1", "false_alarm_rate_f1",
                  "recall_normal_only", "false_alarm_rate_normal_only", "mean_image_pixel_auroc"]

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .5rem 0; font-size: .9rem; }
td, th { border: 1px solid #ddd; padding: .25rem .5rem; text-align: left; vertical-align: top; }
table.kv td { overflow-wrap: anywhere; } /* long paths and dicts wrap instead of widening the page */
th { background: #f4f4f4; } .failed { color: #b00020; font-weight: bold; } .ok { color: #1b7f3b; }
figure { margin: 1rem 0; } figcaption { font-size: .9rem; color: #555; } img { max-width: 100%; }
code { background: #f4f4f4; padding: 0 .2rem; }
"""


def notebook_to_html(executed: str | Path, target: str | Path) -> Path:
    """An executed notebook as a standalone HTML page (nbconvert, images embedded), written atomically."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(executed), as_version=4)
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    with atomic_write(target, "w") as handle:
        handle.write(body)
    return Path(target)


def key_figures(executed: str | Path) -> list[tuple[str, str]]:
    """``(caption, base64 PNG)`` of every figure output of the cells tagged ``report``."""
    import nbformat

    nb = nbformat.read(str(executed), as_version=4)
    figures = []
    for cell in nb.cells:
        if cell.cell_type != "code" or REPORT_TAG not in cell.metadata.get("tags", []):
            continue
        first = cell.source.splitlines()[0] if cell.source else ""
        caption = first.removeprefix("# figure:").strip() if first.startswith("# figure:") else ""
        for output in cell.get("outputs", []):
            png = output.get("data", {}).get("image/png")
            if png:
                figures.append((caption, png if isinstance(png, str) else "".join(png)))
    return figures


def method_metrics(run_dir: str | Path) -> pd.DataFrame | None:
    """The metrics table of all methods on one split (``*.methods.csv`` written by notebook 06), if any; metrics
    with an interval read ``0.940 [0.921, 0.957]``."""
    files = sorted(Path(run_dir).glob("*.methods.csv"))
    if not files:
        return None
    from exdd_lab.evaluation.uncertainty import with_intervals

    table = pd.read_csv(files[-1], index_col=0)
    bounds = [f"{c}_{end}" for c in METRIC_COLUMNS for end in ("low", "high") if f"{c}_{end}" in table.columns]
    return with_intervals(table[[c for c in METRIC_COLUMNS if c in table.columns] + bounds])


def _rows(pairs: dict) -> str:
    return "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in pairs.items())


def _numbers(metrics: dict) -> str:
    shown = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()
             if isinstance(v, (int, float)) and not isinstance(v, bool) and not k.startswith("timing_")]
    return ", ".join(shown[:8]) + (f" … (+{len(shown) - 8})" if len(shown) > 8 else "")


def write_report(run_dir: str | Path, summary: dict, log=print) -> Path:
    """Convert the executed notebooks to HTML (``html/``) and write ``report.html``; returns its path."""
    run_dir = Path(run_dir)
    params, env = summary["parameters"], summary["environment"]
    sections, figure_blocks, rows = [], [], []
    for entry in summary["notebooks"]:
        executed = run_dir / entry["executed"]
        link = ""
        if executed.is_file():
            page = notebook_to_html(executed, run_dir / "html" / f"{executed.stem}.html")
            link = f'<a href="html/{page.name}">HTML</a> · <a href="{executed.name}">ipynb</a>'
            for caption, png in key_figures(executed):
                figure_blocks.append(f'<figure><img src="data:image/png;base64,{png}" alt="{html.escape(caption)}">'
                                     f"<figcaption><b>{html.escape(executed.stem)}</b>: {html.escape(caption)}</figcaption></figure>")
        status = f'<span class="{entry["status"]}">{entry["status"]}</span>'
        detail = html.escape(entry.get("error", "")[:600]) if entry["status"] != "ok" else html.escape(_numbers(entry.get("metrics", {})))
        rows.append(f"<tr><td>{html.escape(entry['notebook'])}</td><td>{status}</td><td>{entry.get('seconds', '')}</td>"
                    f"<td>{link}</td><td>{detail}</td></tr>")
    verdict = "all notebooks ran" if summary["ok"] else "SOME NOTEBOOKS FAILED (see the table)"
    sections.append(f"<h1>exdd_lab run: {html.escape(str(summary.get('dataset', {}).get('name', params['dataset'])))}</h1>"
                    f"<p class=\"{'ok' if summary['ok'] else 'failed'}\">{verdict} · "
                    f"{'small (fast) mode' if params['fast'] else 'full mode'} · seed {params['seed']} · "
                    f"total {summary.get('seconds', 0):.0f} s</p>")
    table = method_metrics(run_dir)
    if table is not None:
        sections.append("<h2>All methods on one split</h2><p>From notebook 06 (same training normals, same test images; "
                        "thresholds: F1-optimal on the test split, and normal-only from held-out normals; "
                        "[low, high]: 95 % bootstrap interval over the test images). "
                        "Per-image results: <code>06_failure_case_analysis.results.csv</code> / <code>.parquet</code>.</p>"
                        # metric names may break after an underscore, so nine columns fit a laptop screen
                        + table.to_html(float_format=lambda v: f"{v:.3f}", na_rep="–", border=0).replace("_", "_<wbr>"))
    sections.append("<h2>Notebooks</h2><table><tr><th>notebook</th><th>status</th><th>seconds</th><th>executed</th>"
                    "<th>key numbers</th></tr>" + "".join(rows) + "</table>")
    if figure_blocks:
        sections.append("<h2>Key figures</h2>" + "".join(figure_blocks))
    dataset = summary.get("dataset", {})
    sections.append("<h2>Dataset and split</h2><table class=\"kv\">" + _rows({
        "dataset": params["dataset"], "layout": params["layout"], "category": params.get("category") or "–",
        "image size": params["image_size"], **{k: v for k, v in dataset.items() if k != "name"},
        "small mode": "notebooks use seeded subsets (see each notebook's first cells)" if params["fast"] else "no"}) + "</table>")
    sections.append("<h2>Environment</h2><table class=\"kv\">" + _rows(env) + "</table>")
    page = (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>exdd_lab run {html.escape(run_dir.name)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(sections)}</body></html>")
    target = run_dir / "report.html"
    with atomic_write(target, "w") as handle:
        handle.write(page)
    log(f"report: {target}")
    return target
