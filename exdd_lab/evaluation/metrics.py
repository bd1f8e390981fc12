"""Honest evaluation: image and pixel AUROC, AUPRO, average precision, F1 at the best threshold,
and a threshold chosen from normal images alone.

Conventions: higher score = more anomalous; label 1 = defect. Image scores ``(N,)``; pixel
maps ``(N, H, W)`` float with masks ``(N, H, W)`` bool. Undefined metrics (e.g. AUROC with one
class only) are ``nan``, never a made-up number. Taught in ``notebooks/02_negative_only_baselines.ipynb``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

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


def auroc_ap_from_counts(tp: np.ndarray, fp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUROC (trapezoid, so ties count half) and step-wise AP from cumulative (possibly weighted) counts.

    ``tp, fp``: ``(..., T)``, highest threshold first; every leading row is one curve (the bootstrap
    passes one row per resample). Repeated points (a threshold that adds nothing) add nothing.
    """
    tp, fp = np.asarray(tp, np.float64), np.asarray(fp, np.float64)
    zero = np.zeros(tp.shape[:-1] + (1,))
    p, n = tp[..., -1:], fp[..., -1:]
    tpr, fpr = np.concatenate([zero, tp], -1) / p, np.concatenate([zero, fp], -1) / n
    area = np.sum(np.diff(fpr, axis=-1) * (tpr[..., 1:] + tpr[..., :-1]) / 2, axis=-1)
    precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
    ap = np.sum(np.diff(np.concatenate([zero, tp], -1), axis=-1) / p * precision, axis=-1)
    return area, ap


