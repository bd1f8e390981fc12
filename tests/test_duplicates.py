"""Byte-identical images under different names: reported within a split and as leakage across splits, by
`exdd-lab datasets`, `evaluate` and `fit`; `--keep-aspect` pads both copies (it used to write only the first)."""
import shutil

import numpy as np

from exdd_lab.analyst.fit import fit_on_normals
from exdd_lab.cli import main
from exdd_lab.data import letterboxed, load_dataset
from exdd_lab.data.duplicates import find_duplicates
from exdd_lab.features import FeatureConfig


def test_groups_and_leaks_are_told_apart(tmp_path, make_png):
    a = make_png(tmp_path / "a.png", np.full((8, 8, 3), 10, np.uint8))
    b = tmp_path / "b.png"
    shutil.copyfile(a, b)
    c = make_png(tmp_path / "c.png", np.full((8, 8, 3), 20, np.uint8))
    d = tmp_path / "d.png"
    shutil.copyfile(c, d)
    e = make_png(tmp_path / "e.png", np.full((8, 8, 3), 30, np.uint8))
    report = find_duplicates({"train": [a, b, c], "test": [d, e, a]})  # a listed twice is one file, not a copy
    assert [[p for _, p in g] for g in report.groups] == [[str(a), str(b)], [str(c), str(d)]]
    assert [[s for s, _ in g] for g in report.leaks] == [["train", "test"]]
    lines = report.lines()
    assert lines[0].startswith("1 image(s) of another split are byte-identical to a training image (leakage")
    assert lines[1].startswith("1 group(s) of byte-identical images within a split")
    assert find_duplicates({"train": [a, c, e]}).lines() == []


def test_validation_and_evaluate_report_a_test_image_copied_from_training(tiny_mvtec, tmp_path, capsys):
    root = tmp_path / "data"
    shutil.copytree(tiny_mvtec, root)
    first = sorted((root / "train" / "good").glob("*.png"))[0]
    shutil.copyfile(first, root / "test" / "good" / "copy-of-a-training-image.png")
    assert main(["datasets", "--data", str(root), "--layout", "mvtec"]) == 0
    out = capsys.readouterr().out
    assert "byte-identical to a training image (leakage" in out and "copy-of-a-training-image.png" in out
    assert main(["evaluate", "--data", str(root), "--layout", "mvtec", "--image-size", "64", "--bootstrap", "0",
                 "--keep-aspect", "--out", str(tmp_path / "eval")]) == 0
    assert "leakage" in capsys.readouterr().err


def test_keep_aspect_pads_byte_identical_images_under_both_names(tmp_path, make_png):
    image = np.full((40, 20, 3), 120, np.uint8)
    for name in ("one.png", "two.png", "three.png"):
        make_png(tmp_path / "good" / name, image)
    make_png(tmp_path / "good" / "other.png", np.full((40, 20, 3), 90, np.uint8))
    ds = letterboxed(load_dataset(tmp_path, "folder"))
    names = sorted(s.image_path.name for split in ds.splits().values() for s in split)
    assert names == ["one.png", "other.png", "three.png", "two.png"]
    assert all(s.image_path.is_file() for split in ds.splits().values() for s in split)


def test_fit_reports_duplicates_among_the_normals(tiny_mvtec, tmp_path):
    normals = tmp_path / "normals"
    shutil.copytree(tiny_mvtec / "train" / "good", normals)
    first = sorted(normals.glob("*.png"))[0]
    shutil.copyfile(first, normals / "again.png")
    _, report = fit_on_normals(normals, "patchcore", held_out=0, features=FeatureConfig(image_size=64))
    assert len(report.duplicates["groups"]) == 1
    assert any("byte-identical images within a split" in line for line in report.lines())
