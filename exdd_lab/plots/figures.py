"""Figures for the notebooks. Plotting only: every number shown is computed elsewhere.

Each function returns the matplotlib ``Figure`` so notebooks can save or further style it.
"""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from exdd_lab.components.metric_names import HEADLINE_METRICS
from exdd_lab.data.imageio import load_image, sample_mask
from exdd_lab.data.records import Sample

MASK_COLOUR = "#ff3b30"


def overlay_mask(ax: plt.Axes, image: np.ndarray, mask: np.ndarray | None, title: str = "") -> None:
    """Show ``image`` with the ground-truth outline of ``mask`` drawn on top."""
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
    if mask is not None and mask.any():
        ax.contour(mask.astype(float), levels=[0.5], colors=MASK_COLOUR, linewidths=1.0)
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def show_gallery(samples: Sequence[Sample], per_type: int = 4, size: int = 160, seed: int = 0) -> plt.Figure:
    """A grid: one row per defect type (normal first), ``per_type`` images each, masks outlined.

    Taught in ``notebooks/00_data_tour.ipynb``.
    """
    rng = np.random.default_rng(seed)
    groups: dict[str, list[Sample]] = {}
    for s in samples:
        groups.setdefault(s.defect_type, []).append(s)
    kinds = sorted(groups, key=lambda k: (k != "good", k))
    fig, axes = plt.subplots(len(kinds), per_type, figsize=(1.9 * per_type, 1.9 * len(kinds)), squeeze=False)
    for r, kind in enumerate(kinds):
        pool = groups[kind]
        picks = rng.choice(len(pool), size=min(per_type, len(pool)), replace=False)
        for c in range(per_type):
            ax = axes[r, c]
            ax.axis("off")
            if c >= len(picks):
                continue
            s = pool[picks[c]]
            img = load_image(s.image_path, size)
            mask = sample_mask(s, size) if s.mask_path else None
            overlay_mask(ax, img, mask, f"{kind}: {s.stem}"[:28])
    fig.tight_layout()
    return fig


def plot_counts(summary: pd.DataFrame) -> plt.Figure:
    """Bar chart of images per defect type and split (from ``DefectDataset.summary()``)."""
    fig, ax = plt.subplots(figsize=(7, 3))
    sns.barplot(data=summary, x="defect_type", y="images", hue="split", ax=ax)
    ax.set_xlabel("")
    ax.set_title("images per defect type and split")
    fig.tight_layout()
    return fig


def show_layer_views(image: np.ndarray, views: Sequence[np.ndarray], names: Sequence[str]) -> plt.Figure:
    """The input next to one picture per layer (e.g. ``layer_pca_rgb``). Taught in notebook 01."""
    fig, axes = plt.subplots(1, len(views) + 1, figsize=(3 * (len(views) + 1), 3))
    axes[0].imshow(image)
    axes[0].set_title("input")
    for ax, view, name in zip(axes[1:], views, names):
        ax.imshow(view, interpolation="nearest")
        ax.set_title(name)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_distance_histograms(normal: np.ndarray, defect: np.ndarray, title: str = "") -> plt.Figure:
    """Histograms of nearest-normal distances for normal and defect patches (density, shared bins)."""
    fig, ax = plt.subplots(figsize=(6, 3))
    frame = pd.DataFrame({"distance": np.r_[normal, defect],
                          "patch": ["normal"] * len(normal) + ["defect"] * len(defect)})
    sns.histplot(data=frame, x="distance", hue="patch", stat="density", common_norm=False, bins=60, ax=ax,
                 palette={"normal": "#4c72b0", "defect": MASK_COLOUR})
    ax.set_title(title or "distance of each test patch to its nearest normal training patch")
    fig.tight_layout()
    return fig


