"""Ratio and neighbourhood-reweighting arithmetic on hand-made banks, with exact expected values."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from exdd_lab.bank.memory import MemoryBank
from exdd_lab.methods.exdd.detector import variant_grid
from exdd_lab.methods.exdd.ratio import (
    NormalStatistics, bank_support, exdd_image_score, gated_scores, neighbourhood_weights, normal_statistics, ratio_scores,
)


def test_ratio_values_and_guards():
    r = ratio_scores(np.array([2.0, 3.0, 0.0]), np.array([1.0, 0.0, 5.0]), eps=0.5)
    assert r == pytest.approx([2.0 / 1.5, 3.0 / 0.5, 0.0])
    assert np.isfinite(ratio_scores(np.array([7.0]), np.array([0.0]), eps=1e-3)).all()  # never infinite
    with pytest.raises(ValueError, match="eps must be positive"):
        ratio_scores(np.ones(2), np.ones(2), eps=0.0)
    with pytest.raises(ValueError, match="non-negative"):
        ratio_scores(np.array([-1.0]), np.array([1.0]))
    with pytest.raises(ValueError, match="non-negative"):
        ratio_scores(np.array([np.nan]), np.array([1.0]))
    with pytest.raises(ValueError, match="differ in shape"):
        ratio_scores(np.ones(2), np.ones(3))


def _bank(points):
    return MemoryBank(2).add(torch.tensor(points, dtype=torch.float32))


def test_support_lists_each_item_first_then_its_neighbours():
    bank = _bank([[0, 0], [1, 0], [10, 0]])
    support = bank_support(bank.items, 2, bank.search)
    assert support.tolist() == [[0, 1], [1, 0], [2, 1]]
    dup = _bank([[0, 0], [0, 0], [5, 0]])  # ties: the item itself must still come first
    assert bank_support(dup.items, 2, dup.search)[:, 0].tolist() == [0, 1, 2]
    assert bank_support(bank.items, 9, bank.search).shape == (3, 3)  # k capped at the bank size


def test_neighbourhood_weight_matches_eq7_by_hand():
    bank = _bank([[0, 0], [1, 0], [10, 0]])
    support = bank_support(bank.items, 2, bank.search)
    q = torch.tensor([[0.0, 0.5], [10.0, 1.0]])
    w = neighbourhood_weights(q, bank.items, np.array([0, 2]), support, temperature=2.0)
    d0 = [0.5, math.hypot(1, 0.5)]  # query 0 -> item 0 (nearest) and its neighbour item 1
    d1 = [1.0, math.hypot(9, 1)]  # query 1 -> item 2 (nearest) and its neighbour item 1
    expect = [1 - math.exp(a[0] / 2) / (math.exp(a[0] / 2) + math.exp(a[1] / 2)) for a in (d0, d1)]
    assert w == pytest.approx(expect)
    # an isolated nearest item (item 2: its neighbour is far) weighs more than one in a dense pair
    assert w[1] > w[0]


def test_one_item_bank_has_no_neighbourhood():
    bank = _bank([[3, 4]])
    support = bank_support(bank.items, 9, bank.search)
    assert support.shape == (1, 1)
    assert neighbourhood_weights(torch.zeros(4, 2), bank.items, np.zeros(4, int), support, 1.0).tolist() == [1, 1, 1, 1]


def test_exdd_image_score_by_hand():
    d_neg = np.array([[1.0, 4.0, 2.0]])
    d_pos = np.array([[3.0, 2.0, 0.5]])
    w_neg = np.array([[0.5, 0.8, 0.9]])
    w_pos = np.array([[0.1, 0.2, 0.6]])
    # s_neg at argmax d_neg (patch 1): 0.8 * 4; s_pos at argmin d_pos (patch 2): 0.6 * 0.5
    assert exdd_image_score(d_neg, d_pos, w_neg, w_pos, eps=0.1) == pytest.approx([3.2 / (0.3 + 0.1)])


def test_variant_grids():
    extra = {"d_neg": np.array([[[4.0]]]), "d_pos": np.array([[[1.0]]]), "w_neg": np.array([[[0.5]]]),
             "w_pos": np.array([[[0.25]]])}
    assert variant_grid(extra, "negative").item() == 4.0
    assert variant_grid(extra, "positive").item() == -1.0
    assert variant_grid(extra, "ratio", eps=1.0).item() == pytest.approx(2.0)
    assert variant_grid(extra, "ratio_na", eps=0.75).item() == pytest.approx(2.0 / 1.0)
    stats = NormalStatistics(worst_patch=3.0, defect_distance=2.0)
    assert variant_grid(extra, "gated", stats=stats).item() == pytest.approx(4.0 * 1.5)
    with pytest.raises(ValueError, match="normal_stats"):
        variant_grid(extra, "gated")
    with pytest.raises(ValueError, match="unknown ExDD score .nope."):
        variant_grid(extra, "nope")


def test_normal_statistics_by_hand():
    d_neg = np.array([[[1.0, 5.0]], [[2.0, 3.0]], [[9.0, 0.0]]])  # each image's worst patch: 5, 3, 9 -> median 5
    d_pos = np.arange(6, dtype=float).reshape(3, 1, 2)  # 0..5
    stats = normal_statistics(d_neg, d_pos, quantile=0.2)
    assert stats.worst_patch == 5.0
    assert stats.defect_distance == pytest.approx(np.quantile(np.arange(6.0), 0.2))
    with pytest.raises(ValueError, match="quantile"):
        normal_statistics(d_neg, d_pos, quantile=1.0)
    with pytest.raises(ValueError, match="same shape"):
        normal_statistics(d_neg, d_pos[:2])


def test_gated_score_only_raises_unusual_defect_like_patches_and_is_bounded():
    stats = NormalStatistics(worst_patch=2.0, defect_distance=4.0)
    d_neg = np.array([1.0, 1.0, 3.0, 3.0, 3.0, 3.0])
    d_pos = np.array([0.0, 9.0, 0.0, 1.0, 4.0, 9.0])
    s = gated_scores(d_neg, d_pos, stats, strength=1.0)
    # below the gate: PatchCore's d_neg whatever d_pos says (a normal-looking defect patch cannot raise it)
    assert s[:2].tolist() == [1.0, 1.0]
    # above the gate: raised by closeness 1 - d_pos / 4, clipped to [0, 1]
    assert s[2:].tolist() == pytest.approx([6.0, 3.0 * 1.75, 3.0, 3.0])
    rng = np.random.default_rng(0)
    dn, dp = rng.uniform(0, 5, 1000), rng.uniform(0, 5, 1000)
    g = gated_scores(dn, dp, stats, strength=0.5)
    assert (g >= dn).all() and (g <= 1.5 * dn + 1e-12).all()  # never below PatchCore, never above (1 + strength)
    assert np.array_equal(gated_scores(dn, dp, stats, strength=0.0), dn)
    with pytest.raises(ValueError, match="strength"):
        gated_scores(dn, dp, stats, strength=-1)
