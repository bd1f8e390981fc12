"""Verdicts (reviews.csv) and teaching the detector back: fit --reviews, ExDD's positive bank from maskless defects."""
from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from exdd_lab.analyst.fit import fit_on_normals
from exdd_lab.analyst.reviews import REVIEWS, ReviewLog, read_reviews, reviewed_samples
from exdd_lab.data import load_dataset
from exdd_lab.data.imageio import sample_mask
from exdd_lab.errors import DatasetError, ExddError, SettingsError
from exdd_lab.features import FeatureConfig
from exdd_lab.features.patch_labels import patch_labels
from exdd_lab.methods.exdd.detector import ExDD, ExddSettings

SMALL = FeatureConfig(image_size=64)


def test_a_review_log_keeps_the_latest_verdict_and_resumes(tmp_path):
    log = ReviewLog(tmp_path, model="abc123")
    log.record("/a.png", "defect", 1.5)
    log.record("/b.png", "normal", 0.2)
    log.record("/a.png", "normal", 1.5)  # changed its mind
    log.record("/c.png", "unsure")
    again = ReviewLog(tmp_path)
    assert again.verdict("/a.png") == "normal" and again.verdict("/b.png") == "normal" and len(again) == 3
    assert again.counts() == {"defect": 0, "normal": 2, "unsure": 1}
    assert again.rows["/a.png"]["model"] == "abc123" and again.rows["/a.png"]["score"] == "1.5"
    again.forget("/c.png")
    assert ReviewLog(tmp_path).verdict("/c.png") is None
    assert [p.name for p in tmp_path.iterdir()] == [REVIEWS]  # no temporary file left beside it
    with pytest.raises(DatasetError, match="unknown verdict 'bad'"):
        log.record("/d.png", "bad")


def test_reviews_files_are_checked_and_combined(tmp_path):
    first = tmp_path / "first.csv"
    first.write_text("path,verdict,score\n/x.png,Defect,3\n/y.png,normal,1\n")
    second = tmp_path / "second.csv"
    second.write_text("verdict,path\nnormal,/x.png\n")
    assert read_reviews([first, second]) == {"/x.png": "normal", "/y.png": "normal"}  # the later file wins
    no_column = tmp_path / "bad.csv"
    no_column.write_text("image,label\n/x.png,1\n")
    with pytest.raises(DatasetError, match="bad.csv has no path or verdict column"):
        read_reviews([no_column])
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("path,verdict\n/x.png,defect\n/y.png,ok\n")
    with pytest.raises(DatasetError, match="wrong.csv, line 3"):
        read_reviews([wrong])
    with pytest.raises(DatasetError, match="no reviews file"):
        read_reviews([tmp_path / "absent.csv"])


@pytest.fixture(scope="module")
def tiny(tiny_mvtec):
    return load_dataset(tiny_mvtec, "mvtec")


def _maskless(samples):
    return [dataclasses.replace(s, mask_path=None) for s in samples]


def test_maskless_defects_need_the_unusual_selection(tiny):
    defects = _maskless([s for s in tiny.test if s.is_defect])
    with pytest.raises(ExddError, match="positive_patches='unusual'"):
        ExDD(SMALL, ExddSettings(negative_ratio=0.25), defects=defects).fit(tiny.train)
    with pytest.raises(SettingsError, match="purify_positive"):
        ExDD(SMALL, ExddSettings(negative_ratio=0.25, positive_patches="unusual", purify_positive=False),
             defects=defects).fit(tiny.train)
    with pytest.raises(SettingsError, match="set_maskless_floor"):  # no held-out normals: no floor
        ExDD(SMALL, ExddSettings(negative_ratio=0.25, positive_patches="unusual"), defects=defects).fit(tiny.train)


