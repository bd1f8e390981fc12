"""Which patches of the feature grid are defective, from pixel masks.

A patch is labelled defective when at least ``min_fraction`` of the pixels in its cell of the
image are masked. Shapes: masks ``(N, H, W) bool`` -> fractions ``(N, h, w) float32``.
Used by notebook 01's defect-patch distances (:func:`~exdd_lab.features.inspect.nearest_normal_distances`)
and by ExDD's masked positive patches (:mod:`exdd_lab.methods.exdd.positive_patches`).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def mask_fraction_per_patch(masks: np.ndarray, grid: int) -> np.ndarray:
    """Fraction of masked pixels in each cell of a ``grid x grid`` partition. ``(N, H, W) -> (N, grid, grid)``."""
    m = torch.as_tensor(np.asarray(masks, dtype=np.float32))
    if m.ndim == 2:
        m = m[None]
    return F.adaptive_avg_pool2d(m[:, None], grid)[:, 0].numpy()


def patch_labels(masks: np.ndarray, grid: int, min_fraction: float = 0.5) -> np.ndarray:
    """``bool (N, grid, grid)``: True where a patch's cell is at least ``min_fraction`` masked."""
    return mask_fraction_per_patch(masks, grid) >= min_fraction
