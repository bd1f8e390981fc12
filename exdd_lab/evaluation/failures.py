"""Looking at failures: which images a method gets most wrong, and where methods disagree.

Works on the tidy table of :mod:`exdd_lab.evaluation.results` (one row per image and method). Taught in
``notebooks/02_negative_only_baselines.ipynb`` (:func:`hardest_cases`) and, at length, in
``notebooks/06_failure_case_analysis.ipynb``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from exdd_lab.errors import ExddError
from exdd_lab.evaluation.results import OUTCOMES, THRESHOLD_KINDS

CASE_KINDS = OUTCOMES + ("disagreement",)


def hardest_cases(labels: np.ndarray, scores: np.ndarray, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the ``k`` highest-scoring normal images (worst false alarms) and the ``k``
    lowest-scoring defect images (worst misses), most severe first."""
    labels, scores = np.asarray(labels).astype(bool), np.asarray(scores, np.float64)
    normal, defect = np.flatnonzero(~labels), np.flatnonzero(labels)
    false_alarms = normal[np.argsort(-scores[normal], kind="stable")][:k]
    misses = defect[np.argsort(scores[defect], kind="stable")][:k]
    return false_alarms, misses


def _check_threshold(table: pd.DataFrame, threshold: str) -> None:
    if threshold not in THRESHOLD_KINDS:
        raise ExddError(f"unknown threshold kind {threshold!r}", f"choose one of {', '.join(THRESHOLD_KINDS)}")
    if table[f"outcome_{threshold}"].isna().all():
        raise ExddError(f"the results have no {threshold} threshold",
                        "pass held-out normal scores to build_results (normal_scores=...) for normal-only thresholds")


def ranked_cases(table: pd.DataFrame, method: str, kind: str, threshold: str = "f1", k: int | None = None) -> pd.DataFrame:
    """One method's images of one outcome, the most telling first.

    FN: lowest score first (the most confident misses); FP: highest score first (the loudest false
    alarms); TP: highest first; TN: lowest first. ``kind="disagreement"`` ignores ``method`` and
    returns :func:`disagreements`. Ties keep test-split order.
    """
    if kind == "disagreement":
        return disagreements(table, threshold, k)
    if kind not in OUTCOMES:
        raise ExddError(f"unknown case kind {kind!r}", f"choose one of {', '.join(CASE_KINDS)}")
    _check_threshold(table, threshold)
    rows = table[(table["method"] == method) & (table[f"outcome_{threshold}"] == kind)]
    if rows.empty and method not in set(table["method"]):
        raise ExddError(f"unknown method {method!r}", f"choose one of {', '.join(table['method'].unique())}")
    rows = rows.sort_values(["score", "image_id"], ascending=[kind in ("FN", "TN"), True], kind="stable")
    return rows.head(k) if k is not None else rows


def disagreements(table: pd.DataFrame, threshold: str = "f1", k: int | None = None) -> pd.DataFrame:
    """Images on which the methods' decisions differ, one row each, most disputed first.

    ``spread`` is the largest difference in ``score_rank`` between two methods (ranks compare across
    methods whose raw scores do not); ``n_right`` counts the methods that decided correctly. Columns
    ``decision_<method>`` and ``rank_<method>`` show each method's view.
    """
    _check_threshold(table, threshold)
    decisions = table.pivot(index="image_id", columns="method", values=f"decision_{threshold}")
    decisions = decisions.dropna(axis=1, how="all").astype(int)  # methods without this threshold take no part
    ranks = table.pivot(index="image_id", columns="method", values="score_rank")[decisions.columns]
    info = table.drop_duplicates("image_id").set_index("image_id")[["stem", "label", "defect_type", "image_path"]]
    split = decisions.nunique(axis=1) > 1
    out = info.loc[split].copy()
    out["n_right"] = (decisions.loc[split].to_numpy() == out["label"].to_numpy()[:, None]).sum(axis=1)
    out["spread"] = (ranks.loc[split].max(axis=1) - ranks.loc[split].min(axis=1)).to_numpy()
    for method in decisions.columns:
        out[f"decision_{method}"] = decisions.loc[split, method]
        out[f"rank_{method}"] = ranks.loc[split, method]
    out = out.reset_index().sort_values(["spread", "image_id"], ascending=[False, True], kind="stable")
    return out.head(k) if k is not None else out


def failure_ranking(table: pd.DataFrame, k: int = 5) -> pd.DataFrame:
    """The top ``k`` false negatives and false positives of every method at every threshold present:
    one row per (method, threshold, kind, rank)."""
    frames = []
    for threshold in THRESHOLD_KINDS:
        if table[f"outcome_{threshold}"].isna().all():
            continue
        for method in table["method"].unique():
            for kind in ("FN", "FP"):
                rows = ranked_cases(table, method, kind, threshold, k)
                frames.append(rows.assign(threshold=threshold, kind=kind, rank=np.arange(1, len(rows) + 1))
                              [["method", "threshold", "kind", "rank", "image_id", "stem", "defect_type", "score",
                                f"threshold_{threshold}", "score_rank", "pixel_auroc", "iou", "flagged_fraction"]]
                              .rename(columns={f"threshold_{threshold}": "threshold_value"}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def error_sets(table: pd.DataFrame, threshold: str = "f1") -> dict[str, dict[str, set[int]]]:
    """``{method: {"FN": {image ids}, "FP": {...}}}`` at one threshold: for comparing who misses what."""
    _check_threshold(table, threshold)
    out = {}
    for method, rows in table.groupby("method", sort=False):
        out[method] = {kind: set(rows.loc[rows[f"outcome_{threshold}"] == kind, "image_id"].astype(int))
                       for kind in ("FN", "FP")}
    return out
