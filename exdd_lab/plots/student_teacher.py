"""Figures of the student-teacher (notebook 05): the architecture, the loss terms, what the student
fails to reproduce per scale. Plotting only: every number shown is computed in :mod:`exdd_lab.student_teacher`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from matplotlib.ticker import NullFormatter, ScalarFormatter

from exdd_lab.plots.figures import overlay_mask

if TYPE_CHECKING:
    import pandas as pd


def _box(ax: plt.Axes, xy: tuple[float, float], w: float, h: float, text: str, colour: str) -> None:
    ax.add_patch(FancyBboxPatch(xy, w, h, boxstyle="round,pad=0.02", fc=colour, ec="0.3", lw=1))
    ax.text(xy[0] + w / 2, xy[1] + h / 2, text, ha="center", va="center", fontsize=8.5, wrap=True)


def _arrow(ax: plt.Axes, start: tuple[float, float], end: tuple[float, float], text: str = "", style: str = "-") -> None:
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, lw=1.1, color="0.25", linestyle=style))
    if text:
        ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.03, text, ha="center", fontsize=7.5, color="0.2")


def draw_architecture(teacher_params: int, student_params: int, head_params: int, scales: Sequence[str],
                      reads_features: bool = False) -> plt.Figure:
    """The student-teacher in one picture: who sees which image, which loss trains what. ``reads_features``: a
    reverse-distillation student (it reads the teacher's maps of the defective image through a bottleneck)."""
    fig, ax = plt.subplots(figsize=(10, 4.2))
    ax.set(xlim=(0, 1), ylim=(0, 1))
    ax.axis("off")
    _box(ax, (0.01, 0.70), 0.14, 0.16, "clean normal\nimage x", "#e8f1fb")
    _box(ax, (0.01, 0.22), 0.14, 0.16, "x + synthetic defect\n(DDPM or Perlin)\nexact mask M", "#fdecea")
    _box(ax, (0.24, 0.70), 0.20, 0.16, f"TEACHER (frozen)\npretrained, {teacher_params / 1e6:.1f} M params", "#d9e7f7")
    _box(ax, (0.24, 0.40), 0.20, 0.16, "TEACHER (frozen)\nsame network", "#d9e7f7")
    student = (f"STUDENT (trained)\nbottleneck + decoder\n{student_params / 1e6:.2f} M params" if reads_features else
               f"STUDENT (trained)\nrandom init, {student_params / 1e6:.2f} M params")
    _box(ax, (0.24, 0.06), 0.20, 0.18, student, "#fff2cc")
    _box(ax, (0.55, 0.70), 0.18, 0.16, "cosine loss\nstudent(x̃) → teacher(x)", "#eeeeee")
    _box(ax, (0.55, 0.22), 0.18, 0.18, f"agreement per scale\n{' · '.join(scales)}\n1 - cos = discrepancy", "#eeeeee")
    _box(ax, (0.80, 0.22), 0.18, 0.18, f"SEGMENTATION HEAD\n{head_params / 1e3:.0f} k params\nfocal + Dice vs M", "#e2f0d9")
    _arrow(ax, (0.15, 0.78), (0.24, 0.78))
    _arrow(ax, (0.15, 0.32), (0.24, 0.48))
    if reads_features:  # the student never sees pixels: it rebuilds the teacher's maps of x̃ from a bottleneck
        _arrow(ax, (0.30, 0.40), (0.30, 0.24), "its maps")
    else:
        _arrow(ax, (0.15, 0.28), (0.24, 0.16))
    _arrow(ax, (0.44, 0.78), (0.55, 0.78), "target")
    _arrow(ax, (0.44, 0.16), (0.64, 0.70), "prediction")
    _arrow(ax, (0.44, 0.48), (0.55, 0.34))
    _arrow(ax, (0.44, 0.14), (0.55, 0.27))
    _arrow(ax, (0.73, 0.31), (0.80, 0.31))
    ax.text(0.64, 0.10, "discrepancy map", ha="center", fontsize=8.5, style="italic")
    _arrow(ax, (0.64, 0.22), (0.64, 0.13))
    ax.text(0.89, 0.10, "head map", ha="center", fontsize=8.5, style="italic")
    _arrow(ax, (0.89, 0.22), (0.89, 0.13))
    title = ("reverse distillation: the student rebuilds NORMAL teacher features through a bottleneck, the head learns "
             "where they fail" if reads_features else
             "asymmetric student-teacher: the student learns to reproduce NORMAL features, the head learns where they fail")
    ax.set_title(title, fontsize=9.5)
    return fig


def plot_loss_terms(history: Sequence[dict[str, float]], window: int = 25) -> plt.Figure:
    """Running means of the loss terms per training step: the student's cosine loss and the head's focal and Dice."""
    fig, axes = plt.subplots(1, 3, figsize=(11, 2.8))
    for ax, term, what in zip(axes, ("feature", "focal", "dice"),
                              ("student: 1 - cos to the clean teacher", "head: focal", "head: Dice")):
        values = np.array([h[term] for h in history], float)
        ax.plot(values, alpha=0.25, lw=0.7)
        if len(values) >= window:
            ax.plot(np.arange(window - 1, len(values)), np.convolve(values, np.ones(window) / window, "valid"), lw=1.8)
        ax.set(title=what, xlabel="step")
        ax.title.set_fontsize(9)
    fig.tight_layout()
    return fig


def plot_learning_curve(curve: "pd.DataFrame", references: dict[str, dict[str, float]] | None = None,
                        budget_step: int | None = None) -> plt.Figure:
    """Image and pixel AUROC of the head and the discrepancy map against training steps.

    ``references``: other methods' numbers on the same split as dashed lines (``{"PatchCore": {"image_auroc": ..}}``);
    ``budget_step``: a vertical line where the kit's default training ends.
    """
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    for ax, metric, title in zip(axes, ("image_auroc", "pixel_auroc"), ("image AUROC", "pixel AUROC")):
        for source, rows in curve.groupby("map"):
            ax.plot(rows["step"], rows[metric], marker="o", label=f"{source} map")
        for name, values in (references or {}).items():
            if metric in values:
                ax.axhline(values[metric], ls="--", lw=1, color="grey")
                ax.text(0.01, values[metric], name, transform=ax.get_yaxis_transform(), fontsize=8, color="grey",
                        va="bottom")
        if budget_step:
            ax.axvline(budget_step, ls=":", color="black", lw=1)
        ax.axhline(0.5, lw=0.6, color="lightgrey")
        ax.set(title=title, xlabel="training step (log scale)", xscale="log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks(sorted(set(curve["step"])))
        ax.title.set_fontsize(9)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def show_scale_discrepancy(images: Sequence[np.ndarray], masks: Sequence[np.ndarray | None],
                           per_scale: Sequence[Sequence[np.ndarray]], head: Sequence[np.ndarray],
                           titles: Sequence[str] | None = None, scale_names: Sequence[str] | None = None) -> plt.Figure:
    """Rows of images: the image, the student's failure (1 - cos) at each scale, and the head's map.

    Each kind of map has one colour scale down its column, so rows compare.
    """
    n_scales = len(per_scale[0])
    names = list(scale_names or [f"scale {i}" for i in range(n_scales)])
    fig, axes = plt.subplots(len(images), n_scales + 2, figsize=(2.3 * (n_scales + 2), 2.4 * len(images)), squeeze=False)
    columns = [[p[i] for p in per_scale] for i in range(n_scales)] + [list(head)]
    for r, (image, mask) in enumerate(zip(images, masks)):
        overlay_mask(axes[r, 0], image, mask, titles[r] if titles else "")
        for c, column in enumerate(columns, 1):
            vmax = max(float(np.max(m)) for m in column)
            axes[r, c].imshow(column[r], cmap="magma" if c <= n_scales else "viridis", vmin=0, vmax=vmax)
            axes[r, c].axis("off")
            if r == 0:
                axes[r, c].set_title(f"1 - cos, {names[c - 1]}" if c <= n_scales else "head: P(defect)", fontsize=9)
    fig.tight_layout()
    return fig
