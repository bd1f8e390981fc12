import numpy as np
import pytest

from exdd_lab.data.surfaces import DEFECTS, MATERIAL_DEFECTS, MATERIALS, add_defect, render_surface


@pytest.mark.parametrize("material", sorted(MATERIALS))
def test_surface_is_deterministic_by_seed(material):
    a, b, c = render_surface(material, 7, 64), render_surface(material, 7, 64), render_surface(material, 8, 64)
    assert a.shape == (64, 64, 3) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert 0.0 <= a.min() and a.max() <= 1.0


@pytest.mark.parametrize("material", sorted(MATERIALS))
@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_defect_mask_is_exact(material, defect):
    clean = render_surface(material, 1, 96)
    for seed in range(3):
        img, mask = add_defect(clean, defect, seed)
        assert mask.dtype == bool and mask.shape == (96, 96)
        assert mask.sum() >= 3, "a defect is never empty"
        assert np.array_equal(img[~mask], clean[~mask]), "pixels outside the mask must be untouched"
        assert np.abs(img[mask] - clean[mask]).max() > 0.02, "the defect must change the masked pixels"


def test_defect_is_deterministic_and_varies_with_seed():
    clean = render_surface("marble", 0, 64)
    a, ma = add_defect(clean, "crack", 5)
    b, mb = add_defect(clean, "crack", 5)
    _, mc = add_defect(clean, "crack", 6)
    assert np.array_equal(a, b) and np.array_equal(ma, mb)
    assert not np.array_equal(ma, mc)


def test_every_material_lists_known_defects():
    assert set(MATERIAL_DEFECTS) == set(MATERIALS)
    for kinds in MATERIAL_DEFECTS.values():
        assert set(kinds) <= set(DEFECTS)


def test_unknown_names_are_rejected():
    with pytest.raises(ValueError, match="unknown material 'glass'"):
        render_surface("glass", 0)
    with pytest.raises(ValueError, match="unknown defect type 'dent'"):
        add_defect(render_surface("tile", 0, 32), "dent", 0)
