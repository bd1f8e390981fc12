"""Fit a method on a dataset's training normals, score its test split, and write the standard outputs.

Every method writes the same two files, so methods compare on one split with one command:

- ``metrics.json``: image_auroc, pixel_auroc, aupro, image_ap, pixel_ap, f1_max (+ f1_threshold), each
  with its 95 % bootstrap interval in ``intervals`` (how drawn: ``interval_settings``),
  a normal-only threshold when held-out normals exist, per-defect-type metrics, fit_s, predict_s,
  peak_rss_mb, n_train, n_test, the method's settings, backbone and weights source, seed;
- ``scores.csv``: one row per test image (path, label, defect type, score, decisions).
"""
from __future__ import annotations

import csv
import math
import resource
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from exdd_lab.components.metric_names import HEADLINE_METRICS, METHOD_TABLE_METRICS, RANKING_METRICS
from exdd_lab.data.imageio import sample_mask
from exdd_lab.evaluation.results import build_results
from exdd_lab.data.records import DefectDataset
from exdd_lab.methods.base import Detector, HasAlternatives, Prediction
from exdd_lab.evaluation.metrics import NORMAL_GROUP, PixelHistogram, evaluate, normal_only_threshold, per_type_table
from exdd_lab.storage import atomic_write, atomic_write_json
from exdd_lab.evaluation.uncertainty import BootstrapSettings, EvaluationSample, ImageHistograms, bootstrap_intervals

if TYPE_CHECKING:
    import pandas as pd


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN: undefined metrics are written as null
    if isinstance(value, (np.floating, np.integer)):
        return _clean(value.item())
    return value


def evaluate_prediction(dataset: DefectDataset, prediction: Prediction, image_size: int,
                        bootstrap: BootstrapSettings | None = None) -> tuple[dict, object]:
    """Metrics of a prediction on ``dataset.test``: a flat dict and the per-type table.

    Pixel metrics use only images whose ground truth is known (normals, and defects with a mask),
    accumulated image by image into one histogram (see :class:`~exdd_lab.evaluation.metrics.PixelHistogram`).
    With ``bootstrap`` (and ``resamples > 0``) the dict also holds ``intervals``: ``{metric: [low, high]}``
    (see :mod:`exdd_lab.evaluation.uncertainty`).
    """
    test = dataset.test
    labels = np.array([s.label for s in test])
    types = np.array([s.defect_type for s in test])
    ev = evaluate(labels, prediction.scores)
    hist = PixelHistogram(float(prediction.maps.min()), float(prediction.maps.max()))
    clusters = None
    if bootstrap is not None and bootstrap.resamples > 0:
        clusters = ImageHistograms(ImageHistograms.edges_for(prediction.maps, bootstrap.bins, seed=bootstrap.seed),
                                   len(test))
    for i, s, mask in _ground_truth(dataset, image_size):
        hist.add(mask, prediction.maps[i], NORMAL_GROUP if not s.is_defect else s.defect_type)
        if clusters is not None:
            clusters.add(i, mask, prediction.maps[i])
    ev.set_pixels(hist.metrics())
    table = per_type_table(labels, prediction.scores, types, hist=hist)
    metrics = ev.as_dict()
    if clusters is not None:
        sample = EvaluationSample(labels, prediction.scores, clusters)
        metrics["intervals"] = bootstrap_intervals(sample, bootstrap, metrics)
        metrics["interval_settings"] = bootstrap.describe()
    return metrics, table


def _ground_truth(dataset: DefectDataset, image_size: int):
    """``(position, sample, mask)`` for every test image whose ground truth is known."""
    for i, s in enumerate(dataset.test):
        if s.is_defect and s.mask_path is None:
            continue
        yield i, s, sample_mask(s, image_size)


def evaluation_sample(dataset: DefectDataset, prediction: Prediction, image_size: int,
                      bins: int = 4096, seed: int = 0) -> EvaluationSample:
    """What the paired tests resample for one method: labels, image scores, per-image pixel histograms."""
    labels = np.array([s.label for s in dataset.test])
    clusters = ImageHistograms(ImageHistograms.edges_for(prediction.maps, bins, seed=seed), len(labels))
    for i, _, mask in _ground_truth(dataset, image_size):
        clusters.add(i, mask, prediction.maps[i])
    return EvaluationSample(labels, np.asarray(prediction.scores, np.float64), clusters)


