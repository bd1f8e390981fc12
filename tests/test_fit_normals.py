"""exdd-lab fit: a detector from a folder of normal images alone, its threshold from held-out normals."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from exdd_lab.analyst.fit import HISTOGRAM, REPORT, fit_on_normals, readable_images, save_fit
from exdd_lab.errors import DatasetError, ExddError
from exdd_lab.features import FeatureConfig

SMALL = FeatureConfig(image_size=64)


@pytest.fixture()
def normals(tiny_mvtec, tmp_path):
    """The tiny data set's 8 training normals and 4 good test images in nested folders, plus two bad files."""
    root = tmp_path / "good-parts"
    for i, path in enumerate(sorted((tiny_mvtec / "train" / "good").glob("*.png")) +
                             sorted((tiny_mvtec / "test" / "good").glob("*.png"))):
        target = root / f"day{i % 2}" / f"{i:03d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    (root / "day0" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "day1" / "empty.png").write_bytes(b"")
    return root


def test_bad_files_are_recorded_and_skipped(normals):
    usable, failed, found = readable_images(normals, 64)
    assert found == 14 and len(usable) == 12
    assert {f["path"].split("/")[-1]: f["reason"].split(":")[0] for f in failed} == {
        "broken.png": "unreadable", "empty.png": "empty file (0 bytes)"}
    assert all(s.label == 0 for s in usable)


def test_fit_sets_the_threshold_from_held_out_normals(normals, tmp_path):
    detector, report = fit_on_normals(normals, "patchcore", held_out=4, false_alarm_rate=0.25, features=SMALL, seed=1)
    assert report.images_used == 8 and report.held_out == 4 and len(report.failed) == 2
    # 4 held-out normals cannot promise 25 % with 95 % confidence: their maximum, promising 1 - 0.05 ** (1 / 4)
    assert report.threshold == pytest.approx(max(report.held_out_scores), abs=1e-5) and report.threshold_rank == 1
    assert report.promised_false_alarm_rate == pytest.approx(1 - 0.05 ** 0.25) and report.confidence == 0.95
    assert any("25.00% was asked; this folder can promise 52.71%" in line for line in report.lines())
    assert detector.threshold["value"] == report.threshold and detector.threshold["promised_false_alarm_rate"] > 0.5
    assert len(report.held_out_images) == 4 and set(report.held_out_images).isdisjoint(map(str, detector.train_paths))
    assert report.bank["bank_patches"] > 0
    out = save_fit(detector, report, tmp_path / "model", lambda r, path: path.write_bytes(b"png"))
    saved = json.loads((out / REPORT).read_text())
    assert saved["threshold"] == report.threshold and len(saved["failed"]) == 2
    assert (out / HISTOGRAM).is_file() and not list(tmp_path.glob(".model*"))
    from exdd_lab.methods.registry import load_detector

    assert load_detector(out).threshold["value"] == pytest.approx(report.threshold)
    with pytest.raises(ExddError, match="already exists"):
        save_fit(detector, report, out)

    def broken(report, path):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_fit(detector, report, tmp_path / "model-2", broken)
    assert not (tmp_path / "model-2").exists() and not list(tmp_path.glob(".model-2*"))  # nothing half-written


def test_the_held_out_normals_are_not_fitted_on(normals):
    detector, report = fit_on_normals(normals, "patchcore", held_out=4, features=SMALL, seed=1)
    _, again = fit_on_normals(normals, "patchcore", held_out=4, features=SMALL, seed=1)
    assert again.held_out_scores == report.held_out_scores  # the seed fixes which normals are held out
    bank_from_all, _ = fit_on_normals(normals, "patchcore", held_out=0, features=SMALL, seed=1)
    assert report.bank["bank_patches"] < bank_from_all.describe()["bank_patches"]


def test_without_held_out_normals_there_is_no_threshold_and_the_report_says_how_to_get_one(normals):
    detector, report = fit_on_normals(normals, "patchcore", held_out="auto", features=SMALL)
    assert report.held_out == 0 and report.threshold is None and detector.threshold is None  # 12 < 50 normals
    assert any("--held-out" in line for line in report.lines())


