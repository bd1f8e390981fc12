"""The review of an archive run: the queue (order, filters, threshold counts, verdicts) and the widget's keys and page."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from exdd_lab.analyst.review_queue import ReviewQueue
from exdd_lab.analyst.review_widget import review, side_by_side
from exdd_lab.archive import score_archive
from exdd_lab.data import load_dataset
from exdd_lab.errors import ExddError
from exdd_lab.features import FeatureConfig
from exdd_lab.methods.patchcore import PatchCore
from exdd_lab.methods.registry import load_detector


@pytest.fixture(scope="module")
def scored_run(tiny_mvtec, tmp_path_factory) -> tuple[Path, Path]:
    """The tiny test split in two day folders (one nested), scored with maps and a threshold; and the model."""
    tiny = load_dataset(tiny_mvtec, "mvtec")
    base = tmp_path_factory.mktemp("review")
    model = base / "model"
    PatchCore(FeatureConfig(image_size=64)).fit(tiny.train).save(model)
    archive = base / "archive"
    for i, s in enumerate(tiny.test):
        day = archive / ("2026-12-01" if i % 2 else "2026-12-02/shift-b")
        day.mkdir(parents=True, exist_ok=True)
        shutil.copy(s.image_path, day / f"{s.defect_type}-{s.image_path.name}")
    (archive / "2026-12-01" / "empty.png").write_bytes(b"")  # failed files stay out of the review
    run = base / "run"
    score_archive(model, archive, run, save_maps=True, threshold=0.5, progress=False)
    return run, model


@pytest.fixture()
def run(scored_run, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(scored_run[0], copy)
    return copy


def test_the_queue_orders_by_score_and_filters(run):
    q = ReviewQueue(run)
    scores = q.table["score"].to_numpy()
    assert len(q) == 10 and (np.diff(scores) <= 0).all()  # the empty file is not in the queue
    assert q.folders == ["2026-12-01", "2026-12-02/shift-b"] and q.threshold == 0.5
    first = q.current()
    assert first["rank"] == 1 and first["score"] == scores[0] and first["verdict"] is None
    assert q.set_filters(folders=["2026-12-01"]) == 5
    assert set(q.table.iloc[q._view]["folder"]) == {"2026-12-01"}
    mid = float(np.median(scores))
    n = q.set_filters(folders=q.folders, band=(mid, scores[0]))
    assert n == int((scores >= mid).sum()) and all(q.table.iloc[q._view]["score"] >= mid)
    q.set_filters(band=q.score_range, near_only=True)
    near = q.table.iloc[q._view]["score"].to_numpy()
    assert (np.abs(near - 0.5) <= q.near_width).all() and len(near) == int((np.abs(scores - 0.5) <= q.near_width).sum())
    q.set_filters(near_only=False)
    assert q.move(-3)["rank"] == 1 and q.move(100)["rank"] == 10  # stops at the ends
    with pytest.raises(ExddError, match="no folder 'nope'"):
        q.set_filters(folders=["nope"])


def test_flag_counts_follow_the_threshold(run):
    q = ReviewQueue(run)
    for threshold in (q.score_range[0], float(np.median(q.table["score"])), q.score_range[1] + 1):
        counts = q.flag_counts(threshold).set_index("folder")
        for folder, group in q.table.groupby("folder"):
            assert counts.loc[folder, "flagged"] == int((group["score"] >= threshold).sum())
            assert counts.loc[folder, "images"] == len(group)


def test_verdicts_land_in_reviews_csv_and_resume(run):
    q = ReviewQueue(run)
    first, second = q.current(), q.move(1)
    q.move(-1)
    assert q.judge("defect")["path"] == second["path"]  # judged, then moved on
    q.judge("normal")
    again = ReviewQueue(run)
    assert again.reviews.verdict(first["path"]) == "defect" and again.current()["verdict"] == "defect"
    with (run / "reviews.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["path"], r["verdict"]) for r in rows] == [(first["path"], "defect"), (second["path"], "normal")]
    assert rows[0]["model"] == again.manifest["model_fingerprint"] and float(rows[0]["score"]) == pytest.approx(first["score"], rel=1e-5)
    assert again.set_filters(unreviewed_only=True) == 8
    third = again.current()
    assert again.judge("unsure")["path"] != third["path"] and len(again) == 7  # the judged image leaves this view


def test_a_folder_that_is_not_a_run_is_refused(tmp_path):
    with pytest.raises(ExddError, match="not an archive run"):
        ReviewQueue(tmp_path)


def test_the_widget_keys_judge_and_move_and_the_page_shows_image_and_map(run, scored_run):
    widget = review(run)
    caption = widget.caption.value
    assert caption.startswith("image 1 of 10") and "saved map" in widget.details.value
    from PIL import Image
    import io

    shown = Image.open(io.BytesIO(widget.picture.value))
    assert shown.size == (2 * 256 + 4, 256)  # the image and its overlay side by side
    widget.press("d")
    assert widget.caption.value.startswith("image 2 of 10") and "reviewed: 1 defect, 0 normal" in widget.tally.value
    widget.press("ArrowLeft")
    assert "verdict: <b>defect</b>" in widget.details.value
    widget.press("x")  # not a shortcut: nothing happens
    assert widget.caption.value.startswith("image 1 of 10")
    widget.buttons["normal"].click()
    assert widget.queue.reviews.verdict(widget.queue.table.iloc[0]["path"]) == "normal"
    widget.threshold.value = widget.queue.score_range[0]
    assert "10 of 10" not in widget.counts.value and "5 of 5" in widget.counts.value  # every image of each folder
    widget.folders.value = ("2026-12-01",)
    assert widget.caption.value.endswith("by score)") and " of 5 in view" in widget.caption.value


def test_a_run_without_maps_recomputes_them_with_the_detector(run, scored_run):
    shutil.rmtree(run / "maps")
    without = review(run)
    assert "no map" in without.details.value
    shown = review(run, load_detector(scored_run[1]))
    assert "map recomputed" in shown.details.value and len(shown._maps) == 1


def test_side_by_side_without_a_map_is_the_image_alone():
    from PIL import Image
    import io

    image = np.zeros((40, 30, 3), np.uint8)
    assert Image.open(io.BytesIO(side_by_side(image, None, 64))).size == (64, 64)
    flat = Image.open(io.BytesIO(side_by_side(image, np.ones((8, 8)), 64)))
    assert flat.size == (132, 64)


def test_a_later_score_run_into_the_folder_keeps_the_reviews(run, scored_run, tmp_path):
    q = ReviewQueue(run)
    q.judge("defect")
    archive = scored_run[0].parent / "archive"
    score_archive(scored_run[1], archive, run, save_maps=True, threshold=0.5, progress=False)  # resume: nothing new
    other = tmp_path / "other-model"
    shutil.copytree(scored_run[1], other)
    score_archive(other, archive, run, save_maps=True, threshold=0.7, overwrite=True, progress=False)
    assert ReviewQueue(run).reviews.counts()["defect"] == 1  # neither refused as a stranger's file nor deleted
