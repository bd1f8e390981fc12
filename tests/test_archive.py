"""The archive scorer on the local engine: inputs, bad files, shards and manifest, resume after SIGKILL,
incremental runs, refusal of another model's results, the saved threshold, and PatchCore saved and loaded."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from exdd_lab.archive import read_results, score_archive
from exdd_lab.cli import main
from exdd_lab.data import load_dataset
from exdd_lab.errors import ExddError
from exdd_lab.features import FeatureConfig
from exdd_lab.methods.patchcore import PatchCore
from exdd_lab.methods.registry import load_detector


@pytest.fixture(scope="module")
def tiny(tiny_mvtec):
    return load_dataset(tiny_mvtec, "mvtec")


@pytest.fixture(scope="module")
def saved_patchcore(tiny, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pc") / "model"
    PatchCore(FeatureConfig(image_size=64)).fit(tiny.train).save(folder)
    return folder


@pytest.fixture(scope="module")
def archive(tiny, tmp_path_factory) -> Path:
    """Every test image twice in dated sub-folders, plus every kind of bad and unusual file."""
    root = tmp_path_factory.mktemp("archive") / "line-3"
    for day in ("2026-11-30", "2026-12-01/shift-b"):
        for s in tiny.test:
            target = root / day / f"{s.defect_type}-{s.image_path.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(s.image_path, target)
    bad = root / "2026-12-02"
    bad.mkdir()
    good = tiny.test[0].image_path
    (bad / "zero.png").write_bytes(b"")
    (bad / "not-an-image.png").write_text("this is text, not a picture")
    (bad / "truncated.jpg").write_bytes(_jpeg(good)[:400])
    (bad / "notes.txt").write_text("operator notes")
    (bad / ".hidden.png").write_bytes(good.read_bytes())
    rgb = np.asarray(Image.open(good).convert("RGB"))
    Image.fromarray((rgb[..., 0].astype(np.uint16) * 257)).save(bad / "sixteen-bit.png")
    Image.fromarray(rgb).convert("CMYK").save(bad / "cmyk.jpg")
    Image.fromarray(rgb).convert("P").save(bad / "palette.png")
    Image.fromarray(rgb).convert("RGBA").save(bad / "alpha.png")
    Image.fromarray(rgb).convert("L").save(bad / "grey.bmp")
    return root


def _jpeg(path: Path) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.open(path).convert("RGB").save(buffer, format="JPEG")
    return buffer.getvalue()


def test_patchcore_is_saved_and_loaded_with_identical_scores(saved_patchcore, tiny, tmp_path):
    loaded = load_detector(saved_patchcore)
    assert isinstance(loaded, PatchCore) and loaded.threshold is None
    fresh = PatchCore(FeatureConfig(image_size=64)).fit(tiny.train)
    np.testing.assert_array_equal(loaded.predict(tiny.test).scores, fresh.predict(tiny.test).scores)
    np.testing.assert_array_equal(loaded.bank_positions, fresh.bank_positions)
    blob = json.loads((saved_patchcore / "patchcore.json").read_text())
    old = tmp_path / "old"
    shutil.copytree(saved_patchcore, old)
    (old / "patchcore.json").write_text(json.dumps({**blob, "format_version": 0}))
    with pytest.raises(ExddError, match="format version 0"):
        load_detector(old)


def test_predict_images_equals_predict_for_every_method(saved_patchcore, tiny):
    from exdd_lab.data import load_image

    detector = load_detector(saved_patchcore)
    images = np.stack([load_image(s.image_path, detector.input_size) for s in tiny.test])
    np.testing.assert_allclose(detector.predict_images(images).scores, detector.predict(tiny.test).scores, rtol=1e-6)


def test_archive_scores_every_file_once_and_reports_each_bad_one(saved_patchcore, archive, tiny, tmp_path):
    summary = score_archive(saved_patchcore, archive, tmp_path / "out", shard_size=5, progress=False)
    table = read_results(tmp_path / "out")
    files = sorted(str(p) for p in archive.rglob("*") if p.is_file() and not p.name.startswith("."))
    assert sorted(table["path"]) == files and table["index"].is_unique  # recursive, hidden files left out
    status = dict(zip(table["path"].map(lambda p: Path(p).name), table["status"]))
    assert {k: status[k] for k in ("zero.png", "not-an-image.png", "truncated.jpg")} == dict.fromkeys(
        ("zero.png", "not-an-image.png", "truncated.jpg"), "failed")
    assert status["notes.txt"] == "skipped"
    for unusual in ("sixteen-bit.png", "cmyk.jpg", "palette.png", "alpha.png", "grey.bmp"):
        assert status[unusual] == "scored", unusual
    errors = table.set_index(table["path"].map(lambda p: Path(p).name))["error"]
    assert "0 bytes" in errors["zero.png"] and errors["truncated.jpg"].startswith("truncated")
    assert errors["not-an-image.png"].startswith("unreadable")
    assert summary.counts.failed == 3 and summary.counts.skipped == 1 and not summary.ok
    # every copy of a test image gets the score the method gives that image in its dataset
    expected = dict(zip((f"{s.defect_type}-{s.image_path.name}" for s in tiny.test),
                        load_detector(saved_patchcore).predict(tiny.test).scores))
    copies = table[table["path"].map(lambda p: Path(p).name in expected)]
    assert len(copies) == 2 * len(tiny.test)
    np.testing.assert_allclose(copies["score"], copies["path"].map(lambda p: expected[Path(p).name]), rtol=1e-5)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["counts"] == {"done": len(files) - 4, "failed": 3, "skipped": 1, "pending": 0}
    assert manifest["method"] == "patchcore" and len(manifest["model_fingerprint"]) == 64
    scores = pd.read_csv(tmp_path / "out" / "scores.csv")
    assert list(scores.columns) == ["image_path", "score", "peak_y", "peak_x"] and len(scores) == len(files) - 4
    assert len(pd.read_csv(tmp_path / "out" / "errors.csv")) == 4
    assert summary.failed_now == 3 and "3 failed (3 in this run)" in "\n".join(summary.lines())
    again = score_archive(saved_patchcore, archive, tmp_path / "out", shard_size=5, progress=False)
    assert again.ok and again.failed_now == 0 and again.counts.failed == 3  # earlier failures: reported, not counted again
    assert "3 failed (0 in this run, 3 in earlier runs)" in "\n".join(again.lines())


def test_the_summary_counts_flags_per_folder(saved_patchcore, archive, tmp_path):
    summary = score_archive(saved_patchcore, archive, tmp_path / "out", threshold=0.0, progress=False)
    assert summary.flags == {"2026-11-30": [10, 10], "2026-12-01/shift-b": [10, 10], "2026-12-02": [5, 5]}
    lines = "\n".join(summary.lines())
    assert "flagged: 25 of 25 scored images" in lines and "  2026-12-01/shift-b: 10 of 10 flagged" in lines
    assert "ms per file" in lines and "with start-up" in lines and "peak memory" in lines
    none = score_archive(saved_patchcore, archive, tmp_path / "high", threshold=1e9, progress=False)
    assert sum(f for f, _ in none.flags.values()) == 0 and "flagged: 0 of 25" in "\n".join(none.lines())


def test_list_files_and_globs_choose_the_inputs(saved_patchcore, archive, tmp_path):
    day = sorted(p for p in (archive / "2026-11-30").iterdir())
    listing = tmp_path / "list.txt"
    listing.write_text("# chosen images\n" + "\n".join(str(p) for p in day[:3]) + "\n\n")
    score_archive(saved_patchcore, listing, tmp_path / "from-list", progress=False)
    assert sorted(read_results(tmp_path / "from-list")["path"]) == [str(p) for p in day[:3]]
    csv_list = tmp_path / "list.csv"
    pd.DataFrame({"image_path": [p.name for p in day[:2]]}).to_csv(csv_list, index=False)
    missing = score_archive(saved_patchcore, csv_list, tmp_path / "from-csv", progress=False)  # relative to the list
    assert missing.counts.failed == 2 and set(read_results(tmp_path / "from-csv")["error"].str[:14]) == {"file not found"}
    parquet_list = archive / "2026-11-30" / "list.parquet"
    pd.DataFrame({"path": [p.name for p in day[:2]]}).to_parquet(parquet_list)
    try:
        score_archive(saved_patchcore, parquet_list, tmp_path / "from-parquet", progress=False)
        assert sorted(read_results(tmp_path / "from-parquet")["path"]) == [str(p) for p in day[:2]]
    finally:
        parquet_list.unlink()
    score_archive(saved_patchcore, str(archive / "**" / "good-*.png"), tmp_path / "from-glob", progress=False)
    found = read_results(tmp_path / "from-glob")["path"]
    assert len(found) == 2 * 4 and all(Path(p).name.startswith("good-") for p in found)


def test_another_models_results_are_refused_and_overwrite_replaces_them(saved_patchcore, tiny, archive, tmp_path):
    out = tmp_path / "out"
    score_archive(saved_patchcore, archive / "2026-11-30", out, progress=False)
    other = tmp_path / "other"
    PatchCore(FeatureConfig(image_size=64), __import__("exdd_lab.methods.patchcore", fromlist=["x"]).PatchCoreSettings(
        coreset_ratio=0.5)).fit(tiny.train).save(other)
    with pytest.raises(ExddError, match="another model") as info:
        score_archive(other, archive / "2026-11-30", out, progress=False)
    assert "--overwrite" in info.value.fix
    assert main(["score", "--model", str(other), "--images", str(archive / "2026-11-30"), "--out", str(out), "--quiet"]) == 2
    summary = score_archive(other, archive / "2026-11-30", out, overwrite=True, progress=False)
    assert summary.ok and json.loads((out / "manifest.json").read_text())["settings"]["settings.coreset_ratio"] == 0.5
    (tmp_path / "stranger").mkdir()
    (tmp_path / "stranger" / "thesis.tex").write_text("x")
    for overwrite in (False, True):  # --overwrite deletes an archive run's files, never anything else
        with pytest.raises(ExddError, match="not an archive run's"):
            score_archive(saved_patchcore, archive / "2026-11-30", tmp_path / "stranger", overwrite=overwrite, progress=False)
    assert (tmp_path / "stranger" / "thesis.tex").read_text() == "x"


def test_a_rerun_scores_only_new_images(saved_patchcore, archive, tmp_path):
    source = tmp_path / "incoming"
    shutil.copytree(archive / "2026-11-30", source / "day-1")
    first = score_archive(saved_patchcore, source, tmp_path / "out", shard_size=4, progress=False)
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out" / "shards").iterdir()}
    again = score_archive(saved_patchcore, source, tmp_path / "out", shard_size=4, progress=False)
    assert again.scored_now == 0 and again.new_inputs == 0
    shutil.copytree(archive / "2026-12-01", source / "day-2")
    third = score_archive(saved_patchcore, source, tmp_path / "out", shard_size=4, progress=False)
    assert third.new_inputs == third.scored_now == len(list((archive / "2026-12-01").rglob("*.png")))
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out" / "shards").iterdir() if p.name in before} == before
    table = read_results(tmp_path / "out")
    assert len(table) == first.counts.scored + third.scored_now and table["path"].is_unique


def test_evaluate_saves_the_normal_only_threshold_and_score_decides_with_it(tiny_mvtec, tmp_path):
    root = tmp_path / "folder-data"
    tile = Path(tiny_mvtec)
    for sub, files in (("train", sorted((tile / "train" / "good").iterdir())),
                       ("val_good", sorted((tile / "test" / "good").iterdir())[:2]),
                       ("good", sorted((tile / "test" / "good").iterdir())[2:]),
                       ("defect", sorted((tile / "test" / "crack").iterdir()))):
        (root / sub).mkdir(parents=True)
        for f in files:
            shutil.copy(f, root / sub / f.name)
    model = tmp_path / "model"
    assert main(["evaluate", "--data", str(root), "--layout", "folder", "--method", "patchcore", "--image-size", "64",
                 "--out", str(tmp_path / "ev"), "--save-model", str(model)]) == 0
    threshold = json.loads((tmp_path / "ev" / "metrics.json").read_text())["normal_only_threshold"]
    saved = json.loads((model / "patchcore.json").read_text())["threshold"]
    assert threshold is not None and saved["value"] == pytest.approx(threshold) and saved["kind"] == "normal_only"
    summary = score_archive(model, root / "defect", tmp_path / "out", progress=False)
    table = read_results(tmp_path / "out")
    assert summary.threshold == pytest.approx(threshold) and "saved normal_only threshold" in summary.threshold_source
    assert (table["decision"] == (table["score"] >= threshold).astype(int)).all()


def test_save_maps_writes_small_maps_that_undo_to_the_peak(saved_patchcore, archive, tmp_path):
    score_archive(saved_patchcore, archive / "2026-11-30", tmp_path / "out", save_maps=True, progress=False)
    row = read_results(tmp_path / "out").iloc[0]
    saved = np.asarray(Image.open(tmp_path / "out" / row["map_file"]))
    assert saved.shape == (64, 64) and saved.dtype == np.uint8 and saved.max() >= 250
    assert row["map_min"] < row["peak_value"]


def _big_archive(archive: Path, target: Path, copies: int) -> Path:
    for i in range(copies):
        for p in (archive / "2026-11-30").iterdir():
            (target / f"batch-{i:02d}").mkdir(parents=True, exist_ok=True)
            os.link(p, target / f"batch-{i:02d}" / p.name)
    return target


@pytest.fixture(scope="module")
def slow_model(tiny, tmp_path_factory) -> Path:
    """PatchCore at 224 px: slow enough (tens of ms per image) that a run can be interrupted mid-way."""
    folder = tmp_path_factory.mktemp("pc224") / "model"
    PatchCore(FeatureConfig(image_size=224)).fit(tiny.train).save(folder)
    return folder


def _start_score(model: Path, images: Path, out: Path, **popen) -> subprocess.Popen:
    """A real `exdd-lab score` in shards of 4, to interrupt."""
    return subprocess.Popen([sys.executable, "-m", "exdd_lab", "score", "--model", str(model), "--images", str(images),
                             "--out", str(out), "--shard-size", "4", "--quiet"], **popen)


def _wait_for_shards(out: Path, count: int, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while (not (out / "shards").is_dir() or len(list((out / "shards").glob("*.parquet"))) < count) and time.time() < deadline:
        time.sleep(0.05)


def test_sigkill_mid_run_then_resume_gives_the_uninterrupted_table(slow_model, archive, tmp_path):
    images = _big_archive(archive, tmp_path / "big", copies=16)  # 160 images, 40 shards of 4
    reference = score_archive(slow_model, images, tmp_path / "reference", shard_size=4, progress=False)
    out = tmp_path / "interrupted"
    run = _start_score(slow_model, images, out, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for_shards(out, 5)
        os.killpg(run.pid, signal.SIGKILL)
    finally:
        run.wait(timeout=60)
    written = len(list((out / "shards").glob("*.parquet")))
    assert 5 <= written < 40, f"the kill came at {written} of 40 shards"
    resumed = score_archive(slow_model, images, out, shard_size=4, progress=False)
    assert resumed.scored_now == reference.scored_now - written * 4
    a, b = read_results(tmp_path / "reference"), read_results(out)
    assert list(a["path"]) == list(b["path"]) and b["index"].is_unique
    np.testing.assert_allclose(b["score"], a["score"], rtol=1e-5)
    assert (a["peak_y"] == b["peak_y"]).all() and (a["peak_x"] == b["peak_x"]).all()
    assert (pd.read_csv(out / "scores.csv")["image_path"] == pd.read_csv(tmp_path / "reference" / "scores.csv")["image_path"]).all()


def test_results_inside_the_archive_are_never_scored_as_new_images(saved_patchcore, archive, tmp_path):
    source = tmp_path / "day"
    shutil.copytree(archive / "2026-11-30", source)
    first = score_archive(saved_patchcore, source, source / "results", save_maps=True, progress=False)
    again = score_archive(saved_patchcore, source, source / "results", save_maps=True, progress=False)
    assert first.new_inputs == len(list(archive.joinpath("2026-11-30").iterdir())) and again.new_inputs == 0


def _run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "exdd_lab", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("signal_number,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_score_says_how_far_it_got_and_how_to_resume(slow_model, archive, tmp_path, signal_number, code):
    """Ctrl-C and SIGTERM on a real `exdd-lab score`: one line saying how many images were done and that the same
    command resumes, exit 130 / 143, no traceback; the shards written stay and the rerun finishes the rest."""
    images = _big_archive(archive, tmp_path / "big", copies=16)  # 160 images, 40 shards of 4
    out = tmp_path / "out"
    run = _start_score(slow_model, images, out, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_shards(out, 3)
        run.send_signal(signal_number)
        _, stderr = run.communicate(timeout=120)
    finally:
        run.kill()
    assert run.returncode == code, stderr
    assert "Traceback" not in stderr and "rerun the same command to resume" in stderr, stderr
    done = int(stderr.split("interrupted after ")[1].split(" of ")[0])
    assert " of 160 images" in stderr and 12 <= done < 160 and done % 4 == 0, stderr
    assert len(list((out / "shards").glob("*.parquet"))) == done // 4  # every finished shard kept, no partial one
    assert not list(out.rglob("*.tmp"))
    if signal_number == signal.SIGINT:  # the resume itself is checked against an uninterrupted run after SIGKILL above
        resumed = score_archive(slow_model, images, out, shard_size=4, progress=False)
        assert resumed.scored_now == 160 - done and len(read_results(out)) == 160


@pytest.mark.parametrize("damaged", ["bank.safetensors", "patchcore.json"])
def test_a_damaged_model_file_is_bad_input_naming_the_file(saved_patchcore, archive, tmp_path, damaged):
    model = tmp_path / "model"
    shutil.copytree(saved_patchcore, model)
    data = (model / damaged).read_bytes()
    (model / damaged).write_bytes(data[: len(data) // 2])  # a copy cut short
    result = _run_cli("score", "--model", str(model), "--images", str(archive / "2026-11-30"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert f"{model / damaged} is damaged or truncated" in result.stderr and "exdd-lab fit" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out" / "scores.csv").exists()


def test_an_internal_error_exits_3_with_its_traceback_in_a_log(tmp_path):
    """A bug (here a command replaced by one that divides by zero) is not bad input: exit 3, one line that names
    the log, and the log holds the traceback."""
    code = ("import sys, exdd_lab.cli as cli\ncli.cmd_datasets = lambda args: 1 / 0\n"
            "sys.exit(cli.main(['datasets']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "EXDD_LAB_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 3, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("internal error: ZeroDivisionError"), result.stderr
    log = Path(lines[0].split("traceback in ")[1].split(";")[0])
    assert log.parent == tmp_path / "cache" / "logs" and "ZeroDivisionError" in log.read_text()
    assert "Traceback (most recent call last)" in log.read_text()


def test_nothing_to_score_is_bad_input_and_writes_nothing(saved_patchcore, tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    for name in ("readme.txt", "shift-log.csv", "data.json"):
        (notes / name).write_text("not an image")
    result = _run_cli("score", "--model", str(saved_patchcore), "--images", str(notes), "--out", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert "nothing to score: the 3 files" in result.stderr and ".csv, .json, .txt" in result.stderr
    assert not (tmp_path / "out").exists()
