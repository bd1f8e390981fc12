"""The synthetic-count sweep: one negative bank per seed, count 0 = PatchCore, unusable counts give NaN rows."""
from __future__ import annotations

import numpy as np

from exdd_lab.count_sweep import synthetic_count_sweep
from exdd_lab.data import load_dataset
from exdd_lab.features import FeatureConfig, PatchFeatureExtractor
from exdd_lab.methods import PatchCore, PatchCoreSettings
from exdd_lab.methods.exdd import ExddSettings


def test_sweep_rows_and_negative_only_baseline(tiny_mvtec):
    ds = load_dataset(tiny_mvtec, "mvtec")
    extractor = PatchFeatureExtractor(FeatureConfig(image_size=64))
    settings = ExddSettings(negative_ratio=0.25, min_mask_fraction=0.05)
    table = synthetic_count_sweep(ds, ["perlin"], [0, 2, 4], [0], extractor, settings=settings, progress=False)
    assert list(table["count"]) == [0, 2, 4] and (table["generator"] == "perlin").all()
    assert table.loc[0, "positive_patches"] == 0 and (table.loc[1:, "positive_patches"] > 0).all()
    pc = PatchCore(settings=PatchCoreSettings(coreset_ratio=0.25, seed=0), extractor=extractor).fit(ds.train)
    from exdd_lab.evaluation import evaluate_prediction

    baseline, _ = evaluate_prediction(ds, pc.predict(ds.test), 64)
    assert np.isclose(table.loc[0, "image_auroc"], baseline["image_auroc"])  # count 0 is PatchCore


def test_counts_that_fill_no_positive_bank_give_nan_rows(tiny_mvtec):
    ds = load_dataset(tiny_mvtec, "mvtec")
    extractor = PatchFeatureExtractor(FeatureConfig(image_size=64))
    table = synthetic_count_sweep(ds, ["perlin"], [0, 2], [0], extractor,
                                  settings=ExddSettings(negative_ratio=0.25, min_mask_fraction=1.01), progress=False)
    assert np.isfinite(table.loc[0, "image_auroc"])
    assert np.isnan(table.loc[1, "image_auroc"]) and table.loc[1, "positive_patches"] == 0
