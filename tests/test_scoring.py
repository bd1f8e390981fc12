import numpy as np
import pytest

from exdd_lab.bank.scoring import anomaly_maps, gaussian_kernel1d, max_score, reweighting_factor


def test_maps_upsample_smooth_and_keep_constants():
    const = np.full((2, 4, 4), 3.0)
    maps = anomaly_maps(const, 32, sigma=4)
    assert maps.shape == (2, 32, 32) and np.allclose(maps, 3.0, atol=1e-5)
    spike = np.zeros((1, 8, 8))
    spike[0, 4, 4] = 1.0
    smooth, raw = anomaly_maps(spike, 64, 4), anomaly_maps(spike, 64, 0)
    assert smooth.max() < raw.max() and smooth.sum() == pytest.approx(raw.sum(), rel=0.05)
    peak = np.unravel_index(smooth[0].argmax(), smooth[0].shape)
    assert abs(peak[0] - 36) <= 2 and abs(peak[1] - 36) <= 2
    assert max_score(smooth).shape == (1,) and max_score(smooth)[0] == smooth.max()


@pytest.mark.parametrize("grid, size, sigma", [((32, 32), 256, 4.0), ((7, 5), 64, 2.0), ((8, 8), 64, 0.0)])
def test_separable_maps_equal_upsampling_then_blurring_the_image(grid, size, sigma):
    """The matrix form must give the numbers of the direct recipe: bilinear upsampling of the grid to the
    image, then a 2-D Gaussian with reflected borders (computed here the slow way, with conv2d)."""
    import torch
    import torch.nn.functional as F

    scores = np.random.default_rng(0).gamma(2.0, 1.0, (3, *grid)).astype(np.float32)
    up = F.interpolate(torch.from_numpy(scores)[:, None], size=(size, size), mode="bilinear", align_corners=False)
    if sigma:
        k = gaussian_kernel1d(sigma)
        r = len(k) // 2
        up = F.conv2d(F.pad(up, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
        up = F.conv2d(F.pad(up, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))
    np.testing.assert_allclose(anomaly_maps(scores, size, sigma), up[:, 0].numpy(), rtol=1e-5, atol=1e-5)


def test_gaussian_kernel_is_normalised():
    k = gaussian_kernel1d(4.0)
    assert len(k) == 33 and float(k.sum()) == pytest.approx(1.0) and int(k.argmax()) == 16


def test_reweighting_matches_equation_7_by_hand():
    d = np.array([[1.0, 2.0, 3.0]])
    expected = 1 - np.exp(1) / (np.exp(1) + np.exp(2) + np.exp(3))
    assert reweighting_factor(d)[0] == pytest.approx(expected)
    # nearest item in a dense region (neighbours as close as itself): weight near 1 - 1/b
    assert reweighting_factor(np.array([[1.0, 1.0, 1.0]]))[0] == pytest.approx(2 / 3)
    # its neighbours much farther from the query than itself: the weight approaches 1
    assert reweighting_factor(np.array([[1.0, 9.0, 9.0]]))[0] > 0.999
    assert reweighting_factor(np.array([[5.0, 5.0]]), temperature=2.0)[0] == pytest.approx(0.5)
