"""Bad input gets an error that names the file or value and the fix, before any time is spent on it."""
import shutil
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from exdd_lab.cli import main
from exdd_lab.data import load_dataset
from exdd_lab.data.imageio import IMAGE_SUFFIXES, load_image, load_mask

from exdd_lab.errors import DatasetError, ExddError, ImageError, SettingsError


@pytest.fixture()
def wrong_mask_dataset(tiny_mvtec, tmp_path):
    """A copy of the tiny MVTec set whose first defect mask is half its image's size."""
    root = tmp_path / "tile"
    shutil.copytree(tiny_mvtec, root)
    mask = sorted((root / "ground_truth").rglob("*_mask.png"))[0]
    Image.open(mask).resize((32, 32)).save(mask)
    return root, mask


def test_mask_of_the_wrong_size_is_refused_not_stretched(wrong_mask_dataset, tmp_path, capsys):
    root, mask = wrong_mask_dataset
    ds = load_dataset(root, "mvtec")
    bad = next(s for s in ds.test if s.mask_path == mask)
    with pytest.raises(ImageError, match="32x32") as info:
        load_mask(bad.mask_path, size=64, image_path=bad.image_path)
    assert str(bad.image_path) in str(info.value) and "re-export the mask" in str(info.value)
    # evaluate (and compare, through the same evaluation) stops with the message, exit code 2
    assert main(["evaluate", "--data", str(root), "--layout", "mvtec", "--image-size", "64",
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert mask.name in err and "64x64" in err and "fix:" in err


def test_exdd_and_student_teacher_refuse_a_wrong_mask(wrong_mask_dataset, tmp_path):
    from exdd_lab.features import FeatureConfig
    from exdd_lab.methods.exdd.detector import ExDD
    from exdd_lab.student_teacher.network import Teacher
    from exdd_lab.student_teacher.training import build_training_data
    from exdd_lab.synthesis import load_defect_set

    root, mask = wrong_mask_dataset
    ds = load_dataset(root, "mvtec")
    with pytest.raises(ImageError, match=mask.name):  # the positive bank
        ExDD(FeatureConfig(image_size=64), defects=[s for s in ds.test if s.is_defect]).fit(ds.train)
    assert main(["synthesize", "--data", str(root), "--layout", "mvtec", "--generator", "perlin", "--n", "2",
                 "--image-size", "64", "--out", str(tmp_path / "set")]) == 0
    synthetic = load_defect_set(tmp_path / "set")
    Image.open(synthetic.test[1].mask_path).resize((16, 16)).save(synthetic.test[1].mask_path)
    with pytest.raises(ImageError, match=synthetic.test[1].mask_path.name):  # the student-teacher's training set
        build_training_data(ds.train, synthetic, Teacher(), 64)


def test_unwritable_out_is_refused_before_any_fitting(tiny_mvtec, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for command in (["evaluate"], ["compare", "--methods", "patchcore"]):
        assert main(command + ["--data", str(tiny_mvtec), "--layout", "mvtec", "--out", str(blocker / "out")]) == 2
        captured = capsys.readouterr()
        assert "cannot write to --out" in captured.err and "fix:" in captured.err
        assert "on DefectDataset" not in captured.out and "comparing" not in captured.out  # nothing was fitted
    out = tmp_path / "fresh"
    from exdd_lab.cli import _writable_out

    assert _writable_out(out) == out and not out.exists()  # the check leaves nothing behind


@pytest.mark.parametrize("argv,message", [
    (["--category", "glass"], "unknown material 'glass'"),
    (["--data", "MTD", "--layout", "procedural"], "was given with --layout procedural"),
    (["--method", "nosuch"], "choose one of patchcore, exdd, student-teacher"),
    (["--backbone", "nosuch"], "unknown backbone 'nosuch'"),
])
def test_user_errors_are_messages_not_tracebacks(argv, message, tmp_path, capsys):
    argv = [str(tmp_path) if a == "MTD" else a for a in argv]
    assert main(["evaluate", *argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and "fix:" in err and "Traceback" not in err


def test_unknown_method_lists_the_registered_ones():
    from exdd_lab.features import FeatureConfig
    from exdd_lab.methods.registry import build_method

    with pytest.raises(SettingsError, match="(?s)unknown method 'nosuch'.*choose one of patchcore, exdd, student-teacher"):
        build_method("nosuch", FeatureConfig(), {})


def test_coreset_ratio_outside_its_range(capsys):
    with pytest.raises(SystemExit) as info:
        main(["evaluate", "--coreset", "0", "--out", "x"])
    assert info.value.code == 2 and "outside (0, 1]" in capsys.readouterr().err
    from exdd_lab.bank.coreset import coreset_size

    with pytest.raises(SettingsError, match="outside"):
        coreset_size(100, 0.0)


def test_empty_training_split(tiny_mvtec, tmp_path, monkeypatch, capsys):
    from exdd_lab.features import FeatureConfig
    from exdd_lab.methods import PatchCore

    with pytest.raises(DatasetError, match="train split is empty"):
        PatchCore(FeatureConfig(image_size=64)).fit([])
    empty = load_dataset(tiny_mvtec, "mvtec")
    empty.train = []
    monkeypatch.setattr("exdd_lab.data.load_dataset", lambda *a, **k: empty)
    assert main(["evaluate", "--data", str(tiny_mvtec), "--layout", "mvtec", "--out", str(tmp_path / "o")]) == 2
    assert "no training images" in capsys.readouterr().err


def test_saved_detector_of_another_format_is_refused(tiny_mvtec, tmp_path):
    import json

    from exdd_lab.features import FeatureConfig
    from exdd_lab.methods.exdd.detector import ExDD
    from exdd_lab.methods.registry import load_detector

    ds = load_dataset(tiny_mvtec, "mvtec")
    saved = ExDD(FeatureConfig(image_size=64), defects=[s for s in ds.test if s.is_defect]).fit(ds.train).save(tmp_path / "m")
    blob = json.loads((saved / "exdd.json").read_text())
    assert blob["format_version"] == 1 and blob["exdd_lab_version"]
    assert load_detector(saved).negative is not None  # the same version loads
    for change, message in ((lambda b: b.pop("format_version"), "no format version"),
                            (lambda b: b.update(format_version=99), "format version 99"),
                            (lambda b: b["settings"].update(renamed_knob=3), "unknown: renamed_knob")):
        edited = json.loads(json.dumps(blob))
        change(edited)
        (saved / "exdd.json").write_text(json.dumps(edited))
        with pytest.raises(ExddError, match=message) as info:
            load_detector(saved)
        assert "re-fit and save" in str(info.value) and str(saved) in str(info.value)


def test_sixteen_bit_images_scale_by_bit_depth(tmp_path):
    dark = np.full((8, 8), 4096, np.uint16)       # 1/16 of the 16-bit range
    ramp = np.linspace(0, 65535, 64, dtype=np.uint16).reshape(8, 8)
    Image.fromarray(dark).save(tmp_path / "dark.png")
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    flat = load_image(tmp_path / "dark.png")
    assert flat.dtype == np.uint8 and np.all(flat == 16)  # a flat dark image stays dark, not white
    assert load_image(tmp_path / "ramp.png")[0, 0, 0] == 0 and load_image(tmp_path / "ramp.png")[-1, -1, 0] == 255


def test_non_image_files_are_listed_not_skipped_silently(tiny_mvtec, tmp_path, capsys):
    root = tmp_path / "tile"
    shutil.copytree(tiny_mvtec, root)
    (root / "train" / "good" / "notes.txt").write_text("taken on Monday")
    assert main(["datasets", "--data", str(root), "--layout", "mvtec"]) == 0
    out = capsys.readouterr().out
    assert "not an image" in out and "notes.txt" in out
    assert {".png", ".jpg", ".tif", ".bmp", ".pgm", ".gif"} <= IMAGE_SUFFIXES and ".txt" not in IMAGE_SUFFIXES


def test_non_square_images_are_named_and_can_keep_their_aspect(tmp_path, make_png, capsys):
    from exdd_lab.data import letterboxed

    for i in range(3):
        make_png(tmp_path / "good" / f"{i}.png", np.full((60, 20, 3), 200, np.uint8))
    image = np.full((60, 20, 3), 200, np.uint8)
    image[10:20, 5:15] = 0
    mask = np.zeros((60, 20), np.uint8)
    mask[10:20, 5:15] = 255
    make_png(tmp_path / "defect" / "d.png", image)
    make_png(tmp_path / "masks" / "d.png", mask)
    assert main(["datasets", "--data", str(tmp_path), "--layout", "folder"]) == 0
    assert "are not square" in capsys.readouterr().out and "--keep-aspect"
    ds = letterboxed(load_dataset(tmp_path, "folder"))
    d = next(s for s in ds.test if s.is_defect)
    padded, padded_mask = load_image(d.image_path), load_mask(d.mask_path)
    assert padded.shape == (60, 60, 3) and padded_mask.shape == (60, 60) and d.stem == "d"
    assert padded_mask[10:20, 25:35].all() and padded_mask.sum() == 100  # centred, not stretched
    assert (padded[10:20, 25:35] == 0).all() and ds.split_info["resize"]["mode"] == "letterbox"


def test_unwritable_feature_cache_warns_once_and_carries_on(tiny_mvtec, tmp_path, monkeypatch):
    from exdd_lab.features import FeatureConfig, PatchFeatureExtractor
    from exdd_lab.features.cache import CacheWriteWarning, extract_features

    blocker = tmp_path / "cache-is-a-file"
    blocker.write_text("x")
    monkeypatch.setenv("EXDD_LAB_CACHE", str(blocker))
    paths = [s.image_path for s in load_dataset(tiny_mvtec, "mvtec").train[:4]]
    extractor = PatchFeatureExtractor(FeatureConfig(image_size=64))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        features = extract_features(extractor, paths, batch_size=2)
    cache_warnings = [w for w in caught if issubclass(w.category, CacheWriteWarning)]
    assert len(cache_warnings) == 1 and "EXDD_LAB_CACHE" in str(cache_warnings[0].message)
    assert torch.allclose(features, extract_features(extractor, paths, cache=False))
