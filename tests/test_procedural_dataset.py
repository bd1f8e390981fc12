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
