"""The tidy results table, the failure ranking and the browser, on a hand-made case whose answers
are worked out by hand.

The case (fixture ``case`` in conftest.py): eight 32-px images, four normal (ids 0-3) and four
defects (ids 4-7) with a square mask each. Method A scores ``[.1, .2, .3, .9 | .8, .85, .95, .05]``:
its best F1 (0.75) is at threshold 0.8, where image 3 is its only false alarm and image 7 its only
miss. Method B scores ``[.1, .2, .3, .4 | .6, .7, .8, .9]`` and separates perfectly (threshold 0.6).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from exdd_lab.evaluation.failures import disagreements, error_sets, failure_ranking, ranked_cases
from exdd_lab.errors import ExddError
from exdd_lab.methods.base import Prediction
from exdd_lab.evaluation.results import build_results, image_pixel_metrics, method_summary, outcomes, per_type_summary

from conftest import LABELS, SCORES_A, SCORES_B  # the hand-made case (fixture `case`)


def test_outcomes_from_labels_and_decisions():
    assert list(outcomes([1, 1, 0, 0], [1, 0, 1, 0])) == ["TP", "FN", "FP", "TN"]


def test_table_has_one_row_per_image_and_method(case):
    samples, predictions = case
    results = build_results(samples, predictions)
    table = results.table
    assert len(table) == 16
    assert table.groupby("method").size().to_dict() == {"A": 8, "B": 8}
    assert set(table["image_id"]) == set(range(8))
    a = results.rows("A")
    assert list(a["label"]) == list(LABELS)
    assert list(a["defect_type"]) == ["good"] * 4 + ["scratch", "scratch", "dent", "dent"]
    assert a["threshold_f1"].iloc[0] == pytest.approx(0.8)
    assert results.rows("B")["threshold_f1"].iloc[0] == pytest.approx(0.6)
    assert list(a["outcome_f1"]) == ["TN", "TN", "TN", "FP", "TP", "TP", "TP", "FN"]
    assert list(results.rows("B")["outcome_f1"]) == ["TN"] * 4 + ["TP"] * 4
    assert table["outcome_normal_only"].isna().all()  # no held-out normals given
    assert a["score_rank"].tolist() == pytest.approx([2 / 8, 3 / 8, 4 / 8, 7 / 8, 5 / 8, 6 / 8, 1.0, 1 / 8])
    assert list(a["has_mask"]) == [False] * 4 + [True] * 4


def test_fn_fp_sets_at_both_thresholds(case):
    samples, predictions = case
    normals = {"A": np.array([0.1, 0.2, 0.3, 0.4, 0.5]), "B": np.array([0.1, 0.2, 0.3, 0.4, 0.5])}
    results = build_results(samples, predictions, normal_scores=normals, normal_quantile=0.5)
    assert results.rows("A")["threshold_normal_only"].iloc[0] == pytest.approx(0.3)
    assert error_sets(results.table, "f1") == {"A": {"FN": {7}, "FP": {3}}, "B": {"FN": set(), "FP": set()}}
    # at the normal-only threshold 0.3, images 2 (0.3) and 3 (A 0.9, B 0.4) are false alarms of both
    assert error_sets(results.table, "normal_only") == {"A": {"FN": {7}, "FP": {2, 3}}, "B": {"FN": set(), "FP": {2, 3}}}
    summary = method_summary(results.table)
    assert summary.loc["A", ["TP_f1", "FP_f1", "TN_f1", "FN_f1"]].tolist() == [3, 1, 3, 1]
    assert summary.loc["A", "recall_normal_only"] == pytest.approx(0.75)
    assert summary.loc["A", "false_alarm_rate_normal_only"] == pytest.approx(0.5)
    assert summary.loc["B", "image_auroc"] == pytest.approx(1.0)


def test_thresholds_can_be_fixed_from_elsewhere(case):
    samples, predictions = case
    results = build_results(samples, predictions, thresholds={"A": {"f1": 0.5, "normal_only": 0.99}})
    a = results.rows("A")
    assert a["threshold_f1"].iloc[0] == 0.5
    assert list(a["decision_f1"]) == [0, 0, 0, 1, 1, 1, 1, 0]
    assert list(a["decision_normal_only"]) == [0] * 8
    assert results.rows("B")["outcome_normal_only"].isna().all()


def test_ranking_orders_the_most_telling_cases_first(case):
    samples, predictions = case
    normals = {"A": np.array([0.1, 0.2, 0.3, 0.4, 0.5])}
    table = build_results(samples, predictions, normal_scores=normals, normal_quantile=0.5).table
    assert list(ranked_cases(table, "A", "FP", "normal_only")["image_id"]) == [3, 2]  # loudest first
    assert list(ranked_cases(table, "A", "TP")["image_id"]) == [6, 5, 4]
    assert list(ranked_cases(table, "A", "TN")["image_id"]) == [0, 1, 2]
    assert list(ranked_cases(table, "A", "TP", k=2)["image_id"]) == [6, 5]
    ranking = failure_ranking(table, k=5)
    assert set(ranking["threshold"]) == {"f1", "normal_only"}
    assert ranking[(ranking["method"] == "A") & (ranking["threshold"] == "f1") & (ranking["kind"] == "FN")]["image_id"].tolist() == [7]
    with pytest.raises(ExddError, match="no normal_only threshold"):
        ranked_cases(build_results(samples, predictions).table, "A", "FP", "normal_only")
    with pytest.raises(ExddError, match="unknown case kind"):
        ranked_cases(table, "A", "misses")
    with pytest.raises(ExddError, match="unknown method"):
        ranked_cases(table, "C", "FN")


def test_disagreements_rank_by_score_rank_spread(case):
    samples, predictions = case
    table = build_results(samples, predictions).table
    d = disagreements(table)
    assert list(d["image_id"]) == [7, 3]  # A misses 7 (rank 1/8) that B ranks top; A alarms on 3
    assert d["spread"].tolist() == pytest.approx([1.0 - 1 / 8, 7 / 8 - 4 / 8])
    assert d["n_right"].tolist() == [1, 1]
    assert d[["decision_A", "decision_B"]].values.tolist() == [[0, 1], [1, 0]]


def test_per_image_pixel_numbers(case):
    samples, predictions = case
    a = build_results(samples, predictions).rows("A").set_index("image_id")
    assert a.loc[4, "pixel_auroc"] == pytest.approx(1.0) and a.loc[4, "iou"] == pytest.approx(1.0)
    assert a.loc[7, "pixel_auroc"] == pytest.approx(0.0) and a.loc[7, "peak_in_mask"] == 0
    assert np.isnan(a.loc[0, "pixel_auroc"]) and np.isnan(a.loc[0, "iou"])
    assert a.loc[0, "flagged_fraction"] == 0
    mask = np.zeros((4, 4), bool)
    mask[:2, :2] = True
    score_map = np.zeros((4, 4))
    score_map[:2, :] = 1.0  # flags the mask (4 px) and 4 more
    row = image_pixel_metrics(mask, score_map, 0.5)
    assert row["iou"] == pytest.approx(0.5) and row["dice"] == pytest.approx(2 * 4 / (8 + 4))
    assert row["flagged_fraction"] == pytest.approx(0.5) and row["peak_in_mask"] == 1.0


def test_per_type_summary(case):
    samples, predictions = case
    per_type = per_type_summary(build_results(samples, predictions).table).set_index(["method", "defect_type"])
    assert per_type.loc[("A", "scratch"), "n_defect"] == 2
    assert per_type.loc[("A", "scratch"), "recall_f1"] == 1.0
    assert per_type.loc[("A", "dent"), "recall_f1"] == 0.5
    # dent = images 6 (0.95) and 7 (0.05) against normals .1 .2 .3 .9: 0.95 beats 4, 0.05 beats none
    assert per_type.loc[("A", "dent"), "image_auroc"] == pytest.approx(4 / 8)


def test_bad_inputs_are_named(case):
    samples, predictions = case
    with pytest.raises(ExddError, match="3 scores"):
        build_results(samples, {"A": Prediction(predictions["A"].maps[:3], SCORES_A[:3])})
    with pytest.raises(ExddError, match="no predictions"):
        build_results(samples, {})
    with pytest.raises(ExddError, match="unknown method"):
        build_results(samples, predictions).rows("Z")


def test_results_are_saved_as_csv_and_parquet(case, tmp_path):
    samples, predictions = case
    results = build_results(samples, predictions)
    paths = results.save(tmp_path / "out")
    assert [p.name for p in paths] == ["results.csv", "results.parquet", "results.maps.npz", "results.json"]
    assert [p.name for p in results.save(tmp_path / "table-only", maps=False)] == ["results.csv", "results.parquet"]
    csv, parquet = pd.read_csv(paths[0]), pd.read_parquet(paths[1])
    assert len(csv) == len(parquet) == 16
    assert list(parquet["outcome_f1"]) == list(results.table["outcome_f1"])
    assert not list((tmp_path / "out").glob(".*tmp"))


def test_disagreements_leave_out_methods_without_the_threshold(case):
    samples, predictions = case
    table = build_results(samples, predictions, normal_scores={"A": np.array([0.1, 0.2, 0.3, 0.4, 0.5])},
                          normal_quantile=0.5).table
    d = disagreements(table, "normal_only")  # only A has a normal-only threshold: nothing to disagree with
    assert d.empty and "decision_B" not in d.columns
