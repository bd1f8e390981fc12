"""The tidy results table: one row per (test image, method), everything an analyst filters on.

A :class:`ResultSet` keeps the predictions of several methods on ONE split next to that table, so
the failure ranking (:mod:`exdd_lab.evaluation.failures`), the figures (:mod:`exdd_lab.plots.failures`) and
the browser (:mod:`exdd_lab.plots.browser`) all read the same numbers. Columns of ``ResultSet.table``:

- image: ``image_id`` (position in the test split), ``image_path``, ``stem``, ``label``,
  ``defect_type``, ``has_mask``, ``mask_fraction``;
- decision: ``method``, ``score``, ``score_rank`` (share of this method's test scores at or below it,
  so ranks compare across methods whose scores do not), and for each threshold kind ``t`` in
  ``f1`` (the F1-optimal image threshold on this split) and ``normal_only`` (a quantile of held-out
  normal scores, when given): ``threshold_t``, ``decision_t`` (1 = called defect), ``outcome_t``
  (TP / FP / TN / FN);
- pixels: ``pixel_threshold`` (the method's F1-optimal pixel threshold on this split),
  ``pixel_auroc`` (this image's pixels; defect images with a mask), ``iou`` and ``dice`` of
  ``map >= pixel_threshold`` with the mask, ``flagged_fraction`` (share of pixels above it; on a
  normal image, the false-alarm area), ``peak_y``, ``peak_x``, ``peak_in_mask``.

Taught in ``notebooks/06_failure_case_analysis.ipynb``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from exdd_lab.data.imageio import load_image, sample_mask
from exdd_lab.data.records import Sample
from exdd_lab.errors import ExddError
from exdd_lab.methods.base import Prediction
from exdd_lab.evaluation.metrics import PixelHistogram, auroc, f1_max, normal_only_threshold
from exdd_lab.storage import atomic_path, atomic_write

THRESHOLD_KINDS = ("f1", "normal_only")
OUTCOMES = ("TP", "FP", "TN", "FN")


def outcomes(labels: np.ndarray, decisions: np.ndarray) -> np.ndarray:
    """TP / FP / TN / FN per image from labels (1 = defect) and decisions (1 = called defect)."""
    labels, decisions = np.asarray(labels).astype(bool), np.asarray(decisions).astype(bool)
    return np.where(labels, np.where(decisions, "TP", "FN"), np.where(decisions, "FP", "TN"))


def image_pixel_metrics(mask: np.ndarray, score_map: np.ndarray, pixel_threshold: float) -> dict:
    """One image's pixel numbers: AUROC of its own pixels (needs defect and normal pixels), IoU and Dice
    of ``map >= pixel_threshold`` with the mask (defect images), the flagged share, the peak and
    whether it lies inside the mask."""
    mask, score_map = np.asarray(mask, bool), np.asarray(score_map, np.float64)
    if mask.shape != score_map.shape:
        raise ValueError(f"mask {mask.shape} and map {score_map.shape} must have the same shape")
    flagged = score_map >= pixel_threshold if np.isfinite(pixel_threshold) else np.zeros_like(mask)
    peak_y, peak_x = np.unravel_index(int(np.argmax(score_map)), score_map.shape)
    row = {"pixel_auroc": float("nan"), "iou": float("nan"), "dice": float("nan"),
           "flagged_fraction": float(flagged.mean()), "peak_y": int(peak_y), "peak_x": int(peak_x),
           "peak_in_mask": float("nan")}
    if mask.any():
        inter, union = float(np.sum(flagged & mask)), float(np.sum(flagged | mask))
        row.update(iou=inter / union, dice=2 * inter / (float(flagged.sum()) + float(mask.sum())),
                   peak_in_mask=float(mask[peak_y, peak_x]), pixel_auroc=auroc(mask.ravel(), score_map.ravel()))
    return row


def _masks(samples: Sequence[Sample], image_size: int) -> list[np.ndarray | None]:
    """Ground truth per image at the maps' size: the mask, zeros for normals, ``None`` if unknown."""
    out = []
    for s in samples:
        if s.mask_path:
            out.append(sample_mask(s, image_size))
        else:
            out.append(None if s.is_defect else np.zeros((image_size, image_size), bool))
    return out


