import numpy as np
import pytest
from PIL import Image

from exdd_lab.data import load_image, load_mask, load_masks
from exdd_lab.errors import ImageError


def test_any_mode_becomes_rgb(tmp_path, make_png):
    gray = make_png(tmp_path / "g.png", np.full((5, 7), 100, np.uint8))
    rgba = np.zeros((5, 7, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 255
    rgba[0, 0, 3] = 0  # one transparent pixel: composited onto black
    rgba_p = make_png(tmp_path / "a.png", rgba)
    deep = tmp_path / "d.png"
    Image.fromarray(np.full((5, 7), 30000, np.uint16)).save(deep)
    assert load_image(gray).shape == (5, 7, 3) and load_image(gray)[0, 0].tolist() == [100, 100, 100]
    out = load_image(rgba_p)
    assert out[1, 1].tolist() == [200, 0, 0] and out[0, 0].tolist() == [0, 0, 0]
    assert load_image(deep).shape == (5, 7, 3) and load_image(deep).max() == round(30000 / 65535 * 255)  # by bit depth
    assert load_image(gray, 16).shape == (16, 16, 3)
    assert load_image(gray, (8, 4)).shape == (8, 4, 3)


def test_corrupt_and_truncated_images_name_the_file(tmp_path, make_png):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(ImageError, match="broken.png") as info:
        load_image(bad)
    assert "fix:" in str(info.value)
    good = make_png(tmp_path / "full.png", np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[:-300])
    with pytest.raises(ImageError, match="cut.png"):
        load_image(cut)
    with pytest.raises(ImageError, match="not found"):
        load_image(tmp_path / "missing.png")


def test_mask_binarised_at_half_and_size_checked(tmp_path, make_png):
    arr = np.array([[0, 127, 128, 255]], np.uint8)
    mask_path = make_png(tmp_path / "m.png", arr)
    assert load_mask(mask_path).tolist() == [[False, False, True, True]]
    with pytest.raises(ImageError, match=r"m.png is 1x4 \(HxW\) but its image .*img.png is 2x4"):
        load_mask(mask_path, expected_hw=(2, 4), image_path=tmp_path / "img.png")
    assert load_mask(None, expected_hw=(3, 2)).shape == (3, 2)
    assert not load_mask(None, size=4).any()
    resized = load_mask(mask_path, size=8)
    assert resized.dtype == bool and resized.shape == (8, 8) and resized[:, 6:].all() and not resized[:, :2].any()
    stack = load_masks([mask_path, None], 8)
    assert stack.shape == (2, 8, 8) and not stack[1].any()
