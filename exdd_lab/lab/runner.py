"""The main job: run the notebook sequence headlessly and leave a readable record under ``runs/<id>/``.

``runs/<id>/`` holds each executed notebook (and its HTML under ``html/``), its metrics JSON, the
files notebooks write beside them (notebook 06's per-image results table), ``summary.json``, a short
``summary.md`` and ``report.html`` (:mod:`exdd_lab.lab.report`): the page to open first.
"""
from __future__ import annotations

import json
import platform
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from exdd_lab.lab.notebooks import REPO_ROOT, execute_notebook, list_notebooks
from exdd_lab.storage import atomic_write, atomic_write_json


def new_run_dir(root: str | Path | None = None, label: str = "") -> Path:
    """A fresh ``runs/<UTC timestamp>[-label]`` folder."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = Path(root or REPO_ROOT / "runs")
    path = base / (f"{stamp}-{label}" if label else stamp)
    n = 1
    while path.exists():
        n += 1
        path = base / f"{stamp}-{label}-{n}" if label else base / f"{stamp}-{n}"
    path.mkdir(parents=True)
    return path


def run_notebooks(
    dataset: str = "procedural",
    layout: str = "procedural",
    category: str = "",
    fast: bool = False,
    seed: int = 0,
    image_size: int = 256,
    out_root: str | Path | None = None,
    notebooks: list[Path] | None = None,
    log=print,
    progress: bool = False,
    report: bool = True,
) -> tuple[Path, bool]:
    """Execute the notebooks in order with one parameter set, then write the report; returns
    (run folder, all succeeded). ``progress`` adds papermill's per-cell progress bar."""
    label = Path(dataset).name if dataset != "procedural" else "procedural"
    run_dir = new_run_dir(out_root, label)
    params = {"dataset": str(dataset), "layout": layout, "category": category, "fast": fast, "seed": seed,
              "image_size": image_size}
    results, ok = [], True
    books = notebooks or list_notebooks()
    log(f"run folder: {run_dir}")
    started = time.perf_counter()
    for i, nb in enumerate(books, 1):
        metrics_file = run_dir / f"{nb.stem}.metrics.json"
        log(f"[{i}/{len(books)}] {nb.name} ...")
        entry = {"notebook": nb.name, "executed": f"{nb.stem}.ipynb"}
        try:
            entry["seconds"] = round(execute_notebook(nb, run_dir / nb.name, dict(params, metrics_path=str(metrics_file)),
                                                      timeout=1800 if fast else None, progress=progress), 1)
            entry["metrics"] = json.loads(metrics_file.read_text())
            entry["status"] = "ok"
            log(f"[{i}/{len(books)}] {nb.name} done in {entry['seconds']} s "
                f"({time.perf_counter() - started:.0f} s since the start)")
        except Exception as exc:  # keep going: the summary says which notebook failed and why
            ok = False
            entry["status"] = "failed"
            entry["error"] = f"{type(exc).__name__}: {str(exc)[-2000:]}"
            log(f"[{i}/{len(books)}] {nb.name} FAILED: {entry['error'][:500]}")
            traceback.print_exc()
        results.append(entry)
    summary = {"parameters": params, "notebooks": results, "ok": ok, "seconds": round(time.perf_counter() - started, 1),
               "dataset": dataset_description(dataset, layout, category, seed), "environment": environment()}
    atomic_write_json(run_dir / "summary.json", summary)
    with atomic_write(run_dir / "summary.md", "w") as handle:
        handle.write(summary_markdown(summary))
    log(f"summary: {run_dir / 'summary.md'}")
    if report:
        from exdd_lab.lab.report import write_report

        try:
            write_report(run_dir, summary, log=log)
        except Exception as exc:  # a broken report must not hide the run's results
            ok = False
            log(f"report FAILED: {type(exc).__name__}: {exc}")
            traceback.print_exc()
    return run_dir, ok


def dataset_description(dataset: str, layout: str, category: str = "", seed: int = 0) -> dict:
    """Name, root, split protocol and counts of the run's dataset (before any small-mode subset)."""
    from exdd_lab.data import load_dataset

    try:
        ds = load_dataset(dataset, layout, category or None, seed=seed)
    except Exception as exc:  # the notebooks report the same problem in full
        return {"name": Path(dataset).name, "error": f"{type(exc).__name__}: {exc}"}
    return {"name": ds.name, "root": str(ds.root), "split": ds.split_info, "counts": ds.counts(),
            "defect types": ", ".join(ds.defect_types) or "–"}


def environment() -> dict:
    """What matters for reproducing a run: versions, device, the backbone and where its weights come from."""
    import diffusers
    import faiss
    import numpy
    import timm
    import torch

    from exdd_lab.components.device import describe_device
    from exdd_lab.features import FeatureConfig, resolve_weights

    config = FeatureConfig()
    try:
        weights = resolve_weights(config.backbone, config.weights).description
    except Exception as exc:  # the notebooks fail with the full message; the report says why
        weights = f"not found: {exc}"
    return {"python": platform.python_version(), "torch": torch.__version__, "timm": timm.__version__,
            "diffusers": diffusers.__version__, "faiss": faiss.__version__, "numpy": numpy.__version__,
            "device": describe_device(), "backbone": f"{config.backbone}, layers {config.resolved_layers}", "weights": weights,
            "platform": platform.platform(), "threads": torch.get_num_threads(),
            "time_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"), "epoch": time.time()}


def summary_markdown(summary: dict) -> str:
    """A short human-readable account of a run."""
    p = summary["parameters"]
    lines = [f"# exdd_lab run: {p['dataset']} ({p['layout']})", "",
             f"fast mode: {p['fast']} · seed: {p['seed']} · image size: {p['image_size']}", ""]
    for entry in summary["notebooks"]:
        m = entry.get("metrics", {})
        for key in ("dataset", "backbone", "weights"):
            if key in m and f"- {key}: {m[key]}" not in lines:
                lines.append(f"- {key}: {m[key]}")
    lines += ["", "| notebook | status | seconds | key numbers |", "|---|---|---|---|"]
    for entry in summary["notebooks"]:
        m = entry.get("metrics", {})
        nums = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in m.items()
                         if isinstance(v, (int, float)) and not isinstance(v, bool))
        lines.append(f"| {entry['notebook']} | {entry['status']} | {entry.get('seconds', '')} | {nums} |")
    lines += ["", f"environment: {summary['environment']['python']} · torch {summary['environment']['torch']} · "
                  f"timm {summary['environment']['timm']} · {summary['environment']['threads']} threads", ""]
    return "\n".join(lines)
