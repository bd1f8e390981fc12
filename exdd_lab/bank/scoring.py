"""From nearest-neighbour distances to anomaly maps and image scores. Pure functions; nothing is fitted here.

- patch score: distance of a test patch to its nearest bank item;
- anomaly map: patch scores ``(N, h, w)`` upsampled (bilinear) to the image size and smoothed with a
  Gaussian of ``sigma`` pixels (4 by default, as PatchCore) -> ``(N, S, S)``, in feature-distance units;
- image score: the maximum of the smoothed map; or PatchCore's reweighting (Roth et al., Eq. 7) of
  the most anomalous patch by how isolated its nearest bank item is.

Taught in ``notebooks/02_negative_only_baselines.ipynb``.
"""
from __future__ import annotations

import functools

from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F


def gaussian_kernel1d(sigma: float) -> torch.Tensor:
    """A normalised 1-D Gaussian of radius ``4 sigma`` (odd length)."""
    radius = max(1, int(4 * sigma + 0.5))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def anomaly_maps(patch_scores: np.ndarray | torch.Tensor, image_size: int, sigma: float = 4.0,
                 batch: int = 256) -> np.ndarray:
    """``(N, h, w)`` patch scores -> ``(N, S, S)`` maps: bilinear upsampling, then a separable Gaussian blur.

    Borders are reflected so the edge of the image is not pulled towards zero. Both steps are linear and
    act on rows and columns separately, so each map is ``M_h @ scores @ M_w.T`` with one precomputed
    ``(S, h)`` matrix per axis (:func:`smoothing_matrix`): the same numbers as upsampling and blurring
    the image, at a small fraction of the work. Works ``batch`` images at a time.
    """
    s = torch.as_tensor(np.asarray(patch_scores), dtype=torch.float32)
    if s.ndim == 2:
        s = s[None]
    rows, cols = smoothing_matrix(s.shape[1], image_size, sigma), smoothing_matrix(s.shape[2], image_size, sigma)
    out = np.empty((s.shape[0], image_size, image_size), np.float32)
    for start in range(0, s.shape[0], batch):
        out[start : start + batch] = (rows @ s[start : start + batch] @ cols.T).numpy()
    return out


@functools.lru_cache(maxsize=32)
def smoothing_matrix(n: int, image_size: int, sigma: float) -> torch.Tensor:
    """The ``(S, n)`` matrix of one axis of :func:`anomaly_maps`: linear upsampling from ``n`` cells to
    ``image_size`` pixels (``align_corners=False``, as bilinear ``F.interpolate``) followed by a Gaussian
    of ``sigma`` pixels (radius ``4 sigma``) with reflected borders. Column ``j`` is the response to a
    unit score in cell ``j``."""
    impulses = torch.eye(n, dtype=torch.float64)[:, None]  # (n, 1, n): one unit impulse per row
    up = F.interpolate(impulses, size=image_size, mode="linear", align_corners=False)
    if sigma and sigma > 0:
        k = gaussian_kernel1d(sigma).double()
        r = len(k) // 2
        up = F.conv1d(F.pad(up, (r, r), mode="reflect"), k.view(1, 1, -1))
    return up[:, 0].T.float().contiguous()


def max_score(maps: np.ndarray) -> np.ndarray:
    """Image score = the maximum of each map. ``(N, H, W) -> (N,)``."""
    return np.asarray(maps).reshape(len(maps), -1).max(axis=1)


def max_patch_score(patch_scores: np.ndarray) -> np.ndarray:
    """Image score = the largest raw patch score of each grid ``(N, h, w) -> (N,)`` (PatchCore's s*, the
    reference image score; unlike the map's maximum it does not depend on the smoothing)."""
    return np.asarray(patch_scores).reshape(len(patch_scores), -1).max(axis=1)


def top_k_mean(maps: np.ndarray, k: int = 100) -> np.ndarray:
    """Image score = the mean of each map's ``k`` largest pixels ``(N, H, W) -> (N,)``: steadier than the
    maximum (one hot pixel does not decide), still sensitive to small defects (100 of 65,536 pixels at 256 px)."""
    flat = np.asarray(maps).reshape(len(maps), -1)
    if k < 1:
        raise ValueError(f"top-k needs k >= 1, got {k}")
    k = min(k, flat.shape[1])
    return np.partition(flat, flat.shape[1] - k, axis=1)[:, -k:].mean(axis=1)


#: An image score strategy: ``(patch_grid (N, h, w), map_max (N,), extra, settings) -> (N,)``. Each method
#: registers the ones it supports (``PatchCore``: max_patch, reweighted, max; ``ExDD``: max_patch, max, exdd).
ImageScore = Callable[[np.ndarray, np.ndarray, dict, Any], np.ndarray]


def score_max_patch(patch_grid: np.ndarray, map_max: np.ndarray, extra: dict, settings: Any) -> np.ndarray:
    """The largest raw patch score (PatchCore's reference image score)."""
    return max_patch_score(patch_grid)


def score_map_max(patch_grid: np.ndarray, map_max: np.ndarray, extra: dict, settings: Any) -> np.ndarray:
    """The maximum of the smoothed map (depends on the smoothing)."""
    return map_max


def reweighting_factor(query_to_support: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """PatchCore Eq. 7 weight: ``1 - softmax(d / T)[0]`` over the distances from the query patch to its
    nearest bank item (first) and that item's neighbours in the bank.

    ``query_to_support (N, b)``; returns ``(N,)`` in ``[0, 1)``. When the support items lie as close to
    the query as the nearest one (a dense normal region) the weight is ``1 - 1/b``; when they lie much
    farther (the nearest item is an isolated, rare patch) it approaches 1, raising the score relative
    to dense-region matches, as Roth et al. intend.
    """
    d = torch.as_tensor(np.asarray(query_to_support), dtype=torch.float64) / temperature
    return (1.0 - torch.softmax(d, dim=1)[:, 0]).numpy()
