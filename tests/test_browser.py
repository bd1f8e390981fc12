"""The failure browser (driven through its widget callbacks), the static gallery, and the
comparison figures, on the hand-made case of conftest.py (answers in tests/test_results_analysis.py)."""
from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from exdd_lab.plots import browser as browser_module
from exdd_lab.plots.browser import FailureBrowser, browse, case_gallery
from exdd_lab.evaluation.results import build_results, per_type_summary

matplotlib.use("Agg")
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture()
def results(case):
    samples, predictions = case
    return build_results(samples, predictions, normal_scores={m: np.array([0.1, 0.2, 0.3, 0.4, 0.5]) for m in "AB"},
                         normal_quantile=0.5)


def test_browser_steps_through_the_chosen_cases(results):
    b = FailureBrowser(results)
    assert (b.method.value, b.kind.value, b.threshold.value) == ("A", "FN", "f1")
    assert b.current_image_id == 7
    assert bytes(b.picture.value).startswith(PNG)
    assert "img7" in b.details.value and "FN" in b.details.value and "dent" in b.details.value
    assert b.position.value == "FN case 1 of 1 (A)"
    assert b.previous.disabled and b.next.disabled

    b.kind.value = "FP"                      # the observer reselects
    assert b.current_image_id == 3 and "img3" in b.details.value

    b.threshold.value = "normal_only"        # A's false alarms at threshold 0.3: loudest first
    assert list(b.cases["image_id"]) == [3, 2]
    assert not b.next.disabled
    first_picture, first_details = bytes(b.picture.value), b.details.value
    b.next.click()
    assert b.current_image_id == 2 and b.position.value == "FP case 2 of 2 (A)"
    assert bytes(b.picture.value) != first_picture
    b.next.click()                           # clamped at the end
    assert b.current_image_id == 2
    b.previous.click()
    assert b.current_image_id == 3           # back: the very same picture and table, byte for byte
    assert bytes(b.picture.value) == first_picture and b.details.value == first_details


def test_browser_says_when_there_is_nothing_to_show(results):
    b = FailureBrowser(results, method="B", kind="FN")
    assert b.current_image_id is None
    assert bytes(b.picture.value) == b""
    assert "No <b>FN</b> cases for B" in b.details.value
    b.method.value = "A"
    assert b.current_image_id == 7 and bytes(b.picture.value).startswith(PNG)


def test_browser_disagreement_cases_and_tp_tn(results):
    b = FailureBrowser(results, kind="disagreement")
    assert list(b.cases["image_id"]) == [7, 3]
    assert "all methods" in b.position.value
    b.kind.value = "TP"
    assert list(b.cases["image_id"]) == [6, 5, 4]
    b.kind.value = "TN"
    assert b.current_image_id == 0


def test_threshold_choice_offers_normal_only_only_when_measured(case):
    samples, predictions = case
    b = FailureBrowser(build_results(samples, predictions))
    assert [value for _, value in b.threshold.options] == ["f1"]


def test_headless_runs_get_the_static_gallery(results, monkeypatch, capsys):
    monkeypatch.setenv(browser_module.HEADLESS_ENV, "1")
    figures = browse(results, k=2)
    # A: its FN and FP; B: none at the F1 threshold; then the disagreement figure
    assert len(figures) == 3
    assert "headless run" in capsys.readouterr().out
    titles = [f._suptitle.get_text() for f in figures]
    assert titles[0].startswith("A: top 1 FN") and titles[1].startswith("A: top 1 FP") and "disagree" in titles[2]
    assert len(case_gallery(results, threshold="normal_only", k=2)) == 4  # B has false alarms there


def test_interactive_runs_get_the_browser(results, monkeypatch):
    monkeypatch.delenv(browser_module.HEADLESS_ENV, raising=False)
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda w: shown.append(w))
    b = browse(results)
    assert isinstance(b, FailureBrowser) and shown == [b.widget]


def test_comparison_figures(results):
    from exdd_lab.plots import failures as plots_analysis

    fig = plots_analysis.plot_roc_pr(results.table)
    assert [len(ax.get_legend().get_texts()) for ax in fig.axes] == [2, 2]
    assert "AUROC 1.000" in fig.axes[0].get_legend().get_texts()[1].get_text()
    fig = plots_analysis.plot_score_distributions_by_method(results.table)
    assert [ax.get_title() for ax in fig.axes] == ["A", "B"]
    assert sum(len(ax.lines) for ax in fig.axes) == 4  # two thresholds per method
    fig = plots_analysis.plot_per_type_heatmap(per_type_summary(results.table))
    assert fig.axes[0].get_title() == "image auroc per defect type"
    fig = plots_analysis.show_case_maps(results, [7, 3])
    assert len(fig.axes) == 2 * 3 + 1  # image + two maps per row, one shared colour bar
    low, threshold = results.map_scale("A")
    assert results.scaled_map("A", 4).max() == pytest.approx((1.0 - low) / (threshold - low))
