"""Honest evaluation: image and pixel AUROC, AUPRO, average precision, F1 at the best threshold,
and a threshold chosen from normal images alone.

Conventions: higher score = more anomalous; label 1 = defect. Image scores ``(N,)``; pixel
maps ``(N, H, W)`` float with masks ``(N, H, W)`` bool. Undefined metrics (e.g. AUROC with one
class only) are ``nan``, never a made-up number. Taught in ``notebooks/02_negative_only_baselines.ipynb``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score


def _both_classes(labels: np.ndarray) -> bool:
    return 0 < int(np.sum(labels)) < len(labels)


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (ties count half); ``nan`` if only one class is present."""
    labels, scores = np.asarray(labels).ravel().astype(bool), np.asarray(scores, np.float64).ravel()
    return float(roc_auc_score(labels, scores)) if _both_classes(labels) else float("nan")


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision (area under the precision-recall curve, step-wise); ``nan`` without both classes."""
    labels, scores = np.asarray(labels).ravel().astype(bool), np.asarray(scores, np.float64).ravel()
    return float(average_precision_score(labels, scores)) if _both_classes(labels) else float("nan")


def f1_max(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """The best F1 over all thresholds and that threshold (decision: ``score >= threshold``)."""
    labels, scores = np.asarray(labels).ravel().astype(bool), np.asarray(scores, np.float64).ravel()
    if not labels.any():
        return float("nan"), float("nan")
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    best = int(np.argmax(f1))
    return float(f1[best]), float(thresholds[best])


def normal_only_threshold(normal_scores: np.ndarray, quantile: float = 0.99) -> float:
    """A threshold from held-out normal images only: the ``quantile`` of their scores.

    For when no defect examples exist to tune on; ``1 - quantile`` is the expected false-alarm rate.
    """
    scores = np.asarray(normal_scores, np.float64).ravel()
    if scores.size == 0:
        raise ValueError("normal_only_threshold needs at least one held-out normal score")
    return float(np.quantile(scores, quantile))


def aupro(masks: np.ndarray, maps: np.ndarray, fpr_limit: float = 0.3) -> float:
    """Area under the per-region-overlap curve up to ``fpr_limit`` false-positive rate, divided by it.

    Each connected defect region (8-connectivity, per image) weighs equally, however large: the
    metric of Bergmann et al. (MVTec AD). Exact and fast: one sort of all pixel scores, each pixel
    contributing ``1/#normal pixels`` to the FPR or ``1/(#regions x region size)`` to the mean
    overlap, cumulated in score order; equal scores form one step, joined linearly (as ROC ties).
    Returns a value in ``[0, 1]``; ``nan`` if there is no defect region or no normal pixel.
    """
    masks = np.asarray(masks).astype(bool)
    maps = np.asarray(maps, np.float64)
    if masks.shape != maps.shape:
        raise ValueError(f"masks {masks.shape} and maps {maps.shape} must have the same shape")
    if masks.ndim == 2:
        masks, maps = masks[None], maps[None]
    weights = np.zeros(masks.shape, np.float64)
    regions = 0
    labelled = []
    for m in masks:
        lab, n = ndi.label(m, structure=np.ones((3, 3), bool))
        labelled.append((lab, n))
        regions += n
    n_normal = int((~masks).sum())
    if regions == 0 or n_normal == 0:
        return float("nan")
    fpr_w = np.where(masks, 0.0, 1.0 / n_normal)
    for i, (lab, n) in enumerate(labelled):
        if n:
            sizes = np.bincount(lab.ravel())
            weights[i] = np.where(lab > 0, 1.0 / (regions * sizes[lab]), 0.0)
    order = np.argsort(-maps.ravel(), kind="stable")
    s = maps.ravel()[order]
    fpr = np.cumsum(fpr_w.ravel()[order])
    pro = np.cumsum(weights.ravel()[order])
    last_of_tie = np.r_[s[1:] != s[:-1], True]  # a threshold can only fall between distinct scores
    fpr = np.r_[0.0, fpr[last_of_tie]]
    pro = np.r_[0.0, pro[last_of_tie]]
    fpr, pro = np.minimum(fpr, 1.0), np.minimum(pro, 1.0)
    # integrate up to fpr_limit, interpolating the crossing point
    end = np.searchsorted(fpr, fpr_limit, side="right")
    xs, ys = fpr[:end], pro[:end]
    if end < len(fpr):
        x0, x1, y0, y1 = fpr[end - 1], fpr[end], pro[end - 1], pro[end]
        y_lim = y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0) if x1 > x0 else y1
        xs, ys = np.r_[xs, fpr_limit], np.r_[ys, y_lim]
    area = float(np.trapezoid(ys, xs)) if hasattr(np, "trapezoid") else float(np.trapz(ys, xs))
    return float(np.clip(area / fpr_limit, 0.0, 1.0))


@dataclass
class Evaluation:
    """All numbers of one method on one split; ``as_dict`` is what ``metrics.json`` holds."""

    image_auroc: float
    image_ap: float
    f1_max: float
    f1_threshold: float
    pixel_auroc: float = float("nan")
    pixel_ap: float = float("nan")
    aupro: float = float("nan")

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


def evaluate(
    labels: np.ndarray,
    image_scores: np.ndarray,
    masks: np.ndarray | None = None,
    maps: np.ndarray | None = None,
    fpr_limit: float = 0.3,
) -> Evaluation:
    """Image metrics always; pixel metrics when masks and maps are given (same shape ``(N, H, W)``)."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(image_scores, np.float64)
    if labels.shape != scores.shape:
        raise ValueError(f"{labels.shape[0]} labels but {scores.shape[0]} image scores")
    f1, thr = f1_max(labels, scores)
    ev = Evaluation(auroc(labels, scores), average_precision(labels, scores), f1, thr)
    if masks is not None and maps is not None:
        masks, maps = np.asarray(masks).astype(bool), np.asarray(maps, np.float32)
        if masks.shape != maps.shape:
            raise ValueError(f"masks {masks.shape} and anomaly maps {maps.shape} must have the same shape")
        ev.pixel_auroc = auroc(masks, maps)
        ev.pixel_ap = average_precision(masks, maps)
        ev.aupro = aupro(masks, maps, fpr_limit)
    return ev


def per_type_table(labels, image_scores, defect_types, masks=None, maps=None):
    """One row per defect type: that type's defect images against ALL normal test images."""
    import pandas as pd

    labels, types = np.asarray(labels).astype(bool), np.asarray(defect_types)
    rows = []
    for kind in sorted(set(types[labels])):
        keep = (~labels) | (types == kind)
        ev = evaluate(labels[keep], np.asarray(image_scores)[keep],
                      None if masks is None else np.asarray(masks)[keep], None if maps is None else np.asarray(maps)[keep])
        rows.append({"defect_type": kind, "n_defect": int((types == kind).sum()), **ev.as_dict()})
    return pd.DataFrame(rows)
