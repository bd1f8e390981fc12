import json

import numpy as np
import pytest

from exdd_lab.data import DatasetError, load_dataset, load_split, seeded_normal_split, validate_dataset

IMG = np.full((12, 10), 90, np.uint8)
MASK = np.zeros((12, 10), np.uint8)
MASK[3:6, 2:5] = 255


def build_mvtec(root, make_png, with_mask=True):
    for i in range(3):
        make_png(root / "cat" / "train" / "good" / f"{i:03d}.png", IMG)
    make_png(root / "cat" / "test" / "good" / "000.png", IMG)
    make_png(root / "cat" / "test" / "hole" / "000.png", IMG)
    if with_mask:
        make_png(root / "cat" / "ground_truth" / "hole" / "000_mask.png", MASK)
    return root


def test_mvtec_layout(tmp_path, make_png):
    ds = load_dataset(build_mvtec(tmp_path, make_png), "mvtec", "cat")
    assert len(ds.train) == 3 and len(ds.test) == 2
    hole = [s for s in ds.test if s.is_defect][0]
    assert hole.defect_type == "hole" and hole.mask_path.name == "000_mask.png"
    assert ds.counts() == {"train_good": 3, "train_defect": 0, "test_good": 1, "test_defect": 1}


def test_mvtec_defect_without_mask_is_an_error_naming_the_mask(tmp_path, make_png):
    build_mvtec(tmp_path, make_png, with_mask=False)
    with pytest.raises(DatasetError, match="000_mask.png"):
        load_dataset(tmp_path, "mvtec", "cat")
    ds = load_dataset(tmp_path, "mvtec", "cat", require_masks=False)
    assert [s.mask_path for s in ds.test if s.is_defect] == [None]


def test_missing_folder_and_empty_class(tmp_path, make_png):
    with pytest.raises(DatasetError, match="not found") as info:
        load_dataset(tmp_path / "nowhere", "mvtec", "cat")
    assert "fix:" in str(info.value)
    build_mvtec(tmp_path, make_png)
    (tmp_path / "cat" / "test" / "scratch").mkdir()
    with pytest.raises(DatasetError, match="empty class.*scratch"):
        load_dataset(tmp_path, "mvtec", "cat")
    with pytest.raises(DatasetError, match="unknown layout 'voc'"):
        load_dataset(tmp_path, "voc")


def test_ksdd2_layout_labels_by_mask(tmp_path, make_png):
    for split in ("train", "test"):
        make_png(tmp_path / split / "10.png", IMG)
        make_png(tmp_path / split / "10_GT.png", np.zeros_like(MASK))
        make_png(tmp_path / split / "11.png", IMG)
        make_png(tmp_path / split / "11_GT.png", MASK)
    ds = load_dataset(tmp_path, "ksdd2")
    assert [s.stem for s in ds.train] == ["10"]
    assert [s.stem for s in ds.extra["train_defects"]] == ["11"]
    assert sorted((s.stem, s.label) for s in ds.test) == [("10", 0), ("11", 1)]


def build_mtd(root, make_png, n_free=10):
    for i in range(n_free):
        make_png(root / "MT_Free" / "Imgs" / f"f{i}.jpg".replace(".jpg", ".png"), IMG)
        (root / "MT_Free" / "Imgs" / f"f{i}.png").rename(root / "MT_Free" / "Imgs" / f"f{i}.jpg")
    for kind in ("MT_Crack", "MT_Fray"):
        for i in range(2):
            p = make_png(root / kind / "Imgs" / f"d{i}.png", MASK)
            p.rename(p.with_suffix(".jpg"))
            make_png(root / kind / "Imgs" / f"d{i}.png", MASK)
    return root


