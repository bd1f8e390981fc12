"""Figures for comparing methods case by case (notebook 06). Plotting only: the numbers come from
:mod:`exdd_lab.evaluation.results` and :mod:`exdd_lab.evaluation.failures`.

Maps of different methods live on different scales (distances, ratios, probabilities). To put them
on ONE colour scale, every map is shown in units of its own method's pixel threshold:
``(map - low) / (threshold - low)``, so 1 means "at this method's decision boundary" everywhere.
"""
from __future__ import annotations

import io
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from sklearn.metrics import precision_recall_curve, roc_curve

from exdd_lab.evaluation.metrics import auroc, average_precision
from exdd_lab.plots.figures import MASK_COLOUR, overlay_mask
from exdd_lab.evaluation.results import ResultSet

SCALE_MAX = 2.0  # colour scale of threshold-scaled maps: 0 .. twice the threshold
SCALE_LABEL = "map / pixel threshold (1 = flagged)"
THRESHOLD_STYLES = {"f1": ("--", "F1-optimal"), "normal_only": (":", "normal-only")}


def method_colours(methods: Sequence[str]) -> dict[str, tuple]:
    """One fixed colour per method, the same in every figure."""
    return dict(zip(methods, sns.color_palette("colorblind", len(methods))))


def overlay_map(ax: plt.Axes, image: np.ndarray, scaled_map: np.ndarray, mask: np.ndarray | None,
                alpha: float = 0.55) -> plt.cm.ScalarMappable:
    """A threshold-scaled map laid over its image (one colour scale: 0 .. ``SCALE_MAX``), the ground
    truth outlined in cyan. Returns the map's image artist, for a shared colour bar."""
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
    im = ax.imshow(scaled_map, cmap="inferno", vmin=0, vmax=SCALE_MAX, alpha=alpha)
    if mask is not None and mask.any():
        ax.contour(mask.astype(float), levels=[0.5], colors="#00e5ff", linewidths=0.8)
    ax.axis("off")
    return im


def show_case_maps(results: ResultSet, image_ids: Sequence[int], methods: Sequence[str] | None = None,
                   threshold: str = "f1", titles: Sequence[str] | None = None) -> plt.Figure:
    """Rows = cases; columns = the image (ground truth outlined) and each method's map laid over it on
    one colour scale (threshold units), with the method's score and outcome in the title."""
    methods = list(methods or results.methods)
    n = len(image_ids)
    fig, axes = plt.subplots(n, len(methods) + 1, figsize=(2.3 * (len(methods) + 1), 2.4 * n + 0.6), squeeze=False)
    table = results.table.set_index(["method", "image_id"])
    im = None
    for r, image_id in enumerate(image_ids):
        sample, mask, image = results.samples[image_id], results.mask(image_id), results.image(image_id)
        title = titles[r] if titles else f"{sample.defect_type}: {sample.stem}"[:30]
        overlay_mask(axes[r, 0], image, mask, title)
        for c, method in enumerate(methods, 1):
            row = table.loc[(method, image_id)]
            im = overlay_map(axes[r, c], image, results.scaled_map(method, image_id), mask)
            outcome = row.get(f"outcome_{threshold}")
            axes[r, c].set_title(f"{method}\n{row['score']:.3g}" + (f" · {outcome}" if isinstance(outcome, str) else ""),
                                 fontsize=8)
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6, label=SCALE_LABEL)
    return fig


def plot_roc_pr(table: pd.DataFrame) -> plt.Figure:
    """Image-level ROC and precision-recall curves of every method on one pair of axes, with the
    operating points of the F1-optimal (o) and normal-only (s) thresholds marked."""
    methods = list(table["method"].unique())
    colours = method_colours(methods)
    fig, (ax_roc, ax_pr) = plt.subplots(1, 2, figsize=(10, 4))
    for method in methods:
        rows = table[table["method"] == method]
        y, s = rows["label"].to_numpy(), rows["score"].to_numpy()
        if len(set(y)) < 2:
            continue
        fpr, tpr, _ = roc_curve(y, s)
        precision, recall, _ = precision_recall_curve(y, s)
        ax_roc.plot(fpr, tpr, color=colours[method], label=f"{method} (AUROC {auroc(y, s):.3f})")
        ax_pr.plot(recall, precision, color=colours[method], label=f"{method} (AP {average_precision(y, s):.3f})")
        for kind, marker in (("f1", "o"), ("normal_only", "s")):
            decided = rows[f"decision_{kind}"]
            if decided.isna().all():
                continue
            d = decided.astype(int).to_numpy().astype(bool)
            tp, fp = np.sum(d & (y == 1)), np.sum(d & (y == 0))
            ax_roc.plot(fp / max((y == 0).sum(), 1), tp / max((y == 1).sum(), 1), marker, color=colours[method], ms=7)
            ax_pr.plot(tp / max((y == 1).sum(), 1), tp / max(tp + fp, 1), marker, color=colours[method], ms=7)
    ax_roc.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax_roc.set(xlabel="false-alarm rate (normal images called defect)", ylabel="recall (defects found)",
               title="ROC: o = F1-optimal threshold, s = normal-only")
    ax_pr.set(xlabel="recall", ylabel="precision", title="precision-recall", ylim=(0, 1.02))
    ax_roc.legend(fontsize=8, loc="lower right")
    ax_pr.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def plot_score_distributions_by_method(table: pd.DataFrame) -> plt.Figure:
    """Per method (its own x axis: scores are not comparable across methods), image scores of normal
    vs defect test images, with the F1-optimal (dashed) and normal-only (dotted) thresholds."""
    methods = list(table["method"].unique())
    fig, axes = plt.subplots(1, len(methods), figsize=(4.2 * len(methods), 3.2), squeeze=False)
    for ax, method in zip(axes[0], methods):
        rows = table[table["method"] == method].assign(image=lambda f: np.where(f["label"] == 1, "defect", "normal"))
        sns.histplot(data=rows, x="score", hue="image", hue_order=["normal", "defect"], bins=25, element="step",
                     ax=ax, palette={"normal": "#4c72b0", "defect": MASK_COLOUR})
        for kind, (style, name) in THRESHOLD_STYLES.items():
            value = rows[f"threshold_{kind}"].iloc[0]
            if pd.notna(value):
                ax.axvline(value, color="k", ls=style, lw=1.2, label=f"{name} threshold")
        ax.set_title(method)
        handles, labels = ax.get_legend_handles_labels()
        legend = ax.get_legend()
        if legend is not None:
            handles = legend.legend_handles + handles
            labels = [t.get_text() for t in legend.get_texts()] + labels
        ax.legend(handles, labels, fontsize=7)
    fig.tight_layout()
    return fig


