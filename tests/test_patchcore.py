"""PatchCore end to end on a tiny procedural dataset, and the evaluate command's outputs."""
import csv
import json

import numpy as np
import pytest

from exdd_lab.cli import main
from exdd_lab.data import load_dataset
from exdd_lab.evaluation.run import run_evaluation
from exdd_lab.evaluation.uncertainty import BootstrapSettings
from exdd_lab.features import FeatureConfig, extract_features
from exdd_lab.bank.memory import BankError, MemoryBank
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
    np.testing.assert_array_equal(pred.scores, pred.patch_scores.reshape(10, -1).max(1),
                                  err_msg="the default image score is the reference code's: the largest patch score")
    assert not np.allclose(pred.scores, pred.extra["max_map_score"]), "the smoothed map's maximum is another score"
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
    with pytest.raises(ValueError, match="unknown PatchCore image score .mean."):
        PatchCore(FeatureConfig(image_size=64), PatchCoreSettings(image_score="mean"))


def test_bank_from_another_backbone_or_dimension_is_refused(tiny, tmp_path):
    pc = PatchCore(FeatureConfig(image_size=64), PatchCoreSettings(coreset_ratio=0.5)).fit(tiny.train)
    pc.bank.save(tmp_path / "bank")
    with pytest.raises(BankError, match="resnet18"):
        MemoryBank.load(tmp_path / "bank", expect={"backbone": "resnet18"})
    with pytest.raises(BankError, match="152-dimensional"):
        pc.bank.search(np.zeros((4, 64), np.float32))
    with pytest.raises(ValueError, match="train split is empty"):
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
    for name in ("image_auroc", "image_ap", "f1_max", "pixel_auroc", "pixel_ap", "aupro"):  # each with its interval
        low, high = saved["intervals"][name]
        assert low <= saved[name] + 1e-9 and saved[name] - 1e-9 <= high, name
        assert low < high or saved[name] == 1.0, name  # a perfect split resamples to perfect ones only
    assert saved["interval_settings"]["seed"] == 0
    again = run_evaluation(pc, tiny, seed=0, bootstrap=BootstrapSettings(resamples=0))
    assert "intervals" not in again and again["image_auroc"] == pytest.approx(result["image_auroc"])