def test_mtd_split_is_seeded_disjoint_and_written_down(tmp_path, make_png):
    build_mtd(tmp_path, make_png)
    a = load_dataset(tmp_path, "mtd", seed=1, n_train=5, n_test_good=3)
    b = load_dataset(tmp_path, "mtd", seed=1, n_train=5, n_test_good=3)
    c = load_dataset(tmp_path, "mtd", seed=2, n_train=5, n_test_good=3)
    assert [s.image_path for s in a.train] == [s.image_path for s in b.train]
    assert [s.image_path for s in a.train] != [s.image_path for s in c.train]
    train, test_good = {s.image_path for s in a.train}, {s.image_path for s in a.test if not s.is_defect}
    val = {s.image_path for s in a.extra["val_good"]}
    assert len(train) == 5 and len(test_good) == 3 and len(val) == 2 and not (train & test_good) and not (val & train)
    assert a.defect_types == ["crack", "fray"] and a.split_info["seed"] == 1
    a.save_split(tmp_path / "split.json")
    again = load_split(tmp_path / "split.json")
    assert [s.image_path for s in again.test] == [s.image_path for s in a.test]
    assert json.loads((tmp_path / "split.json").read_text())["split_info"]["n_val_good"] == 2


def test_mtd_named_split_reads_the_list_and_tests_everything_else(tmp_path, make_png):
    build_mtd(tmp_path, make_png)
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "differnet_train.txt").write_text("f3.jpg\n# a comment\nf0.jpg\n\nf7.jpg\n")
    ds = load_dataset(tmp_path, "mtd", split="differnet", seed=5)
    assert [s.stem for s in ds.train] == ["f0", "f3", "f7"]
    assert sorted(s.stem for s in ds.test if not s.is_defect) == ["f1", "f2", "f4", "f5", "f6", "f8", "f9"]
    assert sum(s.is_defect for s in ds.test) == 4 and "val_good" not in ds.extra
    info = ds.split_info
    assert info["split"] == "differnet" and info["n_train"] == 3 and info["n_test_good"] == 7
    assert info["split_file"].endswith("differnet_train.txt") and info["published_image_auroc"]
    elsewhere = tmp_path / "my_list.txt"
    elsewhere.write_text("f1.jpg\n")
    assert [s.stem for s in load_dataset(tmp_path, "mtd", split="differnet", split_file=elsewhere).train] == ["f1"]


@pytest.mark.parametrize("content, message", [("f1.jpg\nnot_there.jpg\n", "1 file\\(s\\) not in .*not_there.jpg"),
                                               ("# nothing\n", "names no images"), ("f1.jpg\nf1.jpg\n", "twice")])
def test_mtd_bad_split_list_is_named(tmp_path, make_png, content, message):
    build_mtd(tmp_path, make_png)
    with pytest.raises(DatasetError, match="differnet training list was not found at .*differnet_train.txt"):
        load_dataset(tmp_path, "mtd", split="differnet")
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "differnet_train.txt").write_text(content)
    with pytest.raises(DatasetError, match=message):
        load_dataset(tmp_path, "mtd", split="differnet")


def test_named_split_only_where_the_layout_has_them(tmp_path, make_png, tiny_mvtec):
    build_mtd(tmp_path, make_png)
    with pytest.raises(DatasetError, match="unknown MTD split 'official'"):
        load_dataset(tmp_path, "mtd", split="official")
    with pytest.raises(DatasetError, match="one fixed split"):
        load_dataset(tiny_mvtec, "mvtec", split="differnet")


def test_mtd_missing_mask_names_the_file(tmp_path, make_png):
    build_mtd(tmp_path, make_png)
    (tmp_path / "MT_Fray" / "Imgs" / "d1.png").unlink()
    with pytest.raises(DatasetError, match="d1.jpg has no mask d1.png"):
        load_dataset(tmp_path, "mtd")


