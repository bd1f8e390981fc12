"""Metric arithmetic, checked against independent brute-force computations on hand-made cases."""
import numpy as np
import pytest
from scipy import ndimage as ndi

from exdd_lab.evaluation.metrics import aupro, auroc, evaluate, f1_max, normal_only_threshold, per_type_table


def brute_aupro(masks, maps, limit=0.3):
    """Threshold by threshold, straight from the definition (slow, obviously right)."""
    masks, maps = np.asarray(masks, bool), np.asarray(maps, float)
    regions = []
    for m, s in zip(masks, maps):
        lab, n = ndi.label(m, structure=np.ones((3, 3)))
        regions += [s[lab == r] for r in range(1, n + 1)]
    normal = maps[~masks]
    points = [(0.0, 0.0)]
    for t in np.unique(maps)[::-1]:
        points.append(((normal >= t).mean(), np.mean([(r >= t).mean() for r in regions])))
    xs, ys = map(np.array, zip(*points))
    grid_x = np.r_[xs[xs <= limit], limit]
    grid_y = np.interp(grid_x, xs, ys)
    return np.trapezoid(grid_y, grid_x) / limit


def random_case(seed, n=3, size=12):
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, size, size), bool)
    for i in range(n):
        for _ in range(rng.integers(0, 3)):
            y, x = rng.integers(0, size - 3, 2)
            masks[i, y : y + rng.integers(1, 4), x : x + rng.integers(1, 4)] = True
    maps = rng.random((n, size, size)) + masks * rng.uniform(0, 1)
    maps = np.round(maps, 1)  # many ties on purpose
    return masks, maps


@pytest.mark.parametrize("seed", range(8))
def test_aupro_matches_brute_force(seed):
    masks, maps = random_case(seed)
    if not masks.any():
        masks[0, 0, 0] = True
    assert aupro(masks, maps) == pytest.approx(brute_aupro(masks, maps), abs=1e-9)
    assert aupro(masks, maps, 1.0) == pytest.approx(brute_aupro(masks, maps, 1.0), abs=1e-9)


def test_aupro_extremes_and_edge_cases():
    masks = np.zeros((2, 8, 8), bool)
    masks[0, 2:4, 2:4] = True
    masks[1, 5:7, 1:3] = True
    perfect = masks.astype(float)
    assert aupro(masks, perfect) == pytest.approx(1.0)
    assert aupro(masks, 1.0 - perfect) == pytest.approx(0.0), "every defect pixel below every normal pixel"
    # constant scores: one tie from (0, 0) to (1, 1), i.e. PRO = FPR, area 0.3 * 0.3 / 2 over 0.3
    assert aupro(masks, np.zeros_like(perfect)) == pytest.approx(0.15)
    assert np.isnan(aupro(np.zeros((2, 8, 8), bool), perfect)), "no defects in the test set: undefined"
    one = np.zeros((1, 6, 6), bool)
    one[0, 1:3, 1:3] = True
    assert aupro(one, one.astype(float)) == pytest.approx(1.0)


def test_touching_regions_are_one_region_and_regions_weigh_equally():
    masks = np.zeros((1, 10, 10), bool)
    masks[0, 0:2, 0:2] = True
    masks[0, 2:4, 2:4] = True  # touches diagonally: 8-connected, one region
    masks[0, 7:10, 7:10] = True  # a separate, larger region
    maps = np.zeros((1, 10, 10))
    maps[0, 7:10, 7:10] = 1.0  # only the big region found
    assert aupro(masks, maps) == pytest.approx(brute_aupro(masks, maps))
    # found: 1 of 2 regions at FPR 0, so PRO = 0.5 until the all-tie step
    assert 0.5 <= aupro(masks, maps) <= 1.0


@pytest.mark.parametrize("seed", range(5))
def test_aupro_stays_in_unit_interval(seed):
    masks, maps = random_case(seed + 100, n=4, size=16)
    masks[0, 0, 0] = True
    for transform in (lambda m: m, lambda m: -m, lambda m: np.zeros_like(m)):
        assert 0.0 <= aupro(masks, transform(maps)) <= 1.0


def test_auroc_f1_and_thresholds():
    labels = np.array([0, 0, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.6, 0.5, 0.9])
    assert auroc(labels, scores) == pytest.approx(5 / 6)
    f1, thr = f1_max(labels, scores)
    assert f1 == pytest.approx(0.8) and thr == pytest.approx(0.5)  # predict >= 0.5: TP 2, FP 1, FN 0
    assert np.isnan(auroc(np.zeros(3), np.arange(3)))
    assert normal_only_threshold(np.arange(101), 0.99) == pytest.approx(99.0)
    with pytest.raises(ValueError):
        normal_only_threshold([])


def test_evaluate_and_per_type_breakdown():
    labels = np.array([0, 0, 1, 1])
    types = np.array(["good", "good", "crack", "pit"])
    masks = np.zeros((4, 4, 4), bool)
    masks[2, :2, :2] = masks[3, 2:, 2:] = True
    maps = masks.astype(float)
    maps[3] = 0.0  # the pit is missed
    ev = evaluate(labels, maps.max(axis=(1, 2)), masks, maps)
    assert ev.image_auroc == pytest.approx(0.75) and ev.pixel_auroc < 1.0
    table = per_type_table(labels, maps.max(axis=(1, 2)), types, masks, maps)
    assert table.set_index("defect_type")["image_auroc"].to_dict() == {"crack": 1.0, "pit": 0.5}
    with pytest.raises(ValueError, match="same shape"):
        evaluate(labels, np.zeros(4), masks, maps[:, :2])


@pytest.mark.parametrize("seed", range(4))
def test_fast_auroc_and_ap_equal_scikit_learn(seed):
    from sklearn.metrics import average_precision_score, roc_auc_score

    from exdd_lab.evaluation.metrics import average_precision

    rng = np.random.default_rng(seed)
    labels = rng.random(500) < 0.3
    scores = np.round(rng.random(500) + labels * 0.3, 1)  # heavy ties
    assert auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert average_precision(labels, scores) == pytest.approx(average_precision_score(labels, scores), abs=1e-12)


def test_hardest_cases_rank_false_alarms_and_misses():
    from exdd_lab.evaluation.failures import hardest_cases

    labels = np.array([0, 0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.9, 0.5, 0.2, 0.8, 0.05])
    false_alarms, misses = hardest_cases(labels, scores, k=2)
    assert false_alarms.tolist() == [1, 2] and misses.tolist() == [5, 3]