def test_a_separate_held_out_folder(normals, tmp_path):
    held = tmp_path / "held"
    shutil.copytree(normals / "day1", held)
    detector, report = fit_on_normals(normals / "day0", "patchcore", held_out_dir=held, features=SMALL)
    assert report.held_out == len(list(held.glob("0*.png"))) and report.images_used == 6
    assert report.held_out_source == f"from {held}"


@pytest.mark.parametrize("kwargs,match", [
    ({"held_out": 12}, "--held-out 12 of 12 readable normals leaves 0 to fit on"),
    ({"false_alarm_rate": 0.0}, "false-alarm-rate"),
])
def test_bad_requests_name_the_fix(normals, kwargs, match):
    with pytest.raises(ExddError, match=match):
        fit_on_normals(normals, "patchcore", features=SMALL, **kwargs)


def test_a_folder_without_images_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(DatasetError, match="no image files"):
        readable_images(tmp_path, 64)


def test_cli_fit_then_score_uses_the_saved_threshold(normals, tmp_path, capsys):
    from exdd_lab.cli import main

    model = tmp_path / "model"
    assert main(["fit", "--normals", str(normals), "--out", str(model), "--held-out", "4", "--image-size", "64",
                 "--false-alarm-rate", "0.25", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "fitted on 8 normal images" in out and "2 unreadable and skipped" in out and "threshold" in out
    assert (model / HISTOGRAM).stat().st_size > 1000  # a real PNG
    assert main(["score", "--model", str(model), "--images", str(normals / "day0"), "--out", str(tmp_path / "scores"),
                 "--quiet"]) == 1  # the broken file is an error row: exit code 1, as score documents
    printed = capsys.readouterr().out
    assert "saved normal_only threshold" in printed
    import pandas as pd

    scores = pd.read_csv(tmp_path / "scores" / "scores.csv")
    assert scores["defect"].notna().sum() == 6 and set(scores["defect"]) <= {0, 1}
    assert main(["fit", "--normals", str(normals), "--out", str(model)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_evaluate_held_out_moves_normals_out_of_training_for_the_saved_threshold(tiny_mvtec, tmp_path):
    """`evaluate --held-out N` on an MVTec layout (no held-out normals of its own), as `compare` has it."""
    from exdd_lab.cli import main

    model = tmp_path / "model"
    assert main(["evaluate", "--data", str(tiny_mvtec), "--layout", "mvtec", "--image-size", "64", "--held-out", "3",
                 "--out", str(tmp_path / "ev"), "--save-model", str(model)]) == 0
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["normal_only_threshold"] is not None
    assert metrics["split"]["held_out_normals"] == {"n": 3, "seed": 0, "moved_from_train": True}
    assert metrics["n_train"] == 8 - 3
    assert json.loads((model / "patchcore.json").read_text())["threshold"]["value"] == pytest.approx(
        metrics["normal_only_threshold"])


@pytest.mark.notebooks
def test_notebook_08_fits_on_the_analysts_normals_and_scores_their_archive(normals, tiny_mvtec, tmp_path):
    """Notebook 08 with `normals` and `archive` set: it fits on the normals, scores the archive read only, and the
    sections that need labels say there are none."""
    import nbformat

    from exdd_lab.lab.notebooks import NOTEBOOKS_DIR, execute_notebook
    from exdd_lab.numerics import harness_environment

    archive = tmp_path / "archive"
    shutil.copytree(tiny_mvtec / "test", archive)
    before = sorted(p.relative_to(archive) for p in archive.rglob("*"))
    params = {"image_size": 64, "normals": str(normals), "archive": str(archive),
              "metrics_path": str(tmp_path / "m.json")}
    execute_notebook(NOTEBOOKS_DIR / "08_scoring_an_archive.ipynb", tmp_path / "08.ipynb", params, env=harness_environment())
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                     for c in nbformat.read(str(tmp_path / "08.ipynb"), as_version=4).cells for o in c.get("outputs", []))
    assert "fitted on 12 normal images" in text and "no labels for this archive" in text
    assert "threshold: none (no held-out normals)" in text  # 12 normals: auto holds none out, and says so
    assert sorted(p.relative_to(archive) for p in archive.rglob("*")) == before  # the analyst's archive is untouched
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["n_scored"] == len([p for p in before if p.suffix == ".png"]) and metrics["archive_image_auroc"] is None


def test_messages_name_the_argument_the_user_typed_and_every_command_that_writes_a_model(tmp_path, capsys):
    from exdd_lab.cli import build_parser, main

    assert main(["fit", "--normals", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m")]) == 2
    said = capsys.readouterr().err
    assert f"--normals {tmp_path / 'nowhere'} not found" in said and "--images" not in said
    with pytest.raises(DatasetError, match="--held-out-dir"):
        readable_images(tmp_path / "nowhere", 64, argument="--held-out-dir")
    (tmp_path / "empty-model").mkdir()
    assert main(["score", "--model", str(tmp_path / "empty-model"), "--images", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    said = capsys.readouterr().err
    assert "holds no saved detector" in said and "exdd-lab fit" in said and "evaluate" in said
    helps = {name: action.help for name in ("score", "export") for action in
             build_parser()._subparsers._group_actions[0].choices[name]._actions if "--model" in action.option_strings}
    assert all("`fit --out`" in text and "`evaluate --save-model`" in text for text in helps.values()), helps


@pytest.mark.parametrize("argv,said", [
    (["score", "--model", "m", "--images", "i", "--out", "o", "--threshold", "nan"], "argument --threshold: nan is not a finite number"),
    (["score", "--model", "m", "--images", "i", "--out", "o", "--threshold", "high"], "argument --threshold: 'high' is not a number"),
    (["fit", "--normals", "n", "--out", "o", "--false-alarm-rate", "1"], "argument --false-alarm-rate: 1 is outside (0, 1)"),
    (["fit", "--normals", "n", "--out", "o", "--false-alarm-rate", "1.5"], "argument --false-alarm-rate: 1.5 is outside (0, 1)"),
    (["fit", "--normals", "n", "--out", "o", "--false-alarm-rate", "abc"], "argument --false-alarm-rate: 'abc' is not a number"),
    (["fit", "--normals", "n", "--out", "o", "--held-out", "lots"], "argument --held-out: 'lots' is neither auto nor a whole number"),
    (["fit", "--normals", "n", "--out", "o", "--held-out", "-3"], "argument --held-out: -3 is negative"),
    (["evaluate", "--out", "o", "--sigma", "inf"], "argument --sigma: inf is not a finite number"),
])
def test_malformed_numbers_are_usage_errors_naming_the_argument(argv, said, capsys):
    from exdd_lab.cli import main

    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert said in err and "_ratio" not in err and "Traceback" not in err, err


def test_a_held_out_count_that_leaves_too_few_normals_is_refused(normals, tmp_path):
    with pytest.raises(DatasetError, match=r"--held-out 8 of 12 readable normals leaves 4 to fit on.*at least 5") as info:
        fit_on_normals(normals, "patchcore", held_out=8, features=SMALL)
    assert "hold out at most 7" in info.value.fix
    detector, report = fit_on_normals(normals, "patchcore", held_out=7, false_alarm_rate=0.25, features=SMALL)
    assert report.images_used == 5 and report.held_out == 7


def test_auto_holds_out_what_the_rate_needs_and_states_what_a_small_folder_can_promise():
    from exdd_lab.analyst.fit import _held_out_count

    assert _held_out_count("auto", 60) == 12        # a fifth: 12 normals can promise no better than 22 %
    assert _held_out_count("auto", 1000) == 200
    assert _held_out_count("auto", 2000) == 299     # 1 % at 95 % needs 299, no more is taken from the fit
    assert _held_out_count("auto", 2000, 0.05, 0.95) == 59
    assert _held_out_count("auto", 40) == 0         # below 50 normals: all of them are fitted on
