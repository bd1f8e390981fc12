"""PatchCore end to end on a tiny procedural dataset, and the evaluate command's outputs."""
import csv
import json

import numpy as np
import pytest

from exdd_lab.cli import main
from exdd_lab.data import load_dataset
from exdd_lab.evaluation import run_evaluation
from exdd_lab.features import FeatureConfig
from exdd_lab.memory import BankError, MemoryBank
from exdd_lab.methods import PatchCore, PatchCoreSettings

KEYS = {"image_auroc", "pixel_auroc", "aupro", "image_ap", "pixel_ap", "f1_max", "f1_threshold", "fit_s",
        "predict_s", "peak_rss_mb", "n_train", "n_test", "backbone", "weights_source", "seed", "per_type"}


@pytest.fixture(scope="module")
def tiny(tiny_mvtec):
    return load_dataset(tiny_mvtec, "mvtec")


def test_patchcore_fits_predicts_and_separates_defects(tiny):
    pc = PatchCore(FeatureConfig(image_size=64), PatchCoreSettings(coreset_ratio=0.25, seed=0))
    pc.fit(tiny.train)
    assert len(pc.bank) == round(8 * 8 * 8 * 0.25) and pc.bank.dim == 152
    pred = pc.predict(tiny.test)
    assert pred.maps.shape == (10, 64, 64) and pred.scores.shape == (10,) and pred.patch_scores.shape == (10, 8, 8)
    labels = np.array([s.label for s in tiny.test])
    assert pred.scores[labels == 1].mean() > pred.scores[labels == 0].mean()
    again = PatchCore(FeatureConfig(image_size=64), PatchCoreSettings(coreset_ratio=0.25, seed=0)).fit(tiny.train)
    assert np.array_equal(again.predict(tiny.test).scores, pred.scores), "same seed, same numbers"


def test_reweighted_image_score_is_a_damped_patch_score(tiny):
    pc = PatchCore(FeatureConfig(image_size=64), PatchCoreSettings(coreset_ratio=0.5, image_score="reweighted")).fit(tiny.train)
    pred = pc.predict(tiny.test)
    top_patch = pred.patch_scores.reshape(10, -1).max(1)
    assert (pred.scores <= top_patch + 1e-6).all() and (pred.scores > 0).all()
    assert "max_map_score" in pred.extra
    raw = PatchCore(FeatureConfig(image_size=64), PatchCoreSettings(coreset_ratio=0.5, image_score="max_patch")).fit(tiny.train)
    assert np.allclose(raw.predict(tiny.test).scores, top_patch)
    with pytest.raises(ValueError, match="image_score"):
        PatchCore(FeatureConfig(image_size=64), PatchCoreSettings(image_score="mean"))


def test_bank_from_another_backbone_or_dimension_is_refused(tiny, tmp_path):
    pc = PatchCore(FeatureConfig(image_size=64), PatchCoreSettings(coreset_ratio=0.5)).fit(tiny.train)
    pc.bank.save(tmp_path / "bank")
    with pytest.raises(BankError, match="resnet18"):
        MemoryBank.load(tmp_path / "bank", expect={"backbone": "resnet18"})
    with pytest.raises(BankError, match="152-dimensional"):
        pc.bank.search(np.zeros((4, 64), np.float32))
    with pytest.raises(ValueError, match="at least one"):
        PatchCore(FeatureConfig(image_size=64)).fit([])


def test_run_evaluation_writes_metrics_and_scores(tiny, tmp_path):
    pc = PatchCore(FeatureConfig(image_size=64), PatchCoreSettings(coreset_ratio=0.5))
    result = run_evaluation(pc, tiny, tmp_path / "out", seed=0)
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert KEYS <= set(saved) and saved["n_test"] == 10 and saved["method"] == "patchcore"
    assert saved["image_auroc"] == pytest.approx(result["image_auroc"])
    assert 0 <= saved["aupro"] <= 1 and {r["defect_type"] for r in saved["per_type"]} == set(tiny.defect_types)
    rows = list(csv.DictReader(open(tmp_path / "out" / "scores.csv")))
    assert len(rows) == 10 and {r["label"] for r in rows} == {"0", "1"}
    flagged = sum(int(r["defect_at_f1_threshold"]) for r in rows)
    assert flagged >= 1


def test_evaluate_command(tiny_mvtec, tmp_path, capsys):
    out = tmp_path / "cli"
    rc = main(["evaluate", "--data", str(tiny_mvtec), "--layout", "mvtec", "--method", "patchcore",
               "--image-size", "64", "--coreset", "0.5", "--out", str(out)])
    assert rc == 0 and (out / "metrics.json").is_file() and (out / "scores.csv").is_file()
    assert "image_auroc=" in capsys.readouterr().out
    assert main(["evaluate", "--data", str(tiny_mvtec), "--layout", "mvtec", "--method", "nope", "--out", str(out)]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err
    assert main(["evaluate", "--data", str(tiny_mvtec), "--layout", "mvtec", "--backbone", "resnet_18", "--out", str(out)]) == 2
    assert "unknown backbone" in capsys.readouterr().err


def test_scores_without_maps_equal_scores_with_maps(tiny):
    pc = PatchCore(FeatureConfig(image_size=64), PatchCoreSettings(coreset_ratio=0.5, chunk_images=3)).fit(tiny.train)
    full, light = pc.predict(tiny.test), pc.predict(tiny.test, keep_maps=False)
    assert light.maps.shape[0] == 0 and np.array_equal(full.scores, light.scores)
    assert np.array_equal(full.patch_scores, light.patch_scores)


def test_exact_coreset_method_builds_a_bank_of_the_same_size(tiny):
    exact = PatchCore(FeatureConfig(image_size=64), PatchCoreSettings(coreset_ratio=0.25, coreset_method="exact")).fit(tiny.train)
    fast = PatchCore(FeatureConfig(image_size=64), PatchCoreSettings(coreset_ratio=0.25)).fit(tiny.train)
    assert len(exact.bank) == len(fast.bank) and exact.bank.metadata["coreset"]["method"] == "exact greedy"
    with pytest.raises(ValueError, match="coreset_method"):
        PatchCore(FeatureConfig(image_size=64), PatchCoreSettings(coreset_method="random")).fit(tiny.train)
