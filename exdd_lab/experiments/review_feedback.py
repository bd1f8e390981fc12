"""What a review teaches the detector: an oracle reviews the top-scored test images, the detector is refitted, and
every variant is evaluated on the test images **not** reviewed (``benchmarks/review_feedback.py``).

The analyst's loop, simulated with the test labels as the reviewer: PatchCore scores the test split, the ``R``
highest-scored images get their true verdict (a defect image *defect*, a good one *normal*; no masks, as a review
gives none), and four detectors are fitted and compared on the remaining images:

- ``patchcore``: before the review (the same fit that ranked the images);
- ``patchcore+normals``: refitted on the training normals plus the images reviewed as normal;
- ``exdd+normals``: ExDD on the same normals with its synthetic positive bank (no reviewed defect);
- ``exdd+reviews``: the same, its positive bank also fed the images reviewed as defect through the ``"unusual"``
  selection (their cells above the held-out normals' threshold).

Every pair is tested on the same images (DeLong for image AUROC, paired bootstrap for the pixel metrics, Holm over
the pairs); each variant's metrics carry their bootstrap interval.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Sequence

import numpy as np
import pandas as pd

from exdd_lab.data.records import DefectDataset, Sample
from exdd_lab.evaluation.run import evaluate_prediction, paired_table
from exdd_lab.evaluation.uncertainty import BootstrapSettings
from exdd_lab.features import PatchFeatureExtractor
from exdd_lab.methods.base import Prediction
from exdd_lab.methods.exdd.detector import ExDD, ExddSettings
from exdd_lab.methods.patchcore import PatchCore, PatchCoreSettings

VARIANTS = ("patchcore", "patchcore+normals", "exdd+normals", "exdd+reviews")
METRICS = ("image_auroc", "pixel_auroc", "aupro")


def oracle_review(test: Sequence[Sample], scores: np.ndarray, size: int) -> tuple[list[int], list[int]]:
    """The positions of the ``size`` highest-scored test images (reviewed) and of the rest (in test order)."""
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    reviewed = sorted(order[:size].tolist())
    rest = sorted(order[size:].tolist())
    return reviewed, rest


def _subset(prediction: Prediction, keep: list[int]) -> Prediction:
    extra = {k: v[keep] for k, v in prediction.extra.items() if isinstance(v, np.ndarray) and len(v) == len(prediction.scores)}
    grids = prediction.patch_scores[keep] if prediction.patch_scores is not None else None
    return Prediction(prediction.maps[keep], np.asarray(prediction.scores)[keep], grids, extra)


def _maskless(samples: Sequence[Sample]) -> list[Sample]:
    return [dataclasses.replace(s, mask_path=None, defect_type="reviewed") for s in samples]


def review_feedback(dataset: DefectDataset, synthetic: Sequence[Sample], sizes: Sequence[int],
                    extractor: PatchFeatureExtractor, held_out: int | None = None, seed: int = 0,
                    bootstrap: BootstrapSettings | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per review size: each variant's metrics (with intervals) on the unreviewed test images, and the paired tests.

    ``held_out`` training normals (the last ones; default a fifth, at most 50) are moved out of every fit: they set the
    normal-only threshold that decides which cells of a reviewed defect count (``ExDD.set_maskless_floor``)."""
    bootstrap = bootstrap or BootstrapSettings(seed=seed)
    held_out = held_out if held_out is not None else min(50, len(dataset.train) // 5)
    size = extractor.config.image_size
    train, held = list(dataset.train[:-held_out]), list(dataset.train[-held_out:])
    start = time.perf_counter()
    before = PatchCore(extractor=extractor, settings=PatchCoreSettings(seed=seed)).fit(train)
    ranked = before.predict(dataset.test)
    rows, paired = [], []
    for r in sizes:
        reviewed, rest = oracle_review(dataset.test, ranked.scores, r)
        normals = [dataset.test[i] for i in reviewed if not dataset.test[i].is_defect]
        defects = _maskless([dataset.test[i] for i in reviewed if dataset.test[i].is_defect])
        unreviewed = dataclasses.replace(dataset, test=[dataset.test[i] for i in rest])
        predictions = {"patchcore": _subset(ranked, rest)}
        t = time.perf_counter()
        predictions["patchcore+normals"] = PatchCore(extractor=extractor, settings=PatchCoreSettings(seed=seed)).fit(
            train + normals).predict(unreviewed.test)
        seconds = {"patchcore+normals": time.perf_counter() - t}
        t = time.perf_counter()
        exdd = ExDD(settings=ExddSettings(seed=seed, positive_patches="unusual"), extractor=extractor)
        exdd.fit_negative(train + normals)
        exdd.set_maskless_floor(held, 0.99)
        exdd.refit_positive(list(synthetic))
        predictions["exdd+normals"] = exdd.predict(unreviewed.test)
        seconds["exdd+normals"] = time.perf_counter() - t
        t = time.perf_counter()
        exdd.refit_positive(list(synthetic) + defects)
        predictions["exdd+reviews"] = exdd.predict(unreviewed.test)
        seconds["exdd+reviews"] = time.perf_counter() - t
        for name, prediction in predictions.items():
            metrics, _ = evaluate_prediction(unreviewed, prediction, size, bootstrap)
            row = {"reviewed": r, "reviewed_normal": len(normals), "reviewed_defect": len(defects),
                   "n_test": len(rest), "defects_left": sum(s.is_defect for s in unreviewed.test), "variant": name,
                   "seconds": round(seconds.get(name, 0.0), 1)}
            for key in METRICS:
                row[key] = metrics.get(key)
                interval = (metrics.get("intervals") or {}).get(key)
                row[f"{key}_low"], row[f"{key}_high"] = interval if interval else (None, None)
            if name == "exdd+reviews":
                row["positive_patches"] = len(exdd.positive)
            rows.append(row)
        table = paired_table(unreviewed, predictions, bootstrap)
        table.insert(0, "reviewed", r)
        paired.append(table)
        del predictions
    out = pd.DataFrame(rows)
    out.attrs["seconds"] = time.perf_counter() - start
    return out, pd.concat(paired, ignore_index=True)