def test_evaluate_command(tiny, tiny_mvtec, tmp_path, capsys):
    """The command's numbers are PatchCore's on that split, and metrics.json agrees with scores.csv."""
    from sklearn.metrics import f1_score, roc_auc_score

    out = tmp_path / "cli"
    rc = main(["evaluate", "--data", str(tiny_mvtec), "--layout", "mvtec", "--method", "patchcore",
               "--image-size", "64", "--coreset", "0.5", "--out", str(out)])
    assert rc == 0 and (out / "metrics.json").is_file() and (out / "scores.csv").is_file()
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    rows = list(csv.DictReader(open(out / "scores.csv")))
    direct = PatchCore(FeatureConfig(image_size=64), PatchCoreSettings(coreset_ratio=0.5, seed=0)).fit(tiny.train)
    expected = dict(zip((str(s.image_path) for s in tiny.test), direct.predict(tiny.test).scores))
    for row in rows:  # each file has its own score (no sorting, no shuffling)
        assert float(row["score"]) == pytest.approx(float(expected[row["image_path"]]), rel=1e-5), row["image_path"]
    labels, scores = [int(r["label"]) for r in rows], [float(r["score"]) for r in rows]
    assert metrics["image_auroc"] == pytest.approx(roc_auc_score(labels, scores))
    flagged = [int(r["defect_at_f1_threshold"]) for r in rows]
    assert flagged == [int(s >= metrics["f1_threshold"]) for s in scores]
    assert metrics["f1_max"] == pytest.approx(f1_score(labels, flagged))
    assert metrics["image_auroc"] >= 0.9 and metrics["pixel_auroc"] >= 0.9  # the tiny set's defects are plain
    assert f"image_auroc={metrics['image_auroc']:.4g}" in printed
    assert main(["evaluate", "--data", str(tiny_mvtec), "--layout", "mvtec", "--method", "nope", "--out", str(out)]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err
    assert main(["evaluate", "--data", str(tiny_mvtec), "--layout", "mvtec", "--backbone", "resnet_18", "--out", str(out)]) == 2
    assert "unknown backbone" in capsys.readouterr().err


def test_scores_without_maps_equal_scores_with_maps(tiny):
    pc = PatchCore(FeatureConfig(image_size=64), PatchCoreSettings(coreset_ratio=0.5, chunk_images=3)).fit(tiny.train)
    full, light = pc.predict(tiny.test), pc.predict(tiny.test, keep_maps=False)
    assert light.maps.shape[0] == 0 and np.array_equal(full.scores, light.scores)
    assert np.array_equal(full.patch_scores, light.patch_scores)


def test_exact_coreset_method_builds_a_bank_of_the_same_size_and_quality(tiny):
    """Same size; the two-stage bank covers the training patches nearly as tightly as the exact greedy's
    (and far better than a random subset), and it ranks the test images alike."""
    import torch

    exact = PatchCore(FeatureConfig(image_size=64), PatchCoreSettings(coreset_ratio=0.1, coreset_method="exact")).fit(tiny.train)
    fast = PatchCore(FeatureConfig(image_size=64), PatchCoreSettings(coreset_ratio=0.1)).fit(tiny.train)
    assert len(exact.bank) == len(fast.bank) and exact.bank.metadata["coreset"]["method"] == "exact greedy"
    patches = extract_features(exact.extractor, [s.image_path for s in tiny.train]).reshape(-1, exact.bank.dim)

    def coverage(bank: torch.Tensor) -> float:  # the farthest any training patch is from its nearest bank item
        return float(torch.cdist(patches, bank).min(dim=1).values.max())

    random_bank = patches[torch.randperm(len(patches), generator=torch.Generator().manual_seed(0))[: len(exact.bank)]]
    c_exact, c_fast, c_random = coverage(exact.bank.items), coverage(fast.bank.items), coverage(random_bank)
    assert c_exact <= c_fast <= 1.25 * c_exact < c_random, (c_exact, c_fast, c_random)
    labels = np.array([s.label for s in tiny.test])
    from exdd_lab.evaluation.metrics import auroc

    assert abs(auroc(labels, exact.predict(tiny.test).scores) - auroc(labels, fast.predict(tiny.test).scores)) <= 0.05
    with pytest.raises(ValueError, match="unknown coreset method 'random'"):
        PatchCore(FeatureConfig(image_size=64), PatchCoreSettings(coreset_method="random")).fit(tiny.train)


def test_an_approximate_bank_gives_the_exact_image_scores_and_saves_its_index(tiny, tmp_path, monkeypatch):
    """A deliberately poor index (HNSW with 2 links, a beam of 1) misses many nearest items, so its patch scores
    differ from exact search; the image score (the largest patch distance) is still the exact one, and a saved
    and loaded detector answers exactly as the fitted one."""
    from exdd_lab.bank.index import BANK_INDEXES, HnswIndex

    monkeypatch.setitem(BANK_INDEXES._items, "hnsw", lambda: HnswIndex(links=2, ef_construction=4, ef_search=1))
    exact = PatchCore(FeatureConfig(image_size=64), PatchCoreSettings(coreset_ratio=0.5, bank_index="flat")).fit(tiny.train)
    approx = PatchCore(FeatureConfig(image_size=64), PatchCoreSettings(coreset_ratio=0.5, bank_index="hnsw")).fit(tiny.train)
    p_exact, p_approx = exact.predict(tiny.test), approx.predict(tiny.test)
    assert approx.bank.index_in_use == "hnsw" and approx.describe()["bank_index"] == "hnsw"
    assert (p_approx.patch_scores >= p_exact.patch_scores - 1e-4).all()
    assert not np.allclose(p_approx.patch_scores, p_exact.patch_scores), "the poor index should miss some neighbours"
    np.testing.assert_allclose(p_approx.scores, p_exact.scores, rtol=1e-5)
    approx.save(tmp_path / "model")
    loaded = PatchCore.load(tmp_path / "model")
    assert loaded.bank.index_in_use == "hnsw"
    np.testing.assert_array_equal(loaded.predict(tiny.test).patch_scores, p_approx.patch_scores)