def test_folder_layout_with_types_and_optional_masks(tmp_path, make_png):
    for i in range(6):
        make_png(tmp_path / "good" / f"g{i}.png", IMG)
    make_png(tmp_path / "defect" / "dent" / "a.png", IMG)
    make_png(tmp_path / "defect" / "b.png", IMG)
    make_png(tmp_path / "masks" / "dent" / "a.png", MASK)
    ds = load_dataset(tmp_path, "folder", seed=0)
    assert len(ds.train) == 3 and sum(not s.is_defect for s in ds.test) == 3
    by_stem = {s.stem: s for s in ds.test if s.is_defect}
    assert by_stem["a"].defect_type == "dent" and by_stem["a"].mask_path is not None
    assert by_stem["b"].defect_type == "defect" and by_stem["b"].mask_path is None
    with pytest.raises(DatasetError, match="b.png has no mask"):
        load_dataset(tmp_path, "folder", require_masks=True)


def test_seeded_split_shrinks_when_folder_is_small(tmp_path):
    paths = [tmp_path / f"{i}.png" for i in range(9)]
    train, test, rest = seeded_normal_split(paths, 0, 400, 200)
    assert len(train) + len(test) == 9 and len(train) >= 1 and not rest


def test_subset_keeps_every_defect_type(tiny_mvtec):
    ds = load_dataset(tiny_mvtec, "mvtec")
    sub = ds.subset(n_train=3, n_test=4, seed=0)
    assert len(sub.train) == 3
    assert set(sub.defect_types) == set(ds.defect_types)
    assert sub.subset(n_train=3, n_test=4, seed=0).train == sub.subset(n_train=3, n_test=4, seed=0).train


def test_validation_collects_every_problem(tmp_path, make_png):
    build_mvtec(tmp_path, make_png)
    (tmp_path / "cat" / "train" / "good" / "001.png").write_bytes(b"garbage")
    make_png(tmp_path / "cat" / "ground_truth" / "hole" / "000_mask.png", np.zeros((5, 5), np.uint8))
    report = validate_dataset(load_dataset(tmp_path, "mvtec", "cat"))
    assert not report.ok and len(report.problems) == 2
    assert any("001.png" in p for p in report.problems)
    assert any("000_mask.png is 5x5" in p for p in report.problems)


def test_validation_warns_on_empty_defect_mask(tmp_path, make_png):
    build_mvtec(tmp_path, make_png)
    make_png(tmp_path / "cat" / "ground_truth" / "hole" / "000_mask.png", np.zeros((12, 10), np.uint8))
    report = validate_dataset(load_dataset(tmp_path, "mvtec", "cat"))
    empty = [w for w in report.warnings if "empty mask" in w]
    assert report.ok and len(empty) == 1
    others = [w for w in report.warnings if w not in empty and "byte-identical" not in w]  # build_mvtec repeats images
    assert others == [next(w for w in report.warnings if "not square" in w)]  # 12x10 images


@pytest.mark.realdata
def test_real_mtd_protocol(mtd_root):
    ds = load_dataset(mtd_root, "mtd", seed=0)
    c = ds.counts()
    assert (c["train_good"], c["test_good"], c["val_good_good"]) == (400, 200, 352)
    assert c["test_defect"] == 392
    assert ds.defect_types == ["blowhole", "break", "crack", "fray", "uneven"]


def test_real_mtd_published_split(mtd_root):
    if not (mtd_root / "splits" / "differnet_train.txt").is_file():
        pytest.skip(f"{mtd_root}/splits/differnet_train.txt is absent (the published list ships with ../shared/data)")
    ds = load_dataset(mtd_root, "mtd", split="differnet")
    c = ds.counts()
    assert (c["train_good"], c["test_good"], c["test_defect"]) == (761, 191, 392)
    assert not {s.image_path for s in ds.train} & {s.image_path for s in ds.test}


def test_pick_per_type_takes_the_first_of_each_type(tiny_mvtec):
    from exdd_lab.data import pick_per_type

    ds = load_dataset(tiny_mvtec, "mvtec")
    idx = pick_per_type(ds.test, per_type=1)
    assert [ds.test[i].defect_type for i in idx] == sorted(ds.defect_types)
    assert len(pick_per_type(ds.test, per_type=2)) == 6
    assert "good" in {ds.test[i].defect_type for i in pick_per_type(ds.test, defects_only=False)}
