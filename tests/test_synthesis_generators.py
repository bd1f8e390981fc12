"""The generator interface: exact masks, seeding, bad input; defect sets on disk; the quality statistic."""
from __future__ import annotations

import json

import numpy as np
import pytest

from exdd_lab.data import load_dataset, load_image, load_mask
from exdd_lab.errors import DatasetError
from exdd_lab.synthesis import (
    PerlinBlendGenerator, SynthesisError, frechet_distance, load_defect_set, make_defect, synthesize, write_defect_set,
)


class ShiftEverything:
    """A generator that changes every pixel: make_defect must still keep the outside exact."""

    name = "shift"

    def generate(self, image, mask, rng):
        return (255 - image).astype(np.uint8), {"inverted": True}


def _image(seed=0, size=48):
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def test_pixels_outside_the_mask_are_exactly_the_original():
    image = _image()
    d = make_defect(ShiftEverything(), image, np.random.default_rng(0))
    assert d.mask.any() and not d.mask.all()
    assert np.array_equal(d.image[~d.mask], image[~d.mask])
    assert np.array_equal(d.image[d.mask], 255 - image[d.mask])
    assert d.generator == "shift" and d.params == {"inverted": True}


def test_perlin_blend_is_seeded():
    image, textures = _image(0), [_image(1), _image(2)]
    gen = PerlinBlendGenerator(textures)
    a = make_defect(gen, image, np.random.default_rng(7))
    b = make_defect(gen, image, np.random.default_rng(7))
    c = make_defect(gen, image, np.random.default_rng(8))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    assert not np.array_equal(a.image, c.image)
    assert np.array_equal(a.image[~a.mask], image[~a.mask])


def test_bad_masks_are_refused_with_the_fix():
    image = _image()
    with pytest.raises(SynthesisError, match="does not match the image"):
        make_defect(ShiftEverything(), image, np.random.default_rng(0), mask=np.ones((10, 10), bool), source="a.png")
    with pytest.raises(SynthesisError, match="is empty"):
        make_defect(ShiftEverything(), image, np.random.default_rng(0), mask=np.zeros((48, 48), bool))
    with pytest.raises(SynthesisError, match="uint8"):
        make_defect(ShiftEverything(), image.astype(np.float32), np.random.default_rng(0))


def test_synthesize_write_and_reload_a_set(tiny_mvtec, tmp_path):
    ds = load_dataset(tiny_mvtec, "mvtec")
    gen = PerlinBlendGenerator([s.image_path for s in ds.train])
    defects = synthesize(ds.train, gen, n=5, seed=3, image_size=64)
    again = synthesize(ds.train, gen, n=3, seed=3, image_size=64)
    for a, b in zip(defects, again):  # a longer set starts with the shorter one
        assert np.array_equal(a.image, b.image) and a.source == b.source
    out = write_defect_set(defects, tmp_path / "set", {"generator": "perlin"})
    loaded = load_defect_set(out)
    assert len(loaded.test) == 5 and all(s.is_defect and s.mask_path for s in loaded.test)
    assert {s.defect_type for s in loaded.test} == {"synthetic_perlin"}
    assert {str(s.image_path) for s in loaded.train} == {d.source for d in defects}
    for s, d in zip(loaded.test, defects):
        assert np.array_equal(load_image(s.image_path), d.image)
        assert np.array_equal(load_mask(s.mask_path), d.mask)
    records = json.loads((out / "samples.json").read_text())["samples"]
    assert records[0]["params"]["index"] == 0 and "beta" in records[0]["params"]
    with pytest.raises(DatasetError, match="already exists"):
        write_defect_set(defects, out)
    with pytest.raises(DatasetError, match="not a synthetic defect set"):
        load_defect_set(tmp_path)


def test_frechet_distance_of_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # shifted mean by 2 along one axis: distance ~ 4 (same covariance)
    assert frechet_distance(a, a + np.array([2.0, 0, 0])) == pytest.approx(4.0, rel=1e-6)
    b = rng.normal(size=(4000, 3)) * 2.0  # covariance 4I vs I: trace(I + 4I - 2*2I) = 3
    assert frechet_distance(a, b) == pytest.approx(3.0, rel=0.1)


def test_defect_likeness_table_on_a_tiny_dataset(tiny_mvtec):
    from exdd_lab.features import FeatureConfig, PatchFeatureExtractor
    from exdd_lab.synthesis import defect_likeness
    from exdd_lab.synthesis.masks import MaskSettings

    ds = load_dataset(tiny_mvtec, "mvtec")
    extractor = PatchFeatureExtractor(FeatureConfig(image_size=64))
    blends = synthesize(ds.train, PerlinBlendGenerator([s.image_path for s in ds.train]), n=4, seed=0, image_size=64,
                        mask_settings=MaskSettings(min_area=0.05, max_area=0.5))
    table = defect_likeness(extractor, {"perlin": blends}, [s for s in ds.test if s.is_defect], ds.train, min_fraction=0.3)
    assert list(table.index) == ["perlin", "real (held out)", "normal (held out)"]
    assert ((table["closer_to_defect"] >= 0) & (table["closer_to_defect"] <= 1)).all()
    assert (table["patches"] > 0).all() and (table["frechet_to_defect"] >= 0).all()
    # held-out normal patches are nearer to the normal bank than to real defects, mostly
    assert table.loc["normal (held out)", "closer_to_defect"] < 0.5
    with pytest.raises(Exception, match="at least two real defect"):
        defect_likeness(extractor, {"perlin": blends}, [], ds.train)


def test_cached_sets_are_reused_and_extended(tiny_mvtec, monkeypatch):
    from exdd_lab.synthesis import cached_defect_set
    from exdd_lab.synthesis import defect_set

    ds = load_dataset(tiny_mvtec, "mvtec")
    small = cached_defect_set(ds.train, "perlin", 3, seed=5, image_size=64)
    made = []
    real_synthesize = defect_set.synthesize
    monkeypatch.setattr(defect_set, "synthesize", lambda *a, **k: made.append(k.get("start", 0)) or real_synthesize(*a, **k))
    again = cached_defect_set(ds.train, "perlin", 2, seed=5, image_size=64)  # a prefix of the cached set
    assert made == [] and [s.image_path for s in again.test] == [s.image_path for s in small.test[:2]]
    sources = [r["source"] for r in small.split_info["records"][:2]]  # train = the two defects' sources, no more
    assert sorted(str(s.image_path) for s in again.train) == sorted(set(sources)) and len(again.split_info["records"]) == 2
    bigger = cached_defect_set(ds.train, "perlin", 5, seed=5, image_size=64)
    assert made == [3]  # only defects 3 and 4 were made
    fresh = synthesize(ds.train, PerlinBlendGenerator([s.image_path for s in ds.train]), 5, seed=5, image_size=64)
    for s, d in zip(bigger.test, fresh):  # and the extended set equals one made in a single go
        assert np.array_equal(load_image(s.image_path), d.image)