def run_evaluation(method: Detector, dataset: DefectDataset, out_dir: str | Path | None = None,
                   seed: int = 0, progress: bool = False, normal_quantile: float = 0.99,
                   bootstrap: BootstrapSettings | None = None) -> dict:
    """Fit, predict, measure, and (with ``out_dir``) write ``metrics.json``, ``scores.csv`` and the reopenable results
    (``results.parquet`` / ``.csv``, ``results.maps.npz``, ``results.json``: :meth:`ResultSet.load`).

    ``bootstrap``: how the metrics' intervals are drawn (default: 1,000 resamples, 95 %, seeded by ``seed``).
    """
    if not dataset.train:
        raise ValueError(f"dataset {dataset.name} has no training images")
    predictions, normal_scores, timings = predict_split({method.name: method}, dataset, progress)
    return finish_evaluation(method, dataset, predictions[method.name], timings[method.name]["fit_s"],
                             timings[method.name]["predict_s"], normal_scores.get(method.name), out_dir, seed,
                             normal_quantile, bootstrap)


def finish_evaluation(method: Detector, dataset: DefectDataset, prediction: Prediction, fit_s: float, predict_s: float,
                      normal_scores: np.ndarray | None = None, out_dir: str | Path | None = None, seed: int = 0,
                      normal_quantile: float = 0.99, bootstrap: BootstrapSettings | None = None) -> dict:
    """The ``metrics.json`` dict of a fitted method's prediction (and, with ``out_dir``, both files).

    ``normal_scores`` (held-out normal images) give the normal-only threshold and its recall and
    false-alarm rate. ``bootstrap``: the intervals' settings (default 1,000 resamples seeded by ``seed``).
    """
    image_size = prediction.maps.shape[-1]
    bootstrap = bootstrap if bootstrap is not None else BootstrapSettings(seed=seed)
    metrics, table = evaluate_prediction(dataset, prediction, image_size, bootstrap)
    held_out = normal_scores is not None and len(normal_scores) > 0
    threshold = normal_only_threshold(normal_scores, normal_quantile) if held_out else None
    labels = np.array([s.label for s in dataset.test]).astype(bool)
    alternatives = method.alternative_predictions(prediction) if isinstance(method, HasAlternatives) else {}
    for name, alternative in alternatives.items():
        alt, _ = evaluate_prediction(dataset, alternative, image_size)  # e.g. the student-teacher's two maps
        metrics.update({f"{name}_{k}": alt[k] for k in HEADLINE_METRICS})
    result = {
        "method": method.name, "dataset": dataset.name, "layout": dataset.layout, "seed": seed,
        **metrics,
        "normal_only_threshold": threshold, "normal_only_quantile": normal_quantile if held_out else None,
        "fit_s": round(fit_s, 2), "predict_s": round(predict_s, 2), "peak_rss_mb": round(peak_rss_mb(), 1),
        "n_train": len(dataset.train), "n_test": len(dataset.test), "n_test_defect": int(labels.sum()),
        "split": dataset.split_info, **method.describe(),
        "per_type": table.to_dict(orient="records"),
    }
    if threshold is not None:
        decided = prediction.scores >= threshold
        result["normal_only_recall"] = float(decided[labels].mean()) if labels.any() else None
        result["normal_only_fpr"] = float(decided[~labels].mean()) if (~labels).any() else None
    result = {k: _clean(v) for k, v in result.items()}
    if result.get("intervals"):
        result["intervals"] = {k: None if v is None else [_clean(x) for x in v] for k, v in result["intervals"].items()}
    result["per_type"] = [{k: _clean(v) for k, v in row.items()} for row in result["per_type"]]
    if out_dir is not None:
        write_outputs(Path(out_dir), result, dataset, prediction)
        build_results(dataset.test, {method.name: prediction},
                      {method.name: normal_scores} if held_out else None, normal_quantile).save(out_dir)
    return result


