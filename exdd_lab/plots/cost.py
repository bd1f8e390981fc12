"""Figures of how costs grow with the training set (notebook 02, benchmarks/cost_growth.py): plotting only."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import FuncFormatter, NullFormatter

_PLAIN = FuncFormatter(lambda value, _: f"{value:,.0f}" if value >= 1 else f"{value:g}")


def _log_axes(ax: plt.Axes) -> None:
    """Both axes logarithmic, with plain numbers (1,000 rather than 10^3) on the major ticks."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(_PLAIN)
        axis.set_minor_formatter(NullFormatter())
    ax.grid(True, which="both", alpha=0.3)


def plot_cost_growth(rows: list[dict] | pd.DataFrame, config: str = "default") -> plt.Figure:
    """Fit seconds, predict milliseconds per image and fit peak memory against the number of training images,
    one line per data set, both axes logarithmic (a straight line of slope 1 is linear growth)."""
    table = pd.DataFrame(rows)
    table = table[table["config"] == config].sort_values("n")
    fig, (ax_time, ax_mem) = plt.subplots(1, 2, figsize=(10, 3.6))
    for (dataset, part), colour in zip(table.groupby("dataset"), plt.rcParams["axes.prop_cycle"].by_key()["color"]):
        ax_time.plot(part["n"], part["fit_s"], "o-", color=colour, label=f"{dataset}: fit (s)")
        ax_time.plot(part["n"], part["predict_ms_per_image"], "s--", color=colour, label=f"{dataset}: predict (ms / image)")
        ax_mem.plot(part["n"], part["fit_peak_rss_mb"], "o-", color=colour, label=f"{dataset}: fit peak RSS")
    for ax, title in ((ax_time, "time"), (ax_mem, "peak memory (MB)")):
        _log_axes(ax)
        ax.set_xlabel("training images (N)")
        ax.set_title(title)
        ax.legend(fontsize=7)
    low, high = table["fit_peak_rss_mb"].min(), table["fit_peak_rss_mb"].max()
    ax_mem.set_ylim(low / 2, high * 2)  # a flat line looks flat: one factor of 2 either side
    fig.tight_layout()
    return fig


def plot_search_cost(table: pd.DataFrame) -> plt.Figure:
    """Search milliseconds per image against bank size, one line per index (from :func:`~exdd_lab.bank.search_cost.search_cost`),
    with the backbone's forward pass as a horizontal line when the table carries it."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for index, part in table.groupby("index", sort=False):
        ax.plot(part["bank_size"], part["search_ms_per_image"], "o-", label=f"{index} (recall@1 {part['recall_at_1'].min():.2f}+)")
    if "forward_ms_per_image" in table:
        ax.axhline(float(table["forward_ms_per_image"].iloc[0]), color="0.4", ls=":", label="backbone forward")
    _log_axes(ax)
    ax.set_xlabel("bank size (items)")
    ax.set_ylabel("search ms per image")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