def f1_max_from_counts(tp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """The best F1 over the thresholds of cumulative counts ``(..., T)``: 2 tp / (predicted + actual)."""
    tp, fp = np.asarray(tp, np.float64), np.asarray(fp, np.float64)
    return np.max(2 * tp / np.maximum(tp + fp + tp[..., -1:], 1e-300), axis=-1)


def _image_counts(labels, scores) -> tuple[np.ndarray, np.ndarray] | None:
    labels = np.asarray(labels).ravel().astype(bool)
    scores = np.asarray(scores, np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"{labels.size} labels but {scores.size} scores")
    return _descending_counts(labels, scores) if _both_classes(labels) else None


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (ties count half); ``nan`` if only one class is present. Equals scikit-learn's."""
    counts = _image_counts(labels, scores)
    return float(auroc_ap_from_counts(*counts)[0]) if counts else float("nan")


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision, step-wise as scikit-learn defines it; ``nan`` without both classes."""
    counts = _image_counts(labels, scores)
    return float(auroc_ap_from_counts(*counts)[1]) if counts else float("nan")


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


DEFAULT_BINS = 1 << 18
NORMAL_GROUP = "__normal__"


class PixelMetrics(NamedTuple):
    """The pixel-level numbers of one evaluation (a tuple, so ``auroc, ap, aupro = ...`` still reads)."""

    pixel_auroc: float = float("nan")
    pixel_ap: float = float("nan")
    aupro: float = float("nan")


class PixelHistogram:
    """Pixel metrics without sorting tens of millions of pixels: one pass, memory ``O(bins)``.

    Scores are binned on a fixed range into ``bins`` (262,144 by default) equal-width bins; per
    group (e.g. per defect type) it counts normal pixels, defect pixels and the *region-overlap
    mass* (each pixel of connected defect region ``r`` adds ``1/|r|``). Every threshold between
    bins is then exact; scores closer than ``(hi - lo) / bins`` count as tied (the metrics change by
    less than that share of pixel pairs). Groups can be summed, so per-type metrics cost nothing extra.
    """

    def __init__(self, lo: float, hi: float, bins: int = DEFAULT_BINS) -> None:
        self.lo, self.bins = float(lo), int(bins)
        self.scale = bins / (float(hi) - float(lo)) if hi > lo else 0.0
        self.groups: dict[str, dict] = {}

    def add(self, mask: np.ndarray, score_map: np.ndarray, group: str = "all") -> None:
        """Accumulate one image: ``mask (H, W) bool``, ``score_map (H, W)``."""
        mask = np.asarray(mask, bool)
        score_map = np.asarray(score_map)
        if mask.shape != score_map.shape:
            raise ValueError(f"masks {mask.shape} and maps {score_map.shape} must have the same shape")
        g = self.groups.setdefault(group, {"normal": np.zeros(self.bins), "defect": np.zeros(self.bins),
                                           "overlap": np.zeros(self.bins), "regions": 0})
        idx = np.clip(((score_map.astype(np.float64) - self.lo) * self.scale).astype(np.int64), 0, self.bins - 1)
        g["normal"] += np.bincount(idx[~mask], minlength=self.bins)
        if mask.any():
            overlap, n = region_overlap_weights(mask)
            g["defect"] += np.bincount(idx[mask], minlength=self.bins)
            g["overlap"] += np.bincount(idx[mask], weights=overlap, minlength=self.bins)
            g["regions"] += n

    def metrics(self, groups: list[str] | None = None, fpr_limit: float = 0.3) -> PixelMetrics:
        """``(pixel AUROC, pixel AP, AUPRO)`` over the chosen groups (all by default); ``nan`` where undefined."""
        chosen = [self.groups[g] for g in (groups if groups is not None else self.groups) if g in self.groups]
        if not chosen:
            return PixelMetrics()
        normal = sum(g["normal"] for g in chosen)
        defect = sum(g["defect"] for g in chosen)
        overlap = sum(g["overlap"] for g in chosen)
        regions = sum(g["regions"] for g in chosen)
        return PixelMetrics(*(float(v) for v in pixel_metrics_from_counts(normal, defect, overlap, regions, fpr_limit)))

    def best_f1(self, groups: list[str] | None = None) -> tuple[float, float]:
        """The best pixel F1 over all bin thresholds, and that threshold (decision: ``map >= threshold``).

        The threshold is the lower edge of a bin, so it is exact up to the bin width. ``nan`` without
        defect pixels.
        """
        chosen = [self.groups[g] for g in (groups if groups is not None else self.groups) if g in self.groups]
        if not chosen:
            return float("nan"), float("nan")
        tp = np.cumsum(sum(g["defect"] for g in chosen)[::-1])  # position j: every bin >= bins - 1 - j
        fp = np.cumsum(sum(g["normal"] for g in chosen)[::-1])
        if tp[-1] == 0:
            return float("nan"), float("nan")
        f1 = 2 * tp / np.maximum(tp + fp + tp[-1], 1)  # 2PR/(P+R) = 2tp / (predicted + actual)
        best = int(np.argmax(f1))
        edge = self.bins - 1 - best
        threshold = self.lo + edge / self.scale if self.scale > 0 else self.lo
        return float(f1[best]), float(threshold)


def region_overlap_weights(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Each defect pixel's share of its connected region (``1/|r|``, 8-connectivity), in ``mask``'s
    pixel order, and the number of regions: what makes every region weigh equally in AUPRO."""
    lab, n = ndi.label(mask, structure=np.ones((3, 3), bool))
    sizes = np.bincount(lab.ravel())
    return 1.0 / sizes[lab[mask]], int(n)


def pixel_metrics_from_counts(normal: np.ndarray, defect: np.ndarray, overlap: np.ndarray, regions,
                              fpr_limit: float = 0.3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel AUROC, pixel AP and AUPRO from per-bin counts ``(..., bins)`` (lowest score bin first) of
    normal pixels, defect pixels and region-overlap mass, with ``regions`` regions; every leading row is
    one histogram (one bootstrap resample). ``nan`` where a row has no defect or no normal pixel."""
    fp = np.cumsum(np.asarray(normal, np.float64)[..., ::-1], axis=-1)  # highest scores first
    tp = np.cumsum(np.asarray(defect, np.float64)[..., ::-1], axis=-1)
    ov = np.cumsum(np.asarray(overlap, np.float64)[..., ::-1], axis=-1)
    regions = np.asarray(regions, np.float64)
    valid = (tp[..., -1] > 0) & (fp[..., -1] > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        pixel_auroc, pixel_ap = auroc_ap_from_counts(tp, fp)
        zero = np.zeros(fp.shape[:-1] + (1,))
        fpr = np.minimum(np.concatenate([zero, fp], -1) / fp[..., -1:], 1.0)
        pro = np.minimum(np.concatenate([zero, ov], -1) / np.maximum(regions, 1e-300)[..., None], 1.0)
        area = area_to_limit(fpr, pro, fpr_limit)
    nan = np.float64("nan")
    return np.where(valid, pixel_auroc, nan), np.where(valid, pixel_ap, nan), np.where(valid, area, nan)


def pixel_histogram(masks: np.ndarray, maps: np.ndarray, groups: list[str] | None = None,
                    bins: int = DEFAULT_BINS) -> PixelHistogram:
    """Accumulate ``masks, maps (N, H, W)`` (optionally one group name per image) into a :class:`PixelHistogram`."""
    masks, maps = np.asarray(masks).astype(bool), np.asarray(maps)
    if masks.shape != maps.shape:
        raise ValueError(f"masks {masks.shape} and maps {maps.shape} must have the same shape")
    if masks.ndim == 2:
        masks, maps = masks[None], maps[None]
    hist = PixelHistogram(float(maps.min()), float(maps.max()), bins)
    for i in range(len(masks)):
        hist.add(masks[i], maps[i], groups[i] if groups is not None else "all")
    return hist


def pixel_metrics(masks: np.ndarray, maps: np.ndarray, fpr_limit: float = 0.3) -> PixelMetrics:
    """``(pixel AUROC, pixel AP, AUPRO)``. AUPRO is the area under the per-region-overlap curve up to
    ``fpr_limit`` false-positive rate, divided by it: each connected defect region (8-connectivity, per
    image) weighs equally, however large (Bergmann et al., MVTec AD); equal scores form one step, joined
    linearly (as ROC ties). Values lie in ``[0, 1]``; ``nan`` without defect or normal pixels."""
    return pixel_histogram(masks, maps).metrics(fpr_limit=fpr_limit)


def area_to_limit(fpr: np.ndarray, pro: np.ndarray, limit: float) -> np.ndarray:
    """Trapezoid area under ``pro(fpr)`` from 0 to ``limit`` over ``limit``; ``fpr`` non-decreasing along the
    last axis (each leading row one curve). The segment that crosses ``limit`` counts up to it, its end
    interpolated linearly."""
    x0, x1, y0, y1 = fpr[..., :-1], fpr[..., 1:], pro[..., :-1], pro[..., 1:]
    end = np.minimum(x1, limit)
    width = np.clip(end - x0, 0.0, None)
    slope = np.divide(y1 - y0, x1 - x0, out=np.zeros_like(y0), where=x1 > x0)
    y_end = np.where(x1 > limit, y0 + slope * (end - x0), y1)
    area = np.sum(width * (y0 + y_end) / 2, axis=-1)
    return np.clip(area / limit, 0.0, 1.0)


def aupro(masks: np.ndarray, maps: np.ndarray, fpr_limit: float = 0.3) -> float:
    """AUPRO alone (see :func:`pixel_metrics`)."""
    return pixel_metrics(masks, maps, fpr_limit).aupro


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

    def set_pixels(self, pixels: PixelMetrics) -> None:
        """Take the pixel-level numbers (every field of :class:`PixelMetrics`)."""
        for name, value in pixels._asdict().items():
            setattr(self, name, value)


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
        ev.set_pixels(pixel_metrics(masks, maps, fpr_limit))
    return ev


def per_type_table(labels, image_scores, defect_types, masks=None, maps=None, hist: PixelHistogram | None = None):
    """One row per defect type: that type's defect images against ALL normal test images.

    Pixel metrics come from one :class:`PixelHistogram` whose groups are the image types (built here
    from ``masks``/``maps`` unless given), so no pixel is sorted or copied per type.
    """
    import pandas as pd

    labels, types = np.asarray(labels).astype(bool), np.asarray(defect_types)
    groups = [NORMAL_GROUP if not l else t for l, t in zip(labels, types)]
    if hist is None and masks is not None and maps is not None:
        hist = pixel_histogram(masks, maps, groups)
    rows = []
    for kind in sorted(set(types[labels])):
        keep = (~labels) | (types == kind)
        ev = evaluate(labels[keep], np.asarray(image_scores)[keep])
        if hist is not None:
            ev.set_pixels(hist.metrics([NORMAL_GROUP, kind]))
        rows.append({"defect_type": kind, "n_defect": int((types == kind).sum()), **ev.as_dict()})
    return pd.DataFrame(rows)