def show_anomaly_maps(images: Sequence[np.ndarray], masks: Sequence[np.ndarray], maps: Sequence[np.ndarray],
                      titles: Sequence[str] | None = None, label: str = "anomaly score",
                      vmax: float | None = None) -> plt.Figure:
    """Images with masks outlined above their maps, on ONE colour scale for the whole figure.

    A shared scale matters: per-image scales make every map look equally alarming.
    """
    n = len(images)
    vmax = float(max(np.max(m) for m in maps)) if vmax is None else vmax
    vmin = float(min(np.min(m) for m in maps))
    fig, axes = plt.subplots(2, n, figsize=(2.4 * n, 4.8), squeeze=False)
    for i in range(n):
        overlay_mask(axes[0, i], images[i], masks[i], titles[i] if titles else "")
        im = axes[1, i].imshow(maps[i], vmin=min(vmin, 0), vmax=vmax, cmap="inferno")
        if masks[i] is not None and np.any(masks[i]) and np.shape(masks[i]) == np.shape(maps[i]):
            axes[1, i].contour(np.asarray(masks[i], float), levels=[0.5], colors="#00e5ff", linewidths=0.8)
        axes[1, i].axis("off")
    fig.colorbar(im, ax=axes[1, :].tolist(), shrink=0.8, label=label)
    return fig


def plot_score_distributions(scores: np.ndarray, labels: np.ndarray, thresholds: dict[str, float] | None = None,
                             title: str = "") -> plt.Figure:
    """Image-score histograms of normal vs defect test images, with decision thresholds drawn."""
    fig, ax = plt.subplots(figsize=(6.5, 3))
    frame = pd.DataFrame({"score": np.asarray(scores), "image": np.where(np.asarray(labels) == 1, "defect", "normal")})
    sns.histplot(data=frame, x="score", hue="image", stat="count", bins=30, ax=ax, element="step",
                 palette={"normal": "#4c72b0", "defect": MASK_COLOUR})
    for (name, value), style in zip((thresholds or {}).items(), ("--", ":", "-.")):
        if value is not None and np.isfinite(value):
            ax.axvline(value, color="k", linestyle=style, linewidth=1, label=name)
    if thresholds:
        ax.legend(fontsize=8)
    ax.set_title(title or "image scores: normal vs defect test images")
    fig.tight_layout()
    return fig


def show_coreset_projection(features: np.ndarray, chosen: np.ndarray, max_points: int = 5000, seed: int = 0) -> plt.Figure:
    """All patches (grey) and the coreset (red) on their first two principal components."""
    x = np.asarray(features, np.float32)
    rng = np.random.default_rng(seed)
    sample = rng.choice(len(x), size=min(max_points, len(x)), replace=False)
    mean = x[sample].mean(0)
    _, _, vt = np.linalg.svd(x[sample] - mean, full_matrices=False)
    p_all, p_core = (x[sample] - mean) @ vt[:2].T, (x[chosen] - mean) @ vt[:2].T
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(p_all[:, 0], p_all[:, 1], s=2, c="#9aa0a6", alpha=0.4, label=f"patches (sample of {len(sample):,})")
    ax.scatter(p_core[:, 0], p_core[:, 1], s=6, c=MASK_COLOUR, label=f"coreset ({len(chosen):,})")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.legend(fontsize=8, markerscale=3)
    ax.set_title("greedy coreset: the outskirts are kept")
    fig.tight_layout()
    return fig


