"""The kit's numbers next to a paper's table, on the split the paper used.

A number means something beside a published one only on the same protocol: MTD's DifferNet split
(``load_dataset(..., split="differnet")``) is the one behind the literature's MTD table. Papers publish
image AUROC only; the kit adds pixel AUROC and AUPRO, which no paper reports on that split.
Used by ``exdd-lab evaluate`` and notebook 02 (full mode).
"""
from __future__ import annotations

import pandas as pd


def published_numbers(metrics: dict) -> dict[str, float]:
    """The published image AUROCs (%) recorded in a run's ``split`` (empty when its protocol has none)."""
    return dict((metrics.get("split") or {}).get("published_image_auroc") or {})


def published_comparison(metrics: dict, label: str | None = None) -> pd.DataFrame:
    """One row for the kit's run (``metrics`` as ``run_evaluation`` returns it) and one per published
    method: image AUROC in %, and pixel AUROC / AUPRO in % where known (papers do not publish them)."""
    published = published_numbers(metrics)
    if not published:
        raise ValueError(f"split {metrics.get('split', {}).get('protocol', '?')!r} has no published numbers: "
                         "load MTD with split='differnet' (exdd-lab evaluate --split differnet)")
    name = label or f"exdd_lab {metrics.get('method', '?')} ({metrics.get('backbone', '?')}, this run)"
    rows = {name: {"image AUROC %": 100 * metrics["image_auroc"], "pixel AUROC %": 100 * metrics["pixel_auroc"],
                   "AUPRO %": 100 * metrics["aupro"]}}
    for paper, value in published.items():
        rows[paper] = {"image AUROC %": value, "pixel AUROC %": float("nan"), "AUPRO %": float("nan")}
    return pd.DataFrame.from_dict(rows, orient="index").round(1)


def format_comparison(metrics: dict) -> str:
    """The comparison as text for a terminal (``n/p`` = not published)."""
    table = published_comparison(metrics)
    return table.to_string(na_rep="n/p")
