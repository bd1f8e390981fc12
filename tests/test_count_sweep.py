"""The synthetic-count sweep: one negative bank per seed, count 0 = PatchCore, unusable counts give NaN rows."""
from __future__ import annotations

import numpy as np

from exdd_lab.experiments.count_sweep import synthetic_count_sweep
from exdd_lab.data import load_dataset
from exdd_lab.features import FeatureConfig, PatchFeatureExtractor
from exdd_lab.methods import PatchCore, PatchCoreSettings
from exdd_lab.methods.exdd.detector import ExddSettings


def test_sweep_rows_and_negative_only_baseline(tiny_mvtec):
    ds = load_dataset(tiny_mvtec, "mvtec")
    extractor = PatchFeatureExtractor(FeatureConfig(image_size=64))
    settings = ExddSettings(negative_ratio=0.25, min_mask_fraction=0.05)
    table = synthetic_count_sweep(ds, ["perlin"], [0, 2, 4], [0], extractor, settings=settings, progress=False)
    assert list(table["count"]) == [0, 2, 4] and (table["generator"] == "perlin").all()
    assert table.loc[0, "positive_patches"] == 0 and (table.loc[1:, "positive_patches"] > 0).all()
    pc = PatchCore(settings=PatchCoreSettings(coreset_ratio=0.25, seed=0), extractor=extractor).fit(ds.train)
    from exdd_lab.evaluation.run import evaluate_prediction

    baseline, _ = evaluate_prediction(ds, pc.predict(ds.test), 64)
    assert np.isclose(table.loc[0, "image_auroc"], baseline["image_auroc"])  # count 0 is PatchCore
    for key in ("image_auroc", "pixel_auroc"):  # every point with its test-split interval
        assert (table[f"{key}_low"] <= table[key] + 1e-9).all() and (table[key] <= table[f"{key}_high"] + 1e-9).all()
    assert (table["pixel_auroc_high"] > table["pixel_auroc_low"]).all()


def test_counts_that_fill_no_positive_bank_give_nan_rows(tiny_mvtec):
    ds = load_dataset(tiny_mvtec, "mvtec")
    extractor = PatchFeatureExtractor(FeatureConfig(image_size=64))
    table = synthetic_count_sweep(ds, ["perlin"], [0, 2], [0], extractor,
                                  settings=ExddSettings(negative_ratio=0.25, min_mask_fraction=1.01), progress=False)
    assert np.isfinite(table.loc[0, "image_auroc"])
    assert np.isnan(table.loc[1, "image_auroc"]) and table.loc[1, "positive_patches"] == 0


def test_real_defect_sweep_shares_one_test_split_and_scores_patchcore_once(tiny_mvtec):
    from exdd_lab.experiments.count_sweep import real_defect_sweep
    from exdd_lab.synthesis import PerlinBlendGenerator, synthesize, write_defect_set, load_defect_set

    ds = load_dataset(tiny_mvtec, "mvtec")
    extractor = PatchFeatureExtractor(FeatureConfig(image_size=64))
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        defects = synthesize(ds.train, PerlinBlendGenerator([s.image_path for s in ds.train]), n=6, seed=0, image_size=64)
        synthetic = load_defect_set(write_defect_set(defects, Path(tmp) / "set")).test
        table = real_defect_sweep(ds, synthetic, [0, 2], extractor,
                                  ExddSettings(negative_ratio=0.25, min_mask_fraction=0.05), seed=0)
    assert list(zip(table.real_defects, table.score)) == [
        (0, "patchcore"), (0, "exdd-published"), (0, "exdd-gated"), (2, "exdd-published"), (2, "exdd-gated")]
    assert (table.n_test == len(ds.test) - 2).all()  # the largest K left the test split for every row
    assert (table.loc[table.score == "exdd-published", "purified"] == 0).all()  # ExDD's own bank, unpurified
    assert table[["image_auroc", "pixel_auroc"]].notna().all().all()
    pc = PatchCore(settings=PatchCoreSettings(coreset_ratio=0.25, seed=0), extractor=extractor).fit(ds.train)
    evaluated, _ = ds.with_training_defects(2, seed=0)
    from exdd_lab.evaluation.run import evaluate_prediction

    baseline, _ = evaluate_prediction(evaluated, pc.predict(evaluated.test), 64)
    assert np.isclose(table.loc[0, "image_auroc"], baseline["image_auroc"])  # PatchCore's row is PatchCore