def plot_mask_areas(fractions: Sequence[float]) -> plt.Figure:
    """Histogram of defect size: the fraction of each defect image that its mask covers (log scale)."""
    fig, ax = plt.subplots(figsize=(6, 2.8))
    values = np.clip(np.asarray(fractions, float), 1e-5, 1)
    ax.hist(values, bins=np.logspace(-5, 0, 40), color=MASK_COLOUR, alpha=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("fraction of the image covered by the defect mask")
    ax.set_ylabel("defect images")
    fig.tight_layout()
    return fig


def show_procedural_catalogue(size: int = 128, seed: int = 0) -> plt.Figure:
    """Every procedural material (rows) clean and with each defect type (columns), masks outlined."""
    from exdd_lab.data.surfaces import DEFECTS, MATERIALS, add_defect, render_surface

    fig, axes = plt.subplots(len(MATERIALS), len(DEFECTS) + 1, figsize=(1.8 * (len(DEFECTS) + 1), 1.8 * len(MATERIALS)))
    for r, material in enumerate(MATERIALS):
        clean = render_surface(material, seed + r, size)
        overlay_mask(axes[r, 0], clean, None, material)
        for c, defect in enumerate(DEFECTS, 1):
            img, mask = add_defect(clean, defect, seed + 10 * r + c)
            overlay_mask(axes[r, c], img, mask, defect)
    fig.tight_layout()
    return fig


def show_masks(masks: Sequence[np.ndarray], titles: Sequence[str] | None = None, columns: int = 6) -> plt.Figure:
    """Binary masks in a grid (white = defect). Taught in notebook 03."""
    rows = int(np.ceil(len(masks) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.8 * columns, 1.8 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, m in enumerate(masks):
        ax = axes.ravel()[i]
        ax.imshow(m, cmap="gray", vmin=0, vmax=1)
        ax.set_title(titles[i] if titles else f"{np.mean(m):.1%}", fontsize=8)
    fig.tight_layout()
    return fig


def show_image_rows(rows: dict[str, Sequence[tuple[np.ndarray, np.ndarray | None]]], size: float = 1.9) -> plt.Figure:
    """One row per name (e.g. "real", "perlin", "ddpm"), images with their masks outlined. Taught in notebook 03."""
    columns = max(len(v) for v in rows.values())
    fig, axes = plt.subplots(len(rows), columns, figsize=(size * columns, size * len(rows)), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for r, (name, items) in enumerate(rows.items()):
        for c, (image, mask) in enumerate(items):
            overlay_mask(axes[r, c], image, mask)
        axes[r, 0].set_title(name, fontsize=9, loc="left")
    fig.tight_layout()
    return fig


def plot_training_curve(losses: Sequence[float], window: int = 25, title: str = "DDPM training loss") -> plt.Figure:
    """Per-step loss (faint) and its running mean over ``window`` steps. Taught in notebook 03."""
    values = np.asarray(losses, float)
    fig, ax = plt.subplots(figsize=(6, 2.8))
    ax.plot(values, alpha=0.3, lw=0.8, label="step")
    if len(values) >= window:
        ax.plot(np.arange(window - 1, len(values)), np.convolve(values, np.ones(window) / window, "valid"),
                lw=1.8, label=f"mean of {window}")
    ax.set(xlabel="training step", ylabel="noise-prediction MSE", title=title, yscale="log")
    ax.legend()
    fig.tight_layout()
    return fig


def show_decomposition(images: Sequence[np.ndarray], masks: Sequence[np.ndarray | None],
                       explanations: Sequence[dict], titles: Sequence[str] | None = None) -> plt.Figure:
    """ExDD's three maps per image (columns: image, d_neg, d_pos, the detector's score map: gated by default,
    ExDD's published ratio with ``score="ratio_na"``), masks outlined; each map kind on one colour scale down
    its column. Taught in notebook 04."""
    kinds = [("d_neg", "distance to normal", "magma"), ("d_pos", "distance to defects", "viridis_r"),
             ("ratio", "ExDD score (both banks)", "magma")]
    fig, axes = plt.subplots(len(images), 4, figsize=(10, 2.6 * len(images)), squeeze=False)
    ranges = {k: (min(float(e[k].min()) for e in explanations), max(float(e[k].max()) for e in explanations))
              for k, _, _ in kinds}
    for r, (image, mask, ex) in enumerate(zip(images, masks, explanations)):
        overlay_mask(axes[r, 0], image, mask, titles[r] if titles else "")
        for c, (k, label, cmap) in enumerate(kinds, 1):
            im = axes[r, c].imshow(ex[k], cmap=cmap, vmin=ranges[k][0], vmax=ranges[k][1])
            if mask is not None and mask.any():
                axes[r, c].contour(mask, levels=[0.5], colors="cyan", linewidths=0.8)
            axes[r, c].set_title(label if r == 0 else "", fontsize=9)
            axes[r, c].axis("off")
            if r == len(images) - 1:
                fig.colorbar(im, ax=axes[:, c].tolist(), orientation="horizontal", fraction=0.04, pad=0.02)
    return fig


def plot_metric_bars(table: pd.DataFrame, metrics: Sequence[str] = HEADLINE_METRICS,
                     title: str = "") -> plt.Figure:
    """Grouped bars: one group per metric, one bar per row of ``table`` (e.g. scoring variants or methods)."""
    long = table[list(metrics)].reset_index(names="variant").melt(id_vars="variant", var_name="metric", value_name="value")
    fig, ax = plt.subplots(figsize=(7, 3))
    sns.barplot(data=long, x="metric", y="value", hue="variant", ax=ax)
    ax.set(ylim=(max(0.0, float(long["value"].min()) - 0.1), 1.0), title=title, xlabel="")
    ax.legend(fontsize=8, ncol=len(table))
    fig.tight_layout()
    return fig


def show_nearest_items(image: np.ndarray, pixel: tuple[int, int], nearest: dict[str, dict], image_size: int) -> plt.Figure:
    """A test pixel (marked) and the source patches of its nearest normal and defect bank items
    (``ExDD.nearest_items``), each shown with some context around the matched cell. Taught in notebook 04."""
    from exdd_lab.data.imageio import load_image

    fig, axes = plt.subplots(1, 3, figsize=(8, 2.8))
    axes[0].imshow(image)
    axes[0].plot(pixel[1], pixel[0], marker="+", color="cyan", markersize=14, mew=2)
    axes[0].set_title("test pixel", fontsize=9)
    for ax, kind in zip(axes[1:], ("normal", "defect")):
        item = nearest[kind]
        src = load_image(item["path"], image_size)
        y0, y1, x0, x1 = item["box"]
        pad = 3 * max(y1 - y0, x1 - x0)
        ax.imshow(src[max(0, y0 - pad) : y1 + pad, max(0, x0 - pad) : x1 + pad])
        ax.add_patch(plt.Rectangle((x0 - max(0, x0 - pad) - 0.5, y0 - max(0, y0 - pad) - 0.5), x1 - x0, y1 - y0,
                                   fill=False, color="cyan", lw=1.5))
        ax.set_title(f"nearest {kind} patch (d = {item['distance']:.2f})", fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_count_sweep(table: pd.DataFrame, metrics: Sequence[str] = ("image_auroc", "pixel_auroc")) -> plt.Figure:
    """AUROC against the number of synthetic defects, one line per generator, mean and spread over seeds
    (``synthetic_count_sweep`` output); where the table has ``<metric>_low``/``_high``, the shaded band is the
    test split's 95 % bootstrap interval (bounds averaged over seeds), the error bars the seeds' spread.
    Taught in notebook 07."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.2), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        sns.lineplot(data=table, x="count", y=metric, hue="generator", style="real_defects", marker="o",
                     errorbar="sd", err_style="bars", ax=ax)
        if {f"{metric}_low", f"{metric}_high"} <= set(table.columns):
            colours = dict(zip(table["generator"].unique(), sns.color_palette()))
            bands = table.groupby(["generator", "real_defects", "count"])[[f"{metric}_low", f"{metric}_high"]].mean()
            for (generator, _), band in bands.groupby(level=[0, 1]):
                counts = band.index.get_level_values("count")
                ax.fill_between(counts, band[f"{metric}_low"], band[f"{metric}_high"], color=colours[generator],
                                alpha=0.12, linewidth=0)
        ax.set(xscale="symlog", xlabel="synthetic defects in the positive bank", title=metric.replace("_", " "))
    fig.tight_layout()
    return fig