def plot_threshold(labels: np.ndarray, scores: np.ndarray, threshold: float, title: str = "") -> plt.Figure:
    """Image scores of normal vs defect images with one threshold: right of the line is flagged, so the defects
    left of it are the misses and the normals right of it the false alarms (the threshold control of notebook 06)."""
    labels, scores = np.asarray(labels), np.asarray(scores, np.float64)
    fig, ax = plt.subplots(figsize=(6, 2.8))
    bins = np.linspace(scores.min(), scores.max(), 26)
    ax.hist(scores[labels == 0], bins=bins, histtype="step", color="#4c72b0", lw=1.5, label="normal")
    ax.hist(scores[labels == 1], bins=bins, histtype="step", color=MASK_COLOUR, lw=1.5, label="defect")
    ax.axvline(threshold, color="k", lw=1.2, label="threshold")
    ax.set_xlabel("image score")
    ax.set_ylabel("images")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_per_type_heatmap(per_type: pd.DataFrame, metric: str = "image_auroc") -> plt.Figure:
    """A defect type x method heatmap of one metric from :func:`exdd_lab.evaluation.results.per_type_summary`."""
    grid = per_type.pivot(index="defect_type", columns="method", values=metric)
    grid = grid[list(dict.fromkeys(per_type["method"]))]
    fig, ax = plt.subplots(figsize=(1.8 * grid.shape[1] + 2.5, 0.5 * grid.shape[0] + 1.5))
    sns.heatmap(grid, annot=True, fmt=".2f", cmap="RdYlGn", vmin=0 if "recall" in metric else 0.5, vmax=1,
                cbar_kws={"label": metric.replace("_", " ")}, ax=ax)
    ax.set(xlabel="", ylabel="", title=f"{metric.replace('_', ' ')} per defect type")
    fig.tight_layout()
    return fig


def case_figure(results: ResultSet, image_id: int, highlight: str | None = None, threshold: str = "f1") -> plt.Figure:
    """One case in full: the image and its ground truth, then every method's map over the image on one
    colour scale, titled with score, score rank and outcome (the highlighted method in bold). The
    browser's picture."""
    methods = results.methods
    table = results.table.set_index(["method", "image_id"])
    mask = results.mask(image_id)
    fig, axes = plt.subplots(1, len(methods) + 2, figsize=(2.5 * (len(methods) + 2), 2.9))
    sample = results.samples[image_id]
    image = results.image(image_id)
    overlay_mask(axes[0], image, mask, f"{sample.defect_type}: {sample.stem}"[:32])
    axes[1].imshow(mask if mask is not None else np.zeros((results.image_size,) * 2), cmap="gray", vmin=0, vmax=1)
    axes[1].set_title("ground truth" if mask is not None else "ground truth unknown", fontsize=8)
    axes[1].axis("off")
    im = None
    for ax, method in zip(axes[2:], methods):
        row = table.loc[(method, image_id)]
        im = overlay_map(ax, image, results.scaled_map(method, image_id), mask)
        outcome = row.get(f"outcome_{threshold}")
        ax.set_title(f"{method}\n{row['score']:.3g} · rank {row['score_rank']:.2f}"  # two lines: long method
                     + (f" · {outcome}" if isinstance(outcome, str) else ""), fontsize=8,  # names must not overlap
                     fontweight="bold" if method == highlight else "normal")
    if im is not None:
        fig.colorbar(im, ax=list(axes[2:]), shrink=0.8, label="map / pixel threshold")
    return fig


def figure_png(fig: plt.Figure, dpi: int = 80) -> bytes:
    """A figure as PNG bytes (and closed): for widgets and HTML reports."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()
