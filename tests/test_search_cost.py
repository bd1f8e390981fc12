"""The search-cost lesson's helpers: banks drawn from real-like features, exact against approximate, the figures."""
from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from exdd_lab.plots.cost import plot_cost_growth, plot_search_cost  # noqa: E402
from exdd_lab.bank.search_cost import measured_cost_growth, sample_bank, search_cost  # noqa: E402


def clustered_pool(n=4000, dim=24, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((40, dim)) * 4
    return (centres[rng.integers(40, size=n)] + rng.standard_normal((n, dim))).astype(np.float32)


def test_search_cost_rows_per_size_and_index_with_exact_recall_one():
    pool = clustered_pool()
    table = search_cost(pool, [500, 6000], indexes=("flat", "ivf"), patches_per_image=256, images=2, seed=1, forward_ms=25.0)
    assert list(table["bank_size"]) == [500, 500, 6000, 6000] and list(table["index"]) == ["flat", "ivf"] * 2
    flat, ivf = table[table["index"] == "flat"], table[table["index"] == "ivf"]
    assert (flat["recall_at_1"] == 1.0).all()  # the exact search is its own reference
    assert ((ivf["recall_at_1"] > 0.6) & (ivf["recall_at_1"] <= 1.0)).all()
    assert (table["search_ms_per_image"] > 0).all() and (table["forward_ms_per_image"] == 25.0).all()
    fig = plot_search_cost(table)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log" and "bank size" in ax.get_xlabel()
    assert any("backbone forward" in t.get_text() for t in ax.get_legend().get_texts())
    plt.close("all")


def test_a_bank_larger_than_its_pool_holds_no_duplicates():
    pool = clustered_pool(300, 8)
    bank = sample_bank(pool, 1200, np.random.default_rng(0))
    assert bank.shape == (1200, 8) and len(np.unique(bank, axis=0)) == 1200


def test_measured_cost_growth_reads_the_benchmark_summary_or_says_none(tmp_path):
    assert measured_cost_growth(tmp_path / "absent.json") is None
    rows = [{"dataset": "mtd", "config": "default", "n": n, "fit_s": n / 10, "predict_ms_per_image": 30.0 + n / 1000,
             "fit_peak_rss_mb": 1000 + n / 100} for n in (250, 1000, 4000)]
    (tmp_path / "cost.json").write_text(json.dumps({"rows": rows + [dict(rows[0], config="exact")], "slopes": {}}))
    table = measured_cost_growth(tmp_path / "cost.json")
    assert len(table) == 4
    fig = plot_cost_growth(table)
    time_ax, mem_ax = fig.axes
    assert time_ax.get_xscale() == "log" and mem_ax.get_yscale() == "log"
    assert len(time_ax.get_lines()) == 2 and list(time_ax.get_lines()[0].get_xdata()) == [250, 1000, 4000]
    plt.close("all")
