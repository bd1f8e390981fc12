"""ExDD end to end on a tiny procedural dataset: banks, maps, variants, explanations, save/load, bad input."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from exdd_lab.cli import main
from exdd_lab.data import load_dataset
from exdd_lab.errors import ExddError
from exdd_lab.features import FeatureConfig
from exdd_lab.bank.memory import BankError
from exdd_lab.methods import PatchCore, PatchCoreSettings
from exdd_lab.methods.exdd.detector import ExDD, ExddSettings
from exdd_lab.synthesis import PerlinBlendGenerator, load_defect_set, synthesize, write_defect_set

FEATURES = FeatureConfig(image_size=64)


@pytest.fixture(scope="module")
def tiny(tiny_mvtec):
    return load_dataset(tiny_mvtec, "mvtec")


@pytest.fixture(scope="module")
def synthetic(tiny, tmp_path_factory):
    gen = PerlinBlendGenerator([s.image_path for s in tiny.train])
    defects = synthesize(tiny.train, gen, n=6, seed=0, image_size=64)
    return load_defect_set(write_defect_set(defects, tmp_path_factory.mktemp("syn") / "set")).test


@pytest.fixture(scope="module")
def fitted(tiny, synthetic):
    return ExDD(FEATURES, ExddSettings(negative_ratio=0.25, positive_ratio=0.5, min_mask_fraction=0.3),
                defects=synthetic).fit(tiny.train)


def test_fit_builds_both_banks_and_predicts_finite_maps(fitted, tiny):
    assert len(fitted.negative) == round(8 * 64 * 0.25) and len(fitted.positive) > 0
    assert len(fitted.positive_sources) == len(fitted.positive)
    assert fitted.positive_sources.to_array().shape == (len(fitted.positive), 7)
    pred = fitted.predict(tiny.test)
    assert pred.maps.shape == (10, 64, 64) and pred.scores.shape == (10,)
    assert np.isfinite(pred.maps).all() and np.isfinite(pred.scores).all()
    for key in ("d_neg", "d_pos", "w_neg", "w_pos", "nn_neg", "nn_pos"):
        assert pred.extra[key].shape == (10, 8, 8)
    assert ((pred.extra["w_neg"] > 0) & (pred.extra["w_neg"] <= 1)).all()


def test_negative_variant_is_patchcore_on_the_same_bank(fitted, tiny):
    from exdd_lab.methods.exdd.detector import variant_grid
    from exdd_lab.bank.scoring import anomaly_maps, max_score

    # ExDD scores every variant as max of the smoothed map, so compare with PatchCore scored that way
    pc = PatchCore(FEATURES, PatchCoreSettings(coreset_ratio=0.25, seed=0, image_score="max")).fit(tiny.train)
    negative = max_score(anomaly_maps(variant_grid(fitted.predict(tiny.test).extra, "negative"), 64))
    assert np.allclose(negative, pc.predict(tiny.test).scores)


def test_gated_score_is_patchcore_raised_only_where_a_patch_is_unusual_and_defect_like(fitted, tiny, synthetic):
    from exdd_lab.methods.exdd.ratio import gated_scores

    stats = fitted.normal_stats
    assert stats is not None and stats.worst_patch > 0 and stats.defect_distance > 0
    pred = fitted.predict(tiny.test)
    d_neg = pred.extra["d_neg"]
    assert np.allclose(pred.patch_scores, gated_scores(d_neg, pred.extra["d_pos"], stats), rtol=1e-6)
    assert (pred.patch_scores >= d_neg - 1e-5).all() and (pred.patch_scores <= 2 * d_neg + 1e-5).all()
    assert np.allclose(pred.scores, pred.patch_scores.reshape(len(tiny.test), -1).max(1))  # largest patch score
    # with no strength the positive bank has no say: exactly PatchCore on the same bank and image score
    plain = ExDD(FEATURES, ExddSettings(negative_ratio=0.25, positive_ratio=0.5, min_mask_fraction=0.3, strength=0.0),
                 defects=synthetic).fit(tiny.train)
    pc = PatchCore(FEATURES, PatchCoreSettings(coreset_ratio=0.25, seed=0)).fit(tiny.train)
    ref = pc.predict(tiny.test)
    got = plain.predict(tiny.test)
    assert np.allclose(got.scores, ref.scores, rtol=1e-5) and np.allclose(got.maps, ref.maps, rtol=1e-4, atol=1e-5)


def test_purified_positive_bank_holds_only_unusual_patches(fitted, tiny, synthetic):
    from exdd_lab.methods.exdd.ratio import typical_worst_patch

    gate = typical_worst_patch(fitted.calibration_d_neg())
    assert len(fitted.calibration_d_neg()) == len(tiny.train)  # every training image when there are fewer than 100
    d_neg = fitted.negative.search(fitted.positive.items, k=1)[0][:, 0]
    assert (d_neg > gate).all() or len(fitted.positive) == 1
    assert fitted.normal_stats.worst_patch == pytest.approx(gate)
    raw = ExDD(FEATURES, ExddSettings(negative_ratio=0.25, positive_ratio=1.0, min_mask_fraction=0.3, purify_positive=False),
               defects=synthetic).fit(tiny.train)
    pure = ExDD(FEATURES, ExddSettings(negative_ratio=0.25, positive_ratio=1.0, min_mask_fraction=0.3),
                defects=synthetic).fit(tiny.train)
    d_raw = raw.negative.search(raw.positive.items, k=1)[0][:, 0]
    assert pure.purified == int((d_raw <= gate).sum()) and len(pure.positive) == len(raw.positive) - pure.purified


def test_published_ratio_stays_available(tiny, synthetic):
    from exdd_lab.methods.exdd.detector import variant_grid

    det = ExDD(FEATURES, ExddSettings(negative_ratio=0.25, positive_ratio=0.5, min_mask_fraction=0.3, score="ratio_na"),
               defects=synthetic).fit(tiny.train)
    pred = det.predict(tiny.test)
    assert np.allclose(pred.patch_scores, variant_grid(pred.extra, "ratio_na", det.settings.eps), rtol=1e-5)
    with pytest.raises(ExddError, match="unknown ExDD score"):
        ExDD(FEATURES, ExddSettings(score="nope"))
    with pytest.raises(ExddError, match="neighbourhood weights"):
        ExDD(FEATURES, ExddSettings(score="ratio_na", neighbourhood_aware=False))
    with pytest.raises(ExddError, match="out of range"):
        ExDD(FEATURES, ExddSettings(defect_quantile=1.5))


def test_exdd_image_score_option(tiny, synthetic):
    det = ExDD(FEATURES, ExddSettings(negative_ratio=0.25, image_score="exdd", min_mask_fraction=0.3),
               defects=synthetic).fit(tiny.train)
    pred = det.predict(tiny.test)
    assert np.isfinite(pred.scores).all() and (pred.scores >= 0).all()
    assert "max_map_score" in pred.extra
    from exdd_lab.methods.exdd.ratio import exdd_image_score

    e, n = pred.extra, len(tiny.test)
    expected = exdd_image_score(e["d_neg"].reshape(n, -1), e["d_pos"].reshape(n, -1), e["w_neg"].reshape(n, -1),
                                e["w_pos"].reshape(n, -1), det.settings.eps)
    assert np.allclose(pred.scores, expected, rtol=1e-6)  # the option computes the published formula
    assert not np.allclose(pred.scores, pred.extra["max_map_score"])  # and not the default score


def test_crop_variant_keeps_whole_crops(tiny, synthetic):
    det = ExDD(FEATURES, ExddSettings(negative_ratio=0.25, positive_ratio=1.0, positive_patches="crop", purify_positive=False),
               defects=synthetic).fit(tiny.train)
    assert len(det.positive) == len(synthetic) * 64  # every patch of each crop
    assert np.isfinite(det.predict(tiny.test[:2]).scores).all()


def test_empty_and_tiny_positive_banks(tiny, synthetic):
    with pytest.raises(BankError, match="positive bank is empty"):
        ExDD(FEATURES, ExddSettings(min_mask_fraction=1.01), defects=synthetic).fit(tiny.train)
    with pytest.raises(ExddError, match="needs defect images"):
        ExDD(FEATURES).fit(tiny.train)
    one = ExDD(FEATURES, ExddSettings(negative_ratio=0.25, positive_ratio=0.01, min_mask_fraction=0.01),
               defects=synthetic[:1]).fit(tiny.train)
    assert len(one.positive) == 1
    pred = one.predict(tiny.test)
    assert np.isfinite(pred.scores).all() and (pred.extra["w_pos"] == 1).all()


def test_explanation_maps_and_nearest_items(fitted, tiny):
    defect = next(s for s in tiny.test if s.is_defect)
    ex = fitted.explain(defect)
    assert {"d_neg", "d_pos", "ratio"} <= ex.keys() and ex["ratio"].shape == (64, 64)
    near = fitted.nearest_items(ex, 32, 32)
    assert near["normal"]["path"] in fitted.train_paths
    assert near["defect"]["path"] in [str(s.image_path) for s in fitted.defects]
    y0, y1, x0, x1 = near["defect"]["box"]
    assert 0 <= y0 < y1 <= 64 and 0 <= x0 < x1 <= 64
    assert near["normal"]["distance"] == pytest.approx(float(ex["grids"]["d_neg"][4, 4]))


def test_save_load_round_trip_and_mismatched_backbone(fitted, tiny, tmp_path):
    fitted.save(tmp_path / "det")
    again = ExDD.load(tmp_path / "det")
    assert again.normal_stats == fitted.normal_stats
    assert np.allclose(again.predict(tiny.test).scores, fitted.predict(tiny.test).scores)
    with pytest.raises(ExddError, match="already exists"):
        fitted.save(tmp_path / "det")
    meta = json.loads((tmp_path / "det" / "positive.json").read_text())
    meta["metadata"]["backbone"] = "resnet18"
    (tmp_path / "det" / "positive.json").write_text(json.dumps(meta))
    with pytest.raises(BankError, match="resnet18"):
        ExDD.load(tmp_path / "det")
    with pytest.raises(ExddError, match="no saved ExDD"):
        ExDD.load(tmp_path)
    fitted.save(tmp_path / "old")  # a folder saved before the gated score existed is refused, not re-scored silently
    blob = json.loads((tmp_path / "old" / "exdd.json").read_text())
    del blob["normal_stats"]
    (tmp_path / "old" / "exdd.json").write_text(json.dumps(blob))
    with pytest.raises(ExddError, match="before the gated score"):
        ExDD.load(tmp_path / "old")


def test_training_defects_never_stay_in_the_test_split(tiny):
    ds, real = tiny.with_training_defects(3, seed=1)
    assert len(real) == 3 and len(ds.test) == len(tiny.test) - 3
    assert not {s.image_path for s in real} & {s.image_path for s in ds.test}
    assert len({s.defect_type for s in real}) == min(3, len(tiny.defect_types))  # round-robin over types
    assert ds.extra["train_defects"] == real
    same, again = ds.with_training_defects(2, seed=1)  # now taken from train_defects, test untouched
    assert same is ds and set(s.image_path for s in again) <= set(s.image_path for s in real)


def test_evaluate_command_runs_exdd(tiny_mvtec, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["evaluate", "--data", str(tiny_mvtec), "--layout", "mvtec", "--method", "exdd", "--generator", "perlin",
                 "--n-synthetic", "4", "--image-size", "64", "--coreset", "0.25", "--real-defects", "1",
                 "--min-mask-fraction", "0.3", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "exdd" and 0 <= metrics["image_auroc"] <= 1
    assert metrics["synthesis.n_synthetic"] == 4 and metrics["synthesis.n_real_defects"] == 1
    assert metrics["n_test"] == 9  # the real defect moved to the bank is not evaluated
    assert "moved 1 real defect" in capsys.readouterr().out


def test_saved_detector_scores_a_folder_of_new_images(fitted, tiny, tmp_path, make_png, capsys):
    from exdd_lab.data import load_image

    fitted.save(tmp_path / "model")
    folder = tmp_path / "new"
    for s in tiny.test[:3]:
        make_png(folder / f"{s.image_path.stem}-{s.defect_type}.png", load_image(s.image_path))
    assert main(["score", "--model", str(tmp_path / "model"), "--images", str(folder), "--threshold", "1.0",
                 "--out", str(tmp_path / "out")]) == 0
    rows = (tmp_path / "out" / "scores.csv").read_text().splitlines()
    assert rows[0] == "image_path,score,peak_y,peak_x,defect" and len(rows) == 4
    expected = {f"{s.image_path.stem}-{s.defect_type}.png": score
                for s, score in zip(tiny.test[:3], fitted.predict(tiny.test[:3]).scores)}
    for row in rows[1:]:  # every file with its own score, matched by name (no sorting)
        path, score, *_, decision = row.split(",")
        assert float(score) == pytest.approx(float(expected[Path(path).name]), rel=1e-5), path
        assert int(decision) == int(float(score) >= 1.0)
    assert main(["score", "--model", str(tmp_path / "model"), "--images", str(tmp_path / "none"), "--out", str(tmp_path / "o2")]) == 2
    assert "--images " in (err := capsys.readouterr().err) and "not found" in err


def test_banks_from_another_feature_setup_are_refused(fitted, tmp_path):
    from exdd_lab.features import PatchFeatureExtractor

    fitted.save(tmp_path / "m")
    other = PatchFeatureExtractor(FeatureConfig(image_size=64, projection_dim=32))
    with pytest.raises(BankError, match="projection_dim"):
        ExDD.load(tmp_path / "m", extractor=other)
