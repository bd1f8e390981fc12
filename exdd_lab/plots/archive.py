"""Figures for notebook 08 (scoring an archive): plotting only, from the archive's table."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def plot_archive_scores(table: pd.DataFrame, threshold: float | None, truth: pd.Series | None = None):
    """Histogram of the archive's image scores with the decision threshold; with ``truth`` (labels by row,
    only known for a demo archive) normal and defect images are drawn apart."""
    scored = table[table["status"] == "scored"]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    bins = np.histogram_bin_edges(scored["score"], bins=30)
    if truth is None:
        ax.hist(scored["score"], bins=bins, color="0.5", label=f"{len(scored)} images")
    else:
        labels = truth.loc[scored.index]
        for value, name, colour in ((0, "normal", "tab:blue"), (1, "defect", "tab:red")):
            ax.hist(scored["score"][labels == value], bins=bins, alpha=0.6, color=colour,
                    label=f"{name} ({int((labels == value).sum())})")
    if threshold is not None:
        flagged = int((scored["score"] >= threshold).sum())
        ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3g}: {flagged} flagged")
    ax.set_xlabel("image score")
    ax.set_ylabel("images")
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig


def show_top_scored(images: np.ndarray, maps: np.ndarray, titles: list[str]):
    """Each image above its anomaly map, the maps on one colour scale (so brighter means more anomalous)."""
    k = len(images)
    fig, axes = plt.subplots(2, k, figsize=(2.4 * k, 5), squeeze=False)
    vmax = float(np.max(maps)) if len(maps) else 1.0
    for j in range(k):
        axes[0, j].imshow(images[j])
        axes[0, j].set_title(titles[j], fontsize=8)
        axes[1, j].imshow(images[j])
        axes[1, j].imshow(maps[j], cmap="inferno", alpha=0.6, vmin=float(np.min(maps)), vmax=vmax)
        for ax in axes[:, j]:
            ax.axis("off")
    fig.tight_layout()
    return fig
