import numpy as np

from exdd_lab.data import load_dataset, load_image, load_mask, procedural_dataset


def test_procedural_dataset_layout_and_counts(tiny_mvtec):
    ds = load_dataset(tiny_mvtec, "mvtec")
    assert len(ds.train) == 8 and all(not s.is_defect for s in ds.train)
    assert sum(s.is_defect for s in ds.test) == 6 and sum(not s.is_defect for s in ds.test) == 4
    assert set(ds.defect_types) == {"crack", "pit", "stain"}
    for s in ds.test:
        if s.is_defect:
            assert load_mask(s.mask_path, expected_hw=(64, 64)).any()
    assert load_image(ds.train[0].image_path).shape == (64, 64, 3)


def test_procedural_default_is_cached_and_deterministic(tmp_path):
    a = procedural_dataset("copper", 4, 2, 3, 48, seed=1, root=tmp_path / "a")
    stamp = a.train[0].image_path.stat().st_mtime_ns
    again = procedural_dataset("copper", 4, 2, 3, 48, seed=1, root=tmp_path / "a")
    assert again.train[0].image_path.stat().st_mtime_ns == stamp, "second call must reuse the rendered folder"
    b = procedural_dataset("copper", 4, 2, 3, 48, seed=1, root=tmp_path / "b")
    for sa, sb in zip(a.test, b.test):
        assert np.array_equal(load_image(sa.image_path), load_image(sb.image_path))
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".")], "no temporary folders left"
    other = procedural_dataset("copper", 4, 2, 3, 48, seed=2, root=tmp_path / "a")
    assert other.root != a.root
    assert a.name == "procedural-copper" and a.layout == "procedural"


def test_procedural_default_holds_out_normals_for_thresholds(tmp_path):
    ds = procedural_dataset("copper", 4, 2, 3, 48, seed=1, root=tmp_path / "a", n_val_good=5)
    held = ds.extra["val_good"]
    assert len(held) == 5 and all(not s.is_defect for s in held)
    used = {load_image(s.image_path).tobytes() for s in ds.train + ds.test}
    assert not {load_image(s.image_path).tobytes() for s in held} & used, "held-out normals are new images"
    again = procedural_dataset("copper", 4, 2, 3, 48, seed=1, root=tmp_path / "b", n_val_good=5)
    assert [load_image(s.image_path).tobytes() for s in again.extra["val_good"]] == [load_image(s.image_path).tobytes() for s in held]
    assert "val_good" not in procedural_dataset("copper", 4, 2, 3, 48, seed=1, root=tmp_path / "c", n_val_good=0).extra


def test_with_held_out_normals_samples_or_moves(tmp_path):
    import pytest

    from exdd_lab.errors import DatasetError

    ds = procedural_dataset("copper", 6, 2, 3, 48, seed=1, root=tmp_path / "a", n_val_good=5)
    sampled = ds.with_held_out_normals(3, seed=0)
    assert len(sampled.extra["val_good"]) == 3 and sampled.train == ds.train  # the layout's own: nothing moved
    assert not sampled.split_info["held_out_normals"]["moved_from_train"]
    bare = procedural_dataset("copper", 6, 2, 3, 48, seed=1, root=tmp_path / "b", n_val_good=0)
    moved = bare.with_held_out_normals(2, seed=0)
    assert len(moved.train) == 4 and len(moved.extra["val_good"]) == 2
    assert not {s.image_path for s in moved.train} & {s.image_path for s in moved.extra["val_good"]}
    assert moved.split_info["held_out_normals"]["moved_from_train"]
    with pytest.raises(DatasetError, match="cannot hold out 6"):
        bare.with_held_out_normals(6)
