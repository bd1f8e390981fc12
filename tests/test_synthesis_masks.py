"""Perlin noise and masks: range, seeding, area bounds, foreground restriction; the classical blend."""
from __future__ import annotations

import numpy as np
import pytest

from exdd_lab.errors import ExddError
from exdd_lab.synthesis import MaskSettings, augment_texture, blend_texture, mask_area_statistics, perlin_mask, perlin_noise


def test_perlin_noise_is_smooth_bounded_and_seeded():
    a = perlin_noise((64, 48), (4, 3), np.random.default_rng(1))
    b = perlin_noise((64, 48), (4, 3), np.random.default_rng(1))
    c = perlin_noise((64, 48), (4, 3), np.random.default_rng(2))
    assert a.shape == (64, 48) and a.dtype == np.float32
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.abs(a).max() <= 1.0 + 1e-6 and a.std() > 0.05
    # gradient noise is smooth: neighbouring pixels differ far less than the value range
    assert np.abs(np.diff(a, axis=0)).max() < 0.25 and np.abs(np.diff(a, axis=1)).max() < 0.25


def test_finer_lattice_gives_finer_noise():
    rng = np.random.default_rng(0)
    coarse = perlin_noise((128, 128), (1, 1), rng)
    fine = perlin_noise((128, 128), (32, 32), rng)
    assert np.abs(np.diff(fine, axis=1)).mean() > 5 * np.abs(np.diff(coarse, axis=1)).mean()


@pytest.mark.parametrize("seed", range(5))
def test_masks_respect_area_bounds_and_are_reproducible(seed):
    settings = MaskSettings(min_area=0.01, max_area=0.2)
    m = perlin_mask((96, 80), np.random.default_rng(seed), settings)
    assert m.dtype == bool and m.shape == (96, 80)
    assert 0.01 <= m.mean() <= 0.2
    assert np.array_equal(m, perlin_mask((96, 80), np.random.default_rng(seed), settings))


def test_foreground_restricts_the_mask():
    fg = np.zeros((64, 64), bool)
    fg[:, :32] = True
    m = perlin_mask((64, 64), np.random.default_rng(0), MaskSettings(min_area=0.005, threshold=0.3), foreground=fg)
    assert m.any() and not m[:, 32:].any()


def test_impossible_bounds_and_wrong_foreground_fail_clearly():
    with pytest.raises(ExddError, match="no Perlin mask"):
        perlin_mask((32, 32), np.random.default_rng(0), MaskSettings(min_area=0.9, max_tries=5))
    with pytest.raises(ExddError, match="foreground mask has shape"):
        perlin_mask((32, 32), np.random.default_rng(0), foreground=np.ones((16, 16), bool))


def test_mask_area_statistics():
    a = np.zeros((10, 10), bool)
    a[0, 0] = a[5, 5] = True  # 2 regions, 2%
    b = np.zeros((10, 10), bool)
    b[:5] = True  # 1 region, 50%
    stats = mask_area_statistics([a, b])
    assert stats["n_masks"] == 2
    assert stats["area_mean"] == pytest.approx(0.26) and stats["area_min"] == pytest.approx(0.02)
    assert stats["regions_mean"] == pytest.approx(1.5)


def test_blend_changes_only_masked_pixels_by_the_stated_mix():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
    texture = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    mask = np.zeros((20, 20), bool)
    mask[5:10, 3:15] = True
    out = blend_texture(image, mask, texture, beta=0.25)
    assert np.array_equal(out[~mask], image[~mask])
    expected = np.round(0.25 * image[mask].astype(float) + 0.75 * texture[:20, :20][mask])
    assert np.array_equal(out[mask], expected.astype(np.uint8))
    with pytest.raises(ValueError, match="smaller than the image"):
        blend_texture(image, mask, texture[:10], beta=0.5)


def test_augmented_texture_differs_from_its_source():
    src = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    tex = augment_texture(src, np.random.default_rng(1))
    assert tex.shape == src.shape and tex.dtype == np.uint8
    assert np.abs(tex.astype(int) - src.astype(int)).mean() > 10
