import numpy as np
import pytest
import torch

from exdd_lab.features import FeatureConfig, PatchFeatureExtractor, aggregate_neighbourhood, combine_layers
from exdd_lab.components.projection import gaussian_projection


def test_neighbourhood_average_matches_a_hand_computation():
    x = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)
    out = aggregate_neighbourhood(x, 3)
    assert out[0, 0, 1, 1] == pytest.approx(x[0, 0, 0:3, 0:3].mean())
    assert out[0, 0, 0, 0] == pytest.approx(x[0, 0, 0:2, 0:2].sum() / 9), "reference: zero padding, divide by 9"
    assert out[0, 0, 0, 1] == pytest.approx(x[0, 0, 0:2, 0:3].sum() / 9)
    excluded = aggregate_neighbourhood(x, 3, padding="exclude")
    assert excluded[0, 0, 0, 0] == pytest.approx(x[0, 0, 0:2, 0:2].mean()), "'exclude' averages real neighbours only"
    assert torch.equal(excluded[..., 1:3, 1:3], out[..., 1:3, 1:3]), "inside cells do not depend on the padding"
    const = torch.full((2, 3, 5, 5), 7.0)
    assert torch.allclose(aggregate_neighbourhood(const, 3, padding="exclude"), const)
    assert aggregate_neighbourhood(const, 3)[0, 0, 0, 0] == pytest.approx(7.0 * 4 / 9)
    assert aggregate_neighbourhood(x, 1) is x
    with pytest.raises(ValueError, match="padding"):
        aggregate_neighbourhood(x, 3, padding="reflect")


def test_combine_layers_resizes_to_the_finest_grid_and_concatenates():
    fine = torch.randn(2, 4, 8, 8)
    coarse = torch.ones(2, 6, 4, 4)
    out = combine_layers([fine, coarse], neighbourhood=1)
    assert out.shape == (2, 8, 8, 10)
    assert torch.equal(out[..., :4], fine.permute(0, 2, 3, 1))
    assert torch.allclose(out[..., 4:], torch.ones(2, 8, 8, 6))


def test_projection_is_seeded_and_roughly_preserves_distances():
    a, b = gaussian_projection(152, 64, seed=1), gaussian_projection(152, 64, seed=1)
    assert torch.equal(a, b) and not torch.equal(a, gaussian_projection(152, 64, seed=2))
    x = torch.randn(200, 152)
    d_in = torch.cdist(x, x)
    d_out = torch.cdist(x @ a, x @ a)
    ratio = (d_out[d_in > 0] / d_in[d_in > 0]).mean()
    assert 0.8 < float(ratio) < 1.2


def test_extractor_shapes_and_normalisation():
    cfg = FeatureConfig(backbone="test_efficientnet", weights="random", layers=(1, 2), image_size=64)
    fx = PatchFeatureExtractor(cfg)
    assert fx.grid_size == 16 and fx.feature_dim == 24 + 32
    images = np.random.default_rng(0).integers(0, 255, (3, 64, 64, 3), dtype=np.uint8)
    feats = fx(images)
    assert feats.shape == (3, 16, 16, 56) and feats.dtype == torch.float32
    assert torch.equal(feats, fx(images)), "same input, same features"
    grey = np.full((1, 64, 64, 3), 255, np.uint8)
    x = fx.preprocess(grey)
    assert torch.allclose(x[0, :, 0, 0], (1 - fx.mean.flatten()) / fx.std.flatten())
    projected = PatchFeatureExtractor(FeatureConfig("test_efficientnet", "random", (1, 2), 64, projection_dim=8))
    assert projected(images).shape == (3, 16, 16, 8) and projected.feature_dim == 8
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        fx(np.zeros((2, 64, 64), np.uint8))


def test_default_extractor_is_efficientnet_lite0_with_152_dims():
    fx = PatchFeatureExtractor()
    assert fx.weights_source.kind == "packaged"
    assert fx.layer_channels == [40, 112] and fx.feature_dim == 152 and fx.grid_size == 32
    out = fx(np.zeros((1, 256, 256, 3), np.uint8))
    assert out.shape == (1, 32, 32, 152) and torch.isfinite(out).all()
