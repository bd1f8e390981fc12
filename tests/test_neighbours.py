import numpy as np
import pytest
import torch

from exdd_lab.errors import ExddError
from exdd_lab.features.inspect import feature_statistics, layer_pca_rgb, nearest_normal_distances
from exdd_lab.features.patch_labels import mask_fraction_per_patch, patch_labels
from exdd_lab.components.neighbours import knn


def test_knn_matches_brute_force():
    rng = np.random.default_rng(0)
    ref, q = rng.normal(size=(300, 16)).astype(np.float32), rng.normal(size=(40, 16)).astype(np.float32)
    dist, idx = knn(q, ref, k=3)
    brute = torch.cdist(torch.from_numpy(q), torch.from_numpy(ref))
    want_d, want_i = brute.topk(3, largest=False)
    assert np.array_equal(idx, want_i.numpy())
    assert np.allclose(dist, want_d.numpy(), atol=1e-4)
    assert (np.diff(dist, axis=1) >= 0).all()


def test_knn_errors_name_the_problem():
    with pytest.raises(ExddError, match="dimension 8"):
        knn(np.zeros((2, 4)), np.zeros((5, 8)))
    with pytest.raises(ExddError, match="empty"):
        knn(np.zeros((2, 4)), np.zeros((0, 4)))


def test_patch_fractions_on_a_hand_made_mask():
    mask = np.zeros((1, 8, 8), bool)
    mask[0, :4, :4] = True  # top-left cell of a 2x2 grid fully masked
    mask[0, 4, 4] = True  # one pixel of the bottom-right cell
    frac = mask_fraction_per_patch(mask, 2)
    assert frac[0].tolist() == [[1.0, 0.0], [0.0, 1 / 16]]
    assert patch_labels(mask, 2).tolist() == [[[True, False], [False, False]]]


def test_nearest_normal_distances_on_hand_made_features():
    train = torch.zeros(1, 2, 2, 3)
    test = torch.zeros(1, 2, 2, 3)
    test[0, 0, 0] = torch.tensor([3.0, 4.0, 0.0])  # 5 away from every normal patch
    masks = np.zeros((1, 4, 4), bool)
    masks[0, :2, :2] = True
    rep = nearest_normal_distances(train, test, masks)
    assert rep.defect.tolist() == pytest.approx([5.0])
    assert rep.normal.tolist() == [0.0, 0.0, 0.0]
    assert rep.patch_auroc == 1.0 and rep.maps.shape == (1, 2, 2)


def test_layer_views_and_statistics():
    fmap = torch.randn(10, 6, 5)
    rgb = layer_pca_rgb(fmap)
    assert rgb.shape == (6, 5, 3) and rgb.min() >= 0 and rgb.max() <= 1
    feats = torch.cat([torch.ones(2, 3, 3, 2), 2 * torch.ones(2, 3, 3, 3)], -1)
    table = feature_statistics(feats, [2, 3])
    assert table["mean"].tolist() == [1.0, 2.0]
    assert table["mean_l2_norm"].tolist() == pytest.approx([2**0.5, 2 * 3**0.5])


def test_reference_subsampling_is_seeded_and_only_above_the_cap():
    rng = torch.Generator().manual_seed(0)
    train, test = torch.randn(4, 4, 4, 8, generator=rng), torch.randn(2, 4, 4, 8, generator=rng)
    masks = np.zeros((2, 8, 8), bool)
    full = nearest_normal_distances(train, test, masks, max_reference=None)
    assert np.array_equal(full.maps, nearest_normal_distances(train, test, masks, max_reference=64).maps)
    a = nearest_normal_distances(train, test, masks, max_reference=10, seed=1)
    b = nearest_normal_distances(train, test, masks, max_reference=10, seed=1)
    assert np.array_equal(a.maps, b.maps)
    assert (a.maps >= full.maps - 1e-5).all(), "a subset can only be farther away"
