"""The ExDD ablation: how detection changes with the number of synthetic defects in the positive bank.

For each seed the negative bank is fitted once; for each generator the largest synthetic set is made
once (cached), and the positive bank is rebuilt from its first ``n`` defects for every count (a set of
``n`` is exactly the first ``n`` of a larger one). Count 0 is the negative-only score of the same
negative bank. A count whose defects cover no patch cell enough for the positive bank gives a row of
NaN (``positive_patches = 0``) instead of stopping the sweep. Optionally ``real_defects`` labelled
defects are added to every positive bank (moved out of the test split when the layout has no training
defects). :func:`real_defect_sweep` asks the other question: what do K *real* defects add, for ExDD's
published ratio and for the kit's gated score (notebook 04). Taught in
``notebooks/07_synthetic_count_sweep.ipynb``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from exdd_lab.components.metric_names import HEADLINE_METRICS
from exdd_lab.data.records import DefectDataset
from exdd_lab.evaluation.run import evaluate_prediction
from exdd_lab.features import PatchFeatureExtractor
from exdd_lab.bank.memory import BankError
from exdd_lab.methods.base import Prediction
from exdd_lab.methods.exdd.detector import ExDD, ExddSettings, variant_grid
from exdd_lab.bank.scoring import anomaly_maps, max_patch_score
from exdd_lab.synthesis import DdpmConfig, cached_defect_set
from exdd_lab.evaluation.uncertainty import BootstrapSettings

KEYS = HEADLINE_METRICS
INTERVAL_KEYS = ("image_auroc", "pixel_auroc")  # each row carries these metrics' 95 % intervals (<key>_low/_high)


def _with_intervals(metrics: dict) -> dict:
    """The headline metrics and the bounds of :data:`INTERVAL_KEYS` as flat columns."""
    bounds = metrics.get("intervals") or {}
    return {**{k: metrics.get(k) for k in KEYS},
            **{f"{k}_{end}": (bounds.get(k) or [None, None])[i] for k in INTERVAL_KEYS for i, end in enumerate(("low", "high"))}}


def synthetic_count_sweep(
    dataset: DefectDataset,
    generators: Sequence[str],
    counts: Sequence[int],
    seeds: Sequence[int],
    extractor: PatchFeatureExtractor,
    ddpm_config: DdpmConfig | None = None,
    real_defects: int = 0,
    settings: ExddSettings | None = None,
    model_dir: str | None = None,
    progress: bool = True,
    bootstrap: BootstrapSettings | None = None,
) -> pd.DataFrame:
    """One row per (generator, seed, count): image/pixel AUROC, AUPRO, F1 of the ExDD score, and the 95 %
    bootstrap intervals of image and pixel AUROC on the test split (``bootstrap``: default 1,000 resamples).

    ``ddpm_config`` is shared by all seeds (one trained DDPM; the seed varies the defects drawn from it).
    """
    bootstrap = bootstrap if bootstrap is not None else BootstrapSettings()
    size = extractor.config.image_size
    rows = []
    for seed in seeds:
        ds, real = dataset.with_training_defects(real_defects, seed=seed)
        sets = {g: cached_defect_set(ds.train, g, max(max(counts), 1), seed=seed, image_size=size, model_dir=model_dir,
                                     ddpm_config=ddpm_config, progress=progress).test for g in generators}
        base = dict(vars(settings or ExddSettings()), seed=seed)
        detector = ExDD(settings=ExddSettings(**base), extractor=extractor).fit_negative(ds.train)
        negative_only = None
        for g in generators:
            for n in tqdm(counts, desc=f"seed {seed}, {g}", disable=not progress):
                row = {"generator": g, "seed": seed, "count": n, "real_defects": len(real)}
                if n == 0 and not real:  # the negative bank alone, scored once per seed
                    if negative_only is None:
                        grid = detector.predict_negative(ds.test)
                        maps = anomaly_maps(grid, size, detector.settings.sigma)
                        negative_only, _ = evaluate_prediction(ds, Prediction(maps, max_patch_score(grid), grid), size,
                                                               bootstrap)
                    rows.append({**row, "positive_patches": 0, **_with_intervals(negative_only)})
                    continue
                try:
                    detector.refit_positive(sets[g][:n] + real)
                except BankError:  # none of these defects fully covers a patch cell: nothing to score with
                    rows.append({**row, "positive_patches": 0, **{k: float("nan") for k in _with_intervals({})}})
                    continue
                metrics, _ = evaluate_prediction(ds, detector.predict(ds.test), size, bootstrap)
                rows.append({**row, "positive_patches": len(detector.positive), **_with_intervals(metrics)})
    return pd.DataFrame(rows)


#: the scores :func:`real_defect_sweep` compares: PatchCore, ExDD's published ratio, the kit's gated score
REAL_SWEEP_SCORES = {"patchcore": "negative", "exdd-published": "ratio_na", "exdd-gated": "gated"}


def real_defect_sweep(
    dataset: DefectDataset,
    synthetic: Sequence,
    reals: Sequence[int],
    extractor: PatchFeatureExtractor,
    settings: ExddSettings | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """What K real defects added to the positive bank do to each score: one row per (K, score).

    One negative bank; for each K a positive bank of ``synthetic`` plus K real defects. The largest K is
    moved out of the test split for **every** row, so all rows share one test split. ExDD's published
    ratio is scored on its own positive bank (no purification), PatchCore and the gated score on the
    kit's default (purified) one; image score = largest patch score for all three.
    """
    size = extractor.config.image_size
    evaluated, real = dataset.with_training_defects(max(reals, default=0), seed=seed)
    detector = ExDD(settings=ExddSettings(**dict(vars(settings or ExddSettings()), seed=seed)), extractor=extractor)
    detector.fit_negative(dataset.train)
    rows = []
    for k in sorted(set(reals)):
        for name, variant in REAL_SWEEP_SCORES.items():
            if name == "patchcore" and k:
                continue  # the negative bank does not change with K
            detector.settings.purify_positive = name != "exdd-published"
            detector.refit_positive(list(synthetic) + list(real[:k]))
            pred = detector.predict(evaluated.test, keep_maps=False)
            grid = variant_grid(pred.extra, variant, detector.settings.eps, detector.normal_stats,
                                detector.settings.strength).astype(np.float32)
            metrics, _ = evaluate_prediction(evaluated, Prediction(anomaly_maps(grid, size, detector.settings.sigma),
                                                                   max_patch_score(grid), grid), size)
            rows.append({"real_defects": k, "score": name, "positive_patches": len(detector.positive),
                         "purified": detector.purified, "n_test": len(evaluated.test),
                         **{key: metrics.get(key) for key in KEYS}})
    detector.settings.purify_positive = (settings or ExddSettings()).purify_positive
    return pd.DataFrame(rows)


def count_within_noise(sweep: pd.DataFrame, metric: str = "image_auroc") -> pd.Series:
    """Per generator, the **smallest** count whose mean over seeds lies within one standard error of the best
    count's mean (the one-standard-error rule): a best count that beats its neighbours by less than the seeds'
    noise is not a finding, and fewer synthetic defects cost less. Rows with ``real_defects > 0`` are left out;
    with one seed per count the standard error is 0 and the rule picks the best mean."""
    rows = sweep[sweep.get("real_defects", 0) == 0] if "real_defects" in sweep else sweep
    chosen = {}
    for generator, group in rows.groupby("generator"):
        stats = group.groupby("count")[metric].agg(["mean", "std", "size"]).sort_index()
        sem = (stats["std"].fillna(0) / np.sqrt(stats["size"])).to_numpy()
        best = int(np.argmax(stats["mean"].to_numpy()))
        within = stats["mean"].to_numpy() >= stats["mean"].iloc[best] - sem[best]
        chosen[generator] = int(stats.index[np.flatnonzero(within)[0]])
    return pd.Series(chosen, name=f"count_within_noise_{metric}")
