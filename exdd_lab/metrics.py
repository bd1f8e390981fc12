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
from sklearn.metrics import precision_recall_curve


def _both_classes(labels: np.ndarray) -> bool:
    return 0 < int(np.sum(labels)) < len(labels)


def _descending_counts(labels: np.ndarray, scores: np.ndarray):
    """Cumulative (true positives, false positives) at every distinct threshold, highest score first.

    One sort serves AUROC and AP; equal scores form one step (one threshold cannot split a tie).
    """
    order = np.argsort(-scores)
    s, y = scores[order], labels[order]
    last_of_tie = np.r_[s[1:] != s[:-1], True]
    tp = np.cumsum(y, dtype=np.int64)[last_of_tie]
    fp = np.cumsum(~y, dtype=np.int64)[last_of_tie]
    return tp, fp


def _prepare(labels, scores):
    labels = np.asarray(labels).ravel().astype(bool)
    scores = np.asarray(scores).ravel()
    scores = scores.astype(np.float32 if scores.size > 1_000_000 else np.float64, copy=False)
    if labels.shape != scores.shape:
        raise ValueError(f"{labels.size} labels but {scores.size} scores")
    return labels, scores


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (ties count half); ``nan`` if only one class is present.

    Exact, from one sort (fast enough for tens of millions of pixels); equals scikit-learn's value.
    """
    labels, scores = _prepare(labels, scores)
    if not _both_classes(labels):
        return float("nan")
    tp, fp = _descending_counts(labels, scores)
    tpr, fpr = np.r_[0, tp] / tp[-1], np.r_[0, fp] / fp[-1]
    return float(np.sum((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2))


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision, step-wise as scikit-learn defines it; ``nan`` without both classes."""
    labels, scores = _prepare(labels, scores)
    if not _both_classes(labels):
        return float("nan")
    tp, fp = _descending_counts(labels, scores)
    precision = tp / np.maximum(tp + fp, 1)
    recall_step = np.diff(np.r_[0, tp]) / tp[-1]
    return float(np.sum(recall_step * precision))


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


def _region_ids(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Connected defect regions (8-connectivity, per image) numbered 1..R across all images; 0 = normal.

    Returns ``(ids (N, H, W) int32, sizes (R + 1,))``.
    """
    ids = np.zeros(masks.shape, np.int32)
    offset = 0
    for i, m in enumerate(masks):
        if m.any():
            lab, n = ndi.label(m, structure=np.ones((3, 3), bool))
            ids[i] = np.where(lab > 0, lab + offset, 0)
            offset += n
    return ids, np.bincount(ids.ravel(), minlength=offset + 1)


def pixel_metrics(masks: np.ndarray, maps: np.ndarray, fpr_limit: float = 0.3) -> tuple[float, float, float]:
    """``(pixel AUROC, pixel AP, AUPRO)`` from ONE sort of all pixel scores (tens of millions on a CPU).

    AUPRO is the area under the per-region-overlap curve up to ``fpr_limit`` false-positive rate,
    divided by it: each connected defect region (8-connectivity, per image) weighs equally, however
    large (Bergmann et al., MVTec AD). Each normal pixel adds ``1/#normal`` to the FPR, each pixel of
    region ``r`` adds ``1/(#regions x |r|)`` to the mean overlap, cumulated in score order; equal
    scores form one step, joined linearly (as ROC ties). Undefined values are ``nan``.
    """
    masks = np.asarray(masks).astype(bool)
    maps = np.asarray(maps)
    if masks.shape != maps.shape:
        raise ValueError(f"masks {masks.shape} and maps {maps.shape} must have the same shape")
    if masks.ndim == 2:
        masks, maps = masks[None], maps[None]
    flat = maps.ravel().astype(np.float32 if maps.size > 1_000_000 else np.float64, copy=False)
    y = masks.ravel()
    if not _both_classes(y):
        return float("nan"), float("nan"), float("nan")
    order = np.argsort(-flat)
    s, ys = flat[order], y[order]
    last = np.r_[s[1:] != s[:-1], True]  # a threshold can only fall between distinct scores
    tp = np.cumsum(ys, dtype=np.int64)[last]
    fp = np.cumsum(~ys, dtype=np.int64)[last]
    tpr, fpr = np.r_[0, tp] / tp[-1], np.r_[0, fp] / fp[-1]
    pixel_auroc = float(np.sum((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2))
    pixel_ap = float(np.sum(np.diff(np.r_[0, tp]) / tp[-1] * tp / np.maximum(tp + fp, 1)))
    ids, sizes = _region_ids(masks)
    n_regions = len(sizes) - 1
    weight = np.zeros(len(sizes))
    weight[1:] = 1.0 / (n_regions * sizes[1:])
    pro = np.r_[0.0, np.cumsum(weight[ids.ravel()[order]])[last]]
    return pixel_auroc, pixel_ap, _area_to_limit(np.minimum(fpr, 1.0), np.minimum(pro, 1.0), fpr_limit)


def _area_to_limit(fpr: np.ndarray, pro: np.ndarray, limit: float) -> float:
    """Trapezoid area under ``pro(fpr)`` from 0 to ``limit`` (interpolating the crossing), over ``limit``."""
    end = np.searchsorted(fpr, limit, side="right")
    xs, ys = fpr[:end], pro[:end]
    if end < len(fpr):
        x0, x1, y0, y1 = fpr[end - 1], fpr[end], pro[end - 1], pro[end]
        y_lim = y0 + (y1 - y0) * (limit - x0) / (x1 - x0) if x1 > x0 else y1
        xs, ys = np.r_[xs, limit], np.r_[ys, y_lim]
    area = float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2))
    return float(np.clip(area / limit, 0.0, 1.0))


def aupro(masks: np.ndarray, maps: np.ndarray, fpr_limit: float = 0.3) -> float:
    """AUPRO alone (see :func:`pixel_metrics`): in ``[0, 1]``, ``nan`` without defect regions or normal pixels."""
    return pixel_metrics(masks, maps, fpr_limit)[2]


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
        ev.pixel_auroc, ev.pixel_ap, ev.aupro = pixel_metrics(masks, maps, fpr_limit)
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
