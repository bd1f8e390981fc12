"""Intervals and paired tests: weighted metrics equal metrics on duplicated data, the bootstrap covers a
known AUROC at its nominal rate, the cluster bootstrap is wider than a pixel bootstrap on correlated maps,
DeLong equals its brute-force definition and agrees with a paired bootstrap."""
import numpy as np
import pytest
from scipy import stats

from exdd_lab.evaluation import metrics as M
from exdd_lab.errors import SettingsError
from exdd_lab.evaluation.paired_tests import bootstrap_p_value, delong_test, holm, paired_comparisons, placement_values
from exdd_lab.evaluation.uncertainty import (BootstrapSettings, EvaluationSample, ImageHistograms, ImageScores,
                                             bootstrap_intervals, format_interval, weights_from_indices)


def split(n1, n0, auroc, seed, ties=False):
    """Defect scores N(d, 1), normal N(0, 1) with d chosen so the true AUROC is ``auroc``."""
    rng = np.random.default_rng(seed)
    d = np.sqrt(2) * stats.norm.ppf(auroc)
    scores = np.r_[rng.normal(d, 1, n1), rng.normal(0, 1, n0)]
    return np.r_[np.ones(n1, bool), np.zeros(n0, bool)], np.round(scores, 1) if ties else scores


def maps_split(n=40, size=24, seed=0, image_offset=1.0, levels=None):
    """Maps with a defect square on half the images; each image shifted by its own offset (correlated pixels)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2 == 0
    masks = np.zeros((n, size, size), bool)
    maps = rng.normal(size=(n, size, size)) + image_offset * rng.normal(size=(n, 1, 1))
    for i in np.flatnonzero(labels):
        r, c = rng.integers(0, size - 8, 2)
        masks[i, r:r + 6, c:c + 8] = True
        maps[i][masks[i]] += 1.5
    if levels:
        maps = np.round(np.clip(maps, -1.5, 2.5) * levels) / levels  # every level common enough for its own bin
    return labels, masks, maps.astype(np.float32)


def histograms(masks, maps, bins=4096):
    h = ImageHistograms(ImageHistograms.edges_for(maps, bins), len(maps))
    for i in range(len(maps)):
        h.add(i, masks[i], maps[i])
    return h


def test_weighted_image_metrics_equal_the_metrics_of_the_duplicated_split():
    labels, scores = split(30, 45, 0.8, seed=1, ties=True)
    weights = np.random.default_rng(2).integers(0, 4, size=(3, len(labels))).astype(float)
    got = ImageScores(labels, scores).metrics(weights)
    for r, w in enumerate(weights.astype(int)):
        y, s = np.repeat(labels, w), np.repeat(scores, w)
        assert got[0, r] == pytest.approx(M.auroc(y, s), abs=1e-12)
        assert got[1, r] == pytest.approx(M.average_precision(y, s), abs=1e-12)
        assert got[2, r] == pytest.approx(M.f1_max(y, s)[0], abs=1e-12)


def test_weighted_pixel_metrics_equal_the_metrics_of_the_duplicated_split():
    labels, masks, maps = maps_split(levels=4)  # few distinct scores: the bins separate every one
    h = histograms(masks, maps)
    weights = np.random.default_rng(3).integers(0, 3, size=(2, len(maps))).astype(float)
    got = h.metrics(weights)
    for r, w in enumerate(weights.astype(int)):
        expected = M.pixel_metrics(np.repeat(masks, w, axis=0), np.repeat(maps, w, axis=0))
        np.testing.assert_allclose(got[:, r], expected, atol=1e-9)


def test_resampled_indices_become_per_image_counts():
    w = weights_from_indices(5, np.array([[0, 0, 3], [1, 2, 2]]), np.array([[4, 4], [0, 4]]))
    np.testing.assert_array_equal(w, [[2, 0, 0, 1, 2], [1, 1, 2, 0, 1]])


@pytest.mark.parametrize("n1, n0", [(20, 30), (50, 50)])
def test_the_95_percent_interval_covers_a_known_auroc_in_92_to_98_percent_of_splits(n1, n0):
    covered = 0
    for k in range(1000):
        labels, scores = split(n1, n0, 0.8, seed=[7, k])
        low, high = bootstrap_intervals(EvaluationSample(labels, scores), BootstrapSettings(seed=k))["image_auroc"]
        covered += low <= 0.8 <= high
    assert 920 <= covered <= 980, f"coverage {covered / 10:.1f} %"


def test_a_split_without_two_images_of_each_class_has_no_interval():
    labels, scores = split(1, 20, 0.8, seed=0)
    assert bootstrap_intervals(EvaluationSample(labels, scores))["image_auroc"] is None


def test_intervals_are_reproducible_by_seed_and_narrow_with_more_images():
    small = bootstrap_intervals(EvaluationSample(*split(30, 30, 0.8, seed=0)), BootstrapSettings(seed=5))
    again = bootstrap_intervals(EvaluationSample(*split(30, 30, 0.8, seed=0)), BootstrapSettings(seed=5))
    large = bootstrap_intervals(EvaluationSample(*split(300, 300, 0.8, seed=0)), BootstrapSettings(seed=5))
    assert small == again
    width = lambda iv: iv["image_auroc"][1] - iv["image_auroc"][0]  # noqa: E731
    assert width(large) < 0.5 * width(small)


def cluster_and_pixel_widths(image_offset):
    """Widths of the pixel-AUROC interval: cluster bootstrap (whole images) and pixel bootstrap."""
    labels, masks, maps = maps_split(n=40, image_offset=image_offset)
    h = histograms(masks, maps)
    point = M.pixel_metrics(masks, maps)
    cluster = bootstrap_intervals(EvaluationSample(labels, np.zeros(len(labels)), h), BootstrapSettings(resamples=400),
                                  point._asdict())["pixel_auroc"]
    assert cluster[0] <= point.pixel_auroc <= cluster[1]
    # the pixel bootstrap (what the cluster bootstrap avoids): every pixel resampled on its own, per class
    normal, defect = h.normal.sum(0), h.defect.sum(0)
    rng = np.random.default_rng(0)
    draws = [M.pixel_metrics_from_counts(rng.multinomial(int(normal.sum()), normal / normal.sum()),
                                         rng.multinomial(int(defect.sum()), defect / defect.sum()),
                                         np.zeros_like(normal), 1)[0] for _ in range(400)]
    pixel = np.quantile(draws, [0.025, 0.975])
    return cluster[1] - cluster[0], pixel[1] - pixel[0]


def test_cluster_bootstrap_is_wider_than_a_pixel_bootstrap_on_correlated_maps():
    cluster, pixel = cluster_and_pixel_widths(image_offset=1.0)  # each image shifted as a whole
    assert cluster > 2 * pixel
    cluster, pixel = cluster_and_pixel_widths(image_offset=0.0)  # independent pixels: the two agree
    assert 0.7 * pixel < cluster < 1.4 * pixel


def test_pixel_intervals_are_centred_on_the_fine_point_estimate():
    labels, masks, maps = maps_split(n=40, image_offset=0.3)
    point = M.pixel_metrics(masks, maps)
    iv = bootstrap_intervals(EvaluationSample(labels, np.zeros(len(labels)), histograms(masks, maps, bins=64)),
                             BootstrapSettings(resamples=300), point._asdict())
    for name in ("pixel_auroc", "aupro"):
        assert iv[name][0] < getattr(point, name) < iv[name][1]


def test_bad_bootstrap_settings_are_refused_with_the_fix():
    with pytest.raises(SettingsError, match="percentile"):
        BootstrapSettings(method="normal")
    with pytest.raises(SettingsError, match="resamples >= 0"):
        BootstrapSettings(resamples=-1)


def test_format_interval():
    assert format_interval(0.94, [0.9212, 0.957]) == "0.940 [0.921, 0.957]"
    assert format_interval(0.94, None) == "0.940"
    assert format_interval(None, None) == "n/a"


# ---------------------------------------------------------------------------------------------- DeLong
def brute_force_delong(labels, a, b):
    """DeLong et al. (1988) from the definition: psi over every (defect, normal) pair, no ranks."""
    def components(s):
        pos, neg = s[labels], s[~labels]
        psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        return psi.mean(1), psi.mean(0)

    (a10, a01), (b10, b01) = components(a), components(b)
    m, n = len(a10), len(a01)
    s10, s01 = np.cov(np.vstack([a10, b10])), np.cov(np.vstack([a01, b01]))
    c = np.array([1.0, -1.0])
    var = c @ (s10 / m + s01 / n) @ c
    diff = a10.mean() - b10.mean()
    return diff, np.sqrt(var), 2 * stats.norm.sf(abs(diff) / np.sqrt(var))


def correlated_methods(seed, n1=60, n0=90, gap=0.3):
    rng = np.random.default_rng(seed)
    labels = np.r_[np.ones(n1, bool), np.zeros(n0, bool)]
    shared = rng.normal(size=n1 + n0) + 1.2 * labels  # the image's difficulty, seen by both methods
    a = shared + 0.5 * rng.normal(size=n1 + n0) + gap * labels
    b = shared + 0.5 * rng.normal(size=n1 + n0)
    return labels, np.round(a, 1), np.round(b, 1)


def test_delong_equals_its_brute_force_definition():
    labels, a, b = correlated_methods(0)
    got = delong_test(labels, a, b)
    diff, se, p = brute_force_delong(labels, a, b)
    assert got["difference"] == pytest.approx(diff, abs=1e-12)
    assert got["se"] == pytest.approx(se, rel=1e-10)
    assert got["p_value"] == pytest.approx(p, rel=1e-8)
    v10, v01 = placement_values(labels, a)
    assert v10.mean() == pytest.approx(M.auroc(labels, a)) == pytest.approx(v01.mean())


def test_delong_agrees_with_a_paired_bootstrap_on_the_same_data():
    labels, a, b = correlated_methods(1)
    d = delong_test(labels, a, b)
    table = paired_comparisons({"a": EvaluationSample(labels, a), "b": EvaluationSample(labels, b)},
                               BootstrapSettings(resamples=2000))
    from exdd_lab.evaluation.uncertainty import bootstrap_distribution

    def diff(weights):
        return ImageScores(labels, a).metrics(weights)[:1] - ImageScores(labels, b).metrics(weights)[:1]

    boot = bootstrap_distribution(diff, labels, BootstrapSettings(resamples=2000)).bootstrap_distribution[0]
    assert np.std(boot) == pytest.approx(d["se"], rel=0.15)
    assert (bootstrap_p_value(boot) < 0.05) == (d["p_value"] < 0.05)
    row = table[table.metric == "image_auroc"].iloc[0]
    assert row.test == "DeLong" and row.p_value == pytest.approx(d["p_value"])


def test_delong_finds_a_real_difference_and_not_a_null_one():
    labels, a, b = correlated_methods(2, gap=0.6)
    assert delong_test(labels, a, b)["p_value"] < 0.01
    labels, a, b = correlated_methods(3, gap=0.0)
    assert delong_test(labels, a, a)["p_value"] == 1.0
    null_rejections = sum(delong_test(*correlated_methods([4, k], gap=0.0))["p_value"] < 0.05 for k in range(200))
    assert null_rejections <= 20  # about 10 expected at the 5 % level


def test_holm_adjusts_step_down():
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.5]), [0.5])


def test_paired_table_marks_significance_with_holm_for_three_methods():
    labels, a, b = correlated_methods(5, gap=0.8)
    c = b + 0.01 * np.random.default_rng(0).normal(size=len(b))
    samples = {n: EvaluationSample(labels, s) for n, s in (("a", a), ("b", b), ("c", c))}
    point = {n: {"image_auroc": M.auroc(labels, s.scores), "image_ap": M.average_precision(labels, s.scores)}
             for n, s in samples.items()}
    table = paired_comparisons(samples, BootstrapSettings(resamples=500), point)
    assert set(table.correction) == {"Holm"} and len(table) == 3 * 3
    auroc = table[table.metric == "image_auroc"].set_index(["method_a", "method_b"])
    assert auroc.loc[("a", "b"), "significant"] and not auroc.loc[("b", "c"), "significant"]
    assert (auroc.p_adjusted >= auroc.p_value).all()
    ap = table[table.metric == "image_ap"].set_index(["method_a", "method_b"])
    assert ap.loc[("a", "b"), "ci_low"] < ap.loc[("a", "b"), "difference"] < ap.loc[("a", "b"), "ci_high"]


def test_paired_table_of_scoring_variants_on_a_split(tiny_mvtec):
    """What notebooks 04 and 05 run: variants' patch grids as predictions, tested pairwise on one split."""
    from exdd_lab.data import load_dataset
    from exdd_lab.evaluation.run import evaluate_prediction, paired_table, variant_predictions
    from exdd_lab.features import FeatureConfig
    from exdd_lab.methods import PatchCore, PatchCoreSettings

    tiny = load_dataset(tiny_mvtec, "mvtec")
    grid = PatchCore(FeatureConfig(image_size=64), PatchCoreSettings(coreset_ratio=0.5)).fit(tiny.train).predict(tiny.test).patch_scores
    noise = np.random.default_rng(0).normal(scale=grid.std(), size=grid.shape).astype(np.float32)
    predictions = variant_predictions({"patchcore": grid, "noisy": grid + noise}, 64)
    table = paired_table(tiny, predictions, BootstrapSettings(resamples=200))
    labels = np.array([s.label for s in tiny.test]).astype(bool)
    row = table[table.metric == "image_auroc"].iloc[0]
    expected = delong_test(labels, predictions["patchcore"].scores, predictions["noisy"].scores)
    assert (row.method_a, row.method_b) == ("patchcore", "noisy") and row.p_value == pytest.approx(expected["p_value"])
    pixel = table[table.metric == "pixel_auroc"].iloc[0]
    a, _ = evaluate_prediction(tiny, predictions["patchcore"], 64)
    b, _ = evaluate_prediction(tiny, predictions["noisy"], 64)
    assert pixel.difference == pytest.approx(a["pixel_auroc"] - b["pixel_auroc"]) and pixel.test == "paired bootstrap"
    assert pixel.ci_low <= pixel.difference <= pixel.ci_high and set(table.correction) == {"none"}