def write_outputs(out_dir: Path, metrics: dict, dataset: DefectDataset, prediction: Prediction) -> None:
    """``metrics.json`` and ``scores.csv``, each written atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "metrics.json", metrics)
    f1_thr, normal_thr = metrics.get("f1_threshold"), metrics.get("normal_only_threshold")
    with atomic_write(out_dir / "scores.csv", "w") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_path", "label", "defect_type", "mask_path", "score", "defect_at_f1_threshold",
                         "defect_at_normal_only_threshold"])
        for s, score in zip(dataset.test, prediction.scores):
            writer.writerow([s.image_path, s.label, s.defect_type, s.mask_path or "", f"{float(score):.6g}",
                             "" if f1_thr is None else int(score >= f1_thr),
                             "" if normal_thr is None else int(score >= normal_thr)])


def predict_split(methods: dict[str, Detector], dataset: DefectDataset, progress: bool = False
                  ) -> tuple[dict[str, Prediction], dict[str, np.ndarray], dict[str, dict]]:
    """Fit every method on the training normals and predict the test split (and, when the dataset has
    them, the held-out normals ``extra["val_good"]`` for normal-only thresholds).

    Returns ``(predictions, normal_scores, timings)``, each keyed by method name: what
    :func:`exdd_lab.evaluation.results.build_results` takes. Used to compare methods on ONE split (notebook 06).
    """
    predictions, normal_scores, timings = {}, {}, {}
    held_out = dataset.extra.get("val_good", [])
    for name, method in methods.items():
        start = time.perf_counter()
        method.fit(dataset.train, progress=progress)
        fitted = time.perf_counter()
        predictions[name] = method.predict(dataset.test, progress=progress)
        timings[name] = {"fit_s": round(fitted - start, 2), "predict_s": round(time.perf_counter() - fitted, 2)}
        if held_out:
            normal_scores[name] = method.predict(held_out, keep_maps=False).scores
    return predictions, normal_scores, timings


def method_table(dataset: DefectDataset, predictions: dict[str, Prediction]) -> "pd.DataFrame":
    """The headline metrics of several methods on one split: one row per method."""
    import pandas as pd

    rows = {}
    for name, prediction in predictions.items():
        rows[name], _ = evaluate_prediction(dataset, prediction, prediction.maps.shape[-1])
    return pd.DataFrame.from_dict(rows, orient="index")[list(METHOD_TABLE_METRICS)]


def compare_variants(dataset: DefectDataset, prediction: Prediction, variants: dict[str, np.ndarray],
                     image_size: int, sigma: float = 4.0) -> "pd.DataFrame":
    """One row of metrics per scoring variant: each entry of ``variants`` is a patch-score grid ``(N, h, w)``
    for the test split, turned into maps (upsampled, smoothed) and image scores (largest patch score, as
    PatchCore and ExDD score) the same way and evaluated. Used for ExDD's negative-only / positive-only /
    ratio / neighbourhood-aware ratio / gated comparison."""
    import pandas as pd

    from exdd_lab.bank.scoring import anomaly_maps, max_patch_score

    rows = {}
    for name, grid in variants.items():
        maps = anomaly_maps(grid, image_size, sigma)
        metrics, _ = evaluate_prediction(dataset, Prediction(maps, max_patch_score(grid), grid), image_size)
        rows[name] = {k: metrics.get(k) for k in RANKING_METRICS + ("image_ap", "f1_max")}
    return pd.DataFrame.from_dict(rows, orient="index")


def variant_auroc_by_type(dataset: DefectDataset, variants: dict[str, np.ndarray], image_size: int,
                          sigma: float = 4.0) -> "pd.DataFrame":
    """Image AUROC per defect type (rows) for each scoring variant (columns): each type's defects
    against all normal test images, image score = the largest patch score."""
    import pandas as pd

    from exdd_lab.bank.scoring import max_patch_score

    labels = np.array([s.label for s in dataset.test])
    types = [s.defect_type for s in dataset.test]
    columns = {}
    for name, grid in variants.items():
        table = per_type_table(labels, max_patch_score(grid), types)
        columns[name] = table.set_index("defect_type")["image_auroc"]
    return pd.DataFrame(columns)


def paired_table(dataset: DefectDataset, predictions: dict[str, Prediction],
                 bootstrap: BootstrapSettings | None = None) -> "pd.DataFrame":
    """Every pair of ``predictions`` on ``dataset.test`` tested on the same images (DeLong for image AUROC,
    paired bootstrap otherwise; Holm over the pairs when more than two): see :mod:`exdd_lab.evaluation.paired_tests`."""
    from exdd_lab.evaluation.paired_tests import paired_comparisons

    bootstrap = bootstrap if bootstrap is not None else BootstrapSettings()
    samples, point = {}, {}
    for name, prediction in predictions.items():
        size = prediction.maps.shape[-1]
        samples[name] = evaluation_sample(dataset, prediction, size, bootstrap.bins, bootstrap.seed)
        point[name], _ = evaluate_prediction(dataset, prediction, size)
    return paired_comparisons(samples, bootstrap, point)


def variant_predictions(variants: dict[str, np.ndarray], image_size: int, sigma: float = 4.0) -> dict[str, Prediction]:
    """Patch-score grids ``(N, h, w)`` of scoring variants as predictions (maps upsampled and smoothed, image
    score = the largest patch score), as :func:`compare_variants` scores them."""
    from exdd_lab.bank.scoring import anomaly_maps, max_patch_score

    return {name: Prediction(anomaly_maps(grid, image_size, sigma), max_patch_score(grid), grid)
            for name, grid in variants.items()}