def test_the_unusual_selection_finds_the_defect_in_an_image_without_its_mask(tiny):
    """Given only 'this image is a defect', the positive bank's cells lie in the (withheld) defect far more than the
    defect's share of the image: only cells above the held-out normals' worst patches count."""
    truth = [s for s in tiny.test if s.is_defect]
    held_out = [s for s in tiny.test if not s.is_defect]
    detector = ExDD(SMALL, ExddSettings(negative_ratio=0.25, positive_ratio=1.0, positive_patches="unusual"),
                    defects=_maskless(truth)).fit_negative(tiny.train)
    floor = detector.set_maskless_floor(held_out, 0.99)
    assert floor > np.median(detector.calibration_d_neg().reshape(8, -1).max(1))  # new normals look worse than fitted ones
    detector.refit_positive(detector.defects)
    g = detector.extractor.grid_size
    masks = np.stack([sample_mask(s, 64) for s in truth])
    in_defect = patch_labels(masks, g, 0.01)  # cells that touch the defect
    src = detector.positive_sources
    hits = in_defect[src.image, src.row, src.col]
    assert len(src) > 0 and detector.purified > 0  # most cells were normal-looking and dropped
    assert hits.mean() > 2 * in_defect.mean(), (hits.mean(), in_defect.mean())


def test_mixed_defects_keep_their_own_images_numbering(tiny, tmp_path):
    """Masked synthetic-style defects and maskless reviewed ones in one bank: each item points at its own image."""
    truth = [s for s in tiny.test if s.is_defect]
    mixed = truth[:3] + _maskless(truth[3:])
    detector = ExDD(SMALL, ExddSettings(negative_ratio=0.25, positive_ratio=1.0, positive_patches="unusual",
                                        min_mask_fraction=0.3), defects=mixed).fit_negative(tiny.train)
    detector.set_maskless_floor([s for s in tiny.test if not s.is_defect])
    detector.refit_positive(mixed)
    images = set(detector.positive_sources.image.tolist())
    assert images <= set(range(6)) and images & {0, 1, 2} and images & {3, 4, 5}


@pytest.fixture()
def reviewed_folder(tiny, tmp_path):
    """Normals in one folder; a reviews file: two good test images reviewed normal, the defects defect, one unsure."""
    normals = tmp_path / "normals"
    normals.mkdir()
    for s in tiny.train:
        shutil.copyfile(s.image_path, normals / s.image_path.name)
    good = [s for s in tiny.test if not s.is_defect]
    bad = [s for s in tiny.test if s.is_defect]
    rows = [f"{s.image_path},normal" for s in good[:2]] + [f"{s.image_path},defect" for s in bad]
    rows += [f"{good[2].image_path},unsure", f"{tmp_path / 'gone.png'},normal"]
    reviews = tmp_path / "reviews.csv"
    reviews.write_text("path,verdict\n" + "\n".join(rows) + "\n")
    return normals, reviews


def test_fit_with_reviews_uses_normals_for_every_method_and_defects_for_exdd(reviewed_folder, tiny):
    normals, reviews = reviewed_folder
    assert len(reviewed_samples([reviews]).defects) == 6
    pc, report = fit_on_normals(normals, "patchcore", held_out=0, features=SMALL, reviews=[reviews])
    assert report.images_used == 10 and len(pc.train_paths) == 10  # 8 normals + 2 reviewed normal
    assert report.reviews["normal"] == 2 and report.reviews["unsure"] == 1 and len(report.reviews["missing"]) == 1
    assert "not used" in report.reviews["defect_use"] and any("reviews (1 file(s))" in line for line in report.lines())
    assert "measured not to help" in report.reviews["defect_use"]  # off unless asked for (reviewed_defects)
    with pytest.raises(DatasetError, match="need held-out normals"):
        fit_on_normals(normals, "exdd", held_out=0, features=SMALL, reviews=[reviews], reviewed_defects=True,
                       options={"generator": "perlin", "n_synthetic": 4})
    ex, report = fit_on_normals(normals, "exdd", held_out=3, features=SMALL, reviews=[reviews], reviewed_defects=True,
                                options={"generator": "perlin", "n_synthetic": 4})
    assert ex.maskless_floor is not None and report.images_used == 7  # 8 - 3 held out + 2 reviewed
    assert ex.settings.positive_patches == "unusual" and "positive bank" in report.reviews["defect_use"]
    reviewed = {str(s.image_path) for s in tiny.test if s.is_defect}
    used = {str(ex.defects[i].image_path) for i in set(ex.positive_sources.image.tolist())}
    assert used & reviewed  # the reviewed defects reached the bank, beside the synthetic ones