@dataclass
class ResultSet:
    """Several methods' predictions on one test split, and the tidy table built from them."""

    samples: list[Sample]
    predictions: dict[str, Prediction]
    image_size: int
    table: pd.DataFrame
    masks: list[np.ndarray | None] = field(repr=False, default_factory=list)

    @property
    def methods(self) -> list[str]:
        return list(self.predictions)

    @property
    def has_normal_only(self) -> bool:
        return bool(self.table["threshold_normal_only"].notna().any())

    def rows(self, method: str) -> pd.DataFrame:
        """The table's rows of one method, in test-split order."""
        if method not in self.predictions:
            raise ExddError(f"unknown method {method!r}", f"choose one of {', '.join(self.methods)}")
        return self.table[self.table["method"] == method].sort_values("image_id")

    def image(self, image_id: int) -> np.ndarray:
        return load_image(self.samples[image_id].image_path, self.image_size)

    def mask(self, image_id: int) -> np.ndarray | None:
        return self.masks[image_id]

    def map(self, method: str, image_id: int) -> np.ndarray:
        return self.predictions[method].maps[image_id]

    def map_scale(self, method: str) -> tuple[float, float]:
        """``(low, pixel threshold)`` of a method's maps: dividing ``map - low`` by ``threshold - low``
        puts every method on one colour scale where 1 is that method's own decision boundary."""
        low = float(self.predictions[method].maps.min())
        threshold = float(self.rows(method)["pixel_threshold"].iloc[0])
        if not np.isfinite(threshold) or threshold <= low:
            threshold = float(self.predictions[method].maps.max())
        return low, threshold

    def scaled_map(self, method: str, image_id: int) -> np.ndarray:
        low, threshold = self.map_scale(method)
        return (self.map(method, image_id) - low) / max(threshold - low, 1e-12)

    def save(self, folder: str | Path, name: str = "results", maps: bool = True) -> list[Path]:
        """``<name>.csv`` and ``<name>.parquet`` (the table) in ``folder``; with ``maps``, also ``<name>.maps.npz``
        (every method's maps as uint8 with their scale) and ``<name>.json`` (the split and the image size), so
        :meth:`load` reopens the run without refitting. Each file is written atomically."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(folder / f"{name}.csv", "w") as handle:
            self.table.to_csv(handle, index=False)
        with atomic_path(folder / f"{name}.parquet") as tmp:
            self.table.to_parquet(tmp, index=False)
        written = [folder / f"{name}.csv", folder / f"{name}.parquet"]
        if not maps:
            return written
        arrays = {}
        for i, (method, prediction) in enumerate(self.predictions.items()):
            codes, low, high = quantize_maps(prediction.maps)
            arrays.update({f"maps_{i}": codes, f"scale_{i}": np.array([low, high])})
        with atomic_path(folder / f"{name}.maps.npz") as tmp:
            with open(tmp, "wb") as handle:
                np.savez_compressed(handle, **arrays)
        split = {"format": RESULTS_FORMAT, "image_size": self.image_size, "methods": self.methods,
                 "samples": [{"image_path": str(s.image_path), "label": int(s.label), "defect_type": s.defect_type,
                              "mask_path": str(s.mask_path) if s.mask_path else None} for s in self.samples]}
        with atomic_write(folder / f"{name}.json", "w") as handle:
            json.dump(split, handle, indent=1)
        return written + [folder / f"{name}.maps.npz", folder / f"{name}.json"]

    @classmethod
    def load(cls, folder: str | Path, name: str = "results") -> "ResultSet":
        """Reopen a run saved by :meth:`save` (``exdd-lab evaluate`` and ``compare`` write one): the table as it was,
        the maps within one uint8 step of their scale (ample for looking at them; every number in the table is the
        one computed from the full maps), the masks read again from their files."""
        folder = Path(folder)
        paths = {kind: folder / f"{name}{kind}" for kind in (".parquet", ".json", ".maps.npz")}
        missing = [p.name for p in paths.values() if not p.is_file()]
        if missing:
            raise ExddError(f"{folder} holds no reopenable results ({', '.join(missing)} missing)",
                            "point at the --out folder of `exdd-lab evaluate` or `compare` (this version writes "
                            "results.parquet, results.json and results.maps.npz), or run it again")
        split = json.loads(paths[".json"].read_text())
        if split.get("format") != RESULTS_FORMAT:
            raise ExddError(f"{paths['.json']} is not a results file of this kit", "run `evaluate` or `compare` again")
        samples = [Sample(Path(r["image_path"]), r["label"], r["defect_type"],
                          Path(r["mask_path"]) if r["mask_path"] else None) for r in split["samples"]]
        table = pd.read_parquet(paths[".parquet"])
        stored = np.load(paths[".maps.npz"])
        predictions = {}
        for i, method in enumerate(split["methods"]):
            rows = table[table["method"] == method].sort_values("image_id")
            low, high = stored[f"scale_{i}"]
            predictions[method] = Prediction(dequantize_maps(stored[f"maps_{i}"], low, high),
                                             rows["score"].to_numpy(np.float64))
        return cls(samples, predictions, int(split["image_size"]), table, _masks(samples, int(split["image_size"])))


RESULTS_FORMAT = "exdd_lab.results/1"


def quantize_maps(maps: np.ndarray) -> tuple[np.ndarray, float, float]:
    """``maps`` as uint8 codes over their own range ``[low, high]``: 1/255 of the range per step, a quarter of the
    float32 bytes (and far less once compressed)."""
    maps = np.asarray(maps, np.float32)
    low, high = (float(maps.min()), float(maps.max())) if maps.size else (0.0, 0.0)
    span = high - low if high > low else 1.0
    return np.rint((maps - low) / span * 255).astype(np.uint8), low, high


def dequantize_maps(codes: np.ndarray, low: float, high: float) -> np.ndarray:
    """The maps back from :func:`quantize_maps`: within half a step, ``(high - low) / 510``, of the originals."""
    span = high - low if high > low else 1.0
    return (codes.astype(np.float32) / 255 * span + low).astype(np.float32)


def build_results(samples: Sequence[Sample], predictions: Mapping[str, Prediction],
                  normal_scores: Mapping[str, np.ndarray] | None = None, normal_quantile: float = 0.99,
                  thresholds: Mapping[str, Mapping[str, float]] | None = None) -> ResultSet:
    """The results table of ``predictions`` (method name -> prediction on ``samples``).

    Thresholds per method: ``f1`` is the F1-optimal image threshold on these samples; ``normal_only``
    the ``normal_quantile`` of ``normal_scores[method]`` (scores of held-out normal images), or
    missing; ``thresholds[method]`` overrides either (e.g. thresholds fixed on another split).
    """
    samples = list(samples)
    if not predictions:
        raise ExddError("no predictions to tabulate", "pass at least one method's prediction")
    sizes = {p.maps.shape[-1] for p in predictions.values()}
    for name, p in predictions.items():
        if len(p.scores) != len(samples) or len(p.maps) != len(samples):
            raise ExddError(f"method {name}: {len(p.scores)} scores and {len(p.maps)} maps for {len(samples)} images",
                            "predict with keep_maps=True on exactly the samples given here")
    if len(sizes) != 1:
        raise ExddError(f"the methods' maps differ in size ({sorted(sizes)})", "predict all methods at one image size")
    image_size = sizes.pop()
    masks = _masks(samples, image_size)
    labels = np.array([s.label for s in samples]).astype(bool)
    base = pd.DataFrame({
        "image_id": np.arange(len(samples)), "image_path": [str(s.image_path) for s in samples],
        "stem": [s.stem for s in samples], "label": labels.astype(int), "defect_type": [s.defect_type for s in samples],
        "has_mask": [m is not None and bool(m.any()) for m in masks],
        "mask_fraction": [float(m.mean()) if m is not None else float("nan") for m in masks],
    })
    frames = []
    for name, p in predictions.items():
        scores = np.asarray(p.scores, np.float64)
        given = dict((thresholds or {}).get(name, {}))
        chosen = {"f1": given.get("f1", f1_max(labels, scores)[1])}
        if "normal_only" in given:
            chosen["normal_only"] = given["normal_only"]
        elif normal_scores is not None and name in normal_scores and len(normal_scores[name]):
            chosen["normal_only"] = normal_only_threshold(normal_scores[name], normal_quantile)
        pixel_threshold = _pixel_threshold(p.maps, masks)
        frame = base.copy()
        frame["method"] = name
        frame["score"] = scores
        frame["score_rank"] = pd.Series(scores).rank(method="max", pct=True).to_numpy()
        for kind in THRESHOLD_KINDS:
            value = chosen.get(kind)
            if value is None or not np.isfinite(value):
                frame[f"threshold_{kind}"], frame[f"decision_{kind}"], frame[f"outcome_{kind}"] = np.nan, pd.NA, None
                continue
            decided = scores >= value
            frame[f"threshold_{kind}"] = float(value)
            frame[f"decision_{kind}"] = decided.astype(int)
            frame[f"outcome_{kind}"] = outcomes(labels, decided)
        frame["pixel_threshold"] = pixel_threshold
        pixels = [image_pixel_metrics(m if m is not None else np.zeros(p.maps[i].shape, bool), p.maps[i], pixel_threshold)
                  for i, m in enumerate(masks)]
        pixel_frame = pd.DataFrame(pixels)
        unknown = np.array([m is None for m in masks])
        pixel_frame.loc[unknown, ["pixel_auroc", "iou", "dice", "peak_in_mask"]] = np.nan
        frames.append(pd.concat([frame, pixel_frame], axis=1))
    table = pd.concat(frames, ignore_index=True)
    return ResultSet(samples, dict(predictions), image_size, table, masks)


def _pixel_threshold(maps: np.ndarray, masks: Sequence[np.ndarray | None]) -> float:
    """The F1-optimal pixel threshold over the images whose ground truth is known."""
    known = [i for i, m in enumerate(masks) if m is not None]
    if not known:
        return float("nan")
    hist = PixelHistogram(float(maps.min()), float(maps.max()))
    for i in known:
        hist.add(masks[i], maps[i])
    return hist.best_f1()[1]


def method_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per method: image AUROC, the outcome counts, recall and false-alarm rate at each
    threshold, and the mean per-image pixel numbers over defect images."""
    rows = {}
    for method, rows_m in table.groupby("method", sort=False):
        labels, scores = rows_m["label"].to_numpy(), rows_m["score"].to_numpy()
        row = {"image_auroc": auroc(labels, scores)}
        for kind in THRESHOLD_KINDS:
            counts = rows_m[f"outcome_{kind}"].value_counts()
            if counts.empty:
                continue
            for outcome in OUTCOMES:
                row[f"{outcome}_{kind}"] = int(counts.get(outcome, 0))
            row[f"recall_{kind}"] = row[f"TP_{kind}"] / max(row[f"TP_{kind}"] + row[f"FN_{kind}"], 1)
            row[f"false_alarm_rate_{kind}"] = row[f"FP_{kind}"] / max(row[f"FP_{kind}"] + row[f"TN_{kind}"], 1)
        defects = rows_m[rows_m["has_mask"]]
        row.update(mean_image_pixel_auroc=defects["pixel_auroc"].mean(), mean_iou=defects["iou"].mean(),
                   peak_in_mask_rate=defects["peak_in_mask"].mean())
        rows[method] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def per_type_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (defect type, method): that type's defects against all normal test images — image
    AUROC, recall at each threshold, mean per-image pixel AUROC and IoU."""
    rows = []
    for method, rows_m in table.groupby("method", sort=False):
        normal = rows_m[rows_m["label"] == 0]
        for kind, group in rows_m[rows_m["label"] == 1].groupby("defect_type"):
            both = pd.concat([normal, group])
            row = {"defect_type": kind, "method": method, "n_defect": len(group),
                   "image_auroc": auroc(both["label"].to_numpy(), both["score"].to_numpy())}
            for t in THRESHOLD_KINDS:
                decided = group[f"decision_{t}"].dropna()
                row[f"recall_{t}"] = float(decided.astype(int).mean()) if len(decided) else float("nan")
            row.update(mean_image_pixel_auroc=group["pixel_auroc"].mean(), mean_iou=group["iou"].mean())
            rows.append(row)
    return pd.DataFrame(rows)
