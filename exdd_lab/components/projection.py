"""A seeded Gaussian random projection: shrinks feature vectors while keeping distances roughly intact.

Johnson-Lindenstrauss: ``x @ R`` with ``R ~ N(0, 1/out_dim)`` preserves pairwise distances up to a small
factor. Used to shrink patch features (``FeatureConfig.projection_dim``) and to speed up the coreset's
greedy search (PatchCore's reference code projects to 128 dimensions there).
"""
from __future__ import annotations

import numpy as np
import torch


def gaussian_projection(in_dim: int, out_dim: int, seed: int | torch.Generator = 0) -> torch.Tensor:
    """``(in_dim, out_dim)`` Gaussian matrix scaled by ``1/sqrt(out_dim)``.

    ``seed`` is an int, or a ``torch.Generator`` whose stream continues (the coreset draws its start
    point from the same generator afterwards).
    """
    gen = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
    return torch.randn(in_dim, out_dim, generator=gen) / np.sqrt(out_dim)