def test_the_oracle_review_evaluates_every_variant_on_the_images_not_reviewed(tiny, tmp_path):
    """review_feedback: the top-scored images leave the evaluation; the 'before' row is PatchCore's own scores there."""
    from exdd_lab.experiments.review_feedback import VARIANTS, oracle_review, review_feedback
    from exdd_lab.features import PatchFeatureExtractor
    from exdd_lab.data import write_procedural_dataset

    reviewed, rest = oracle_review(tiny.test, np.array([0.1, 0.9, 0.5, 0.3, 0.8, 0.2, 0.7, 0.4, 0.6, 0.0]), 3)
    assert reviewed == [1, 4, 6] and rest == [0, 2, 3, 5, 7, 8, 9]
    other = load_dataset(write_procedural_dataset(tmp_path, "tile", n_train=2, n_test_good=1, n_test_defect=8,
                                                  image_size=64, seed=11), "mvtec")  # masked defects, not tiny's
    synthetic = [s for s in other.test if s.is_defect]
    rows, paired = review_feedback(tiny, synthetic, [4], PatchFeatureExtractor(SMALL), held_out=2)
    assert list(rows["variant"]) == list(VARIANTS) and set(rows["n_test"]) == {6}
    assert rows["reviewed_normal"].iloc[0] + rows["reviewed_defect"].iloc[0] == 4
    assert rows["defects_left"].iloc[0] == 6 - rows["reviewed_defect"].iloc[0]
    assert len(paired) and set(paired["method_a"]) | set(paired["method_b"]) == set(VARIANTS)


def test_a_runs_reviews_must_belong_to_that_run_and_model(tiny, tmp_path):
    """A reviews.csv inside an archive run is checked against it: a verdict on an image that is not one of its rows
    (another product's image) or given on another model's scores is refused unless accepted by name; the same
    verdicts in a free-standing CSV are taken as they are and counted."""
    from exdd_lab.archive import read_results, score_archive
    from exdd_lab.methods.patchcore import PatchCore
    from exdd_lab.methods.persistence import model_fingerprint

    model = tmp_path / "model"
    PatchCore(SMALL).fit(tiny.train).save(model)
    images = tmp_path / "day"
    images.mkdir()
    for s in tiny.test[:4]:
        shutil.copyfile(s.image_path, images / s.image_path.name)
    run = tmp_path / "run"
    score_archive(model, images, run, progress=False)
    rows = list(read_results(run)["path"])
    log = ReviewLog(run, model=model_fingerprint(model))
    log.record(rows[0], "normal")
    log.record(rows[1], "defect")
    assert len(reviewed_samples([run / REVIEWS]).normals) == 1  # its own verdicts: accepted
    other_product = tiny.train[0].image_path  # exists, but was never scored in this run
    log.record(str(other_product), "normal")
    with pytest.raises(DatasetError, match="1 of its 3 verdicts do not belong to that run: 1 name images that are not rows"):
        reviewed_samples([run / REVIEWS])
    accepted = reviewed_samples([run / REVIEWS], accept_foreign=True)
    assert accepted.foreign == 1 and len(accepted.normals) == 2
    log.forget(str(other_product))
    stale = ReviewLog(run, model="f" * 64)  # verdicts given on another model's scores (a run later overwritten)
    stale.record(rows[2], "normal")
    with pytest.raises(DatasetError, match="another model's scores"):
        reviewed_samples([run / REVIEWS])
    free = tmp_path / "elsewhere.csv"
    shutil.copyfile(run / REVIEWS, free)
    loose = reviewed_samples([free])
    assert loose.free_standing == 3 and loose.foreign == 0 and len(loose.normals) == 2
