"""Looking inside patch features: what each layer sees, and how far defect patches lie from normal ones.

Taught in ``notebooks/01_feature_extraction.ipynb``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from exdd_lab.features.patch_labels import patch_labels
from exdd_lab.components.neighbours import knn


def layer_pca_rgb(fmap: torch.Tensor) -> np.ndarray:
    """The first three principal components of one layer's map, as an RGB picture.

    ``(C, h, w)`` -> ``(h, w, 3)`` in ``[0, 1]``: similar colours mean similar features.
    """
    c, h, w = fmap.shape
    x = fmap.reshape(c, -1).T.double()
    x = x - x.mean(0)
    _, _, v = torch.linalg.svd(x, full_matrices=False)
    comps = (x @ v[:3].T).reshape(h, w, -1)
    if comps.shape[-1] < 3:
        comps = torch.cat([comps, torch.zeros(h, w, 3 - comps.shape[-1], dtype=comps.dtype)], -1)
    lo, hi = comps.amin((0, 1)), comps.amax((0, 1))
    return ((comps - lo) / (hi - lo + 1e-12)).float().numpy()


@dataclass
class PatchDistanceReport:
    """Nearest-normal distances of test patches, split by whether the patch is defective."""

    normal: np.ndarray  # distances of patches in normal regions (of good and defect images)
    defect: np.ndarray  # distances of patches whose cell is mostly masked
    maps: np.ndarray  # (N, h, w) distance per patch, for every test image

    @property
    def patch_auroc(self) -> float:
        """How well the raw nearest-normal distance separates defect from normal patches."""
        if len(self.defect) == 0 or len(self.normal) == 0:
            return float("nan")
        y = np.r_[np.zeros(len(self.normal)), np.ones(len(self.defect))]
        return float(roc_auc_score(y, np.r_[self.normal, self.defect]))

    def summary(self) -> dict[str, float]:
        return {
            "normal_patch_nn_mean": float(self.normal.mean()),
            "defect_patch_nn_mean": float(self.defect.mean()) if len(self.defect) else float("nan"),
            "defect_to_normal_distance_ratio": float(self.defect.mean() / self.normal.mean()) if len(self.defect) else float("nan"),
            "patch_auroc_nn_distance": self.patch_auroc,
        }


def nearest_normal_distances(
    train_features: torch.Tensor,
    test_features: torch.Tensor,
    test_masks: np.ndarray,
    min_fraction: float = 0.5,
    max_reference: int | None = 50_000,
    seed: int = 0,
) -> PatchDistanceReport:
    """Distance of every test patch to its nearest training (normal) patch.

    ``train_features (N_train, h, w, C)``, ``test_features (N, h, w, C)``, ``test_masks (N, H, W) bool``.
    Patches with mask fraction in ``(0, min_fraction)`` are ambiguous and left out of both groups.
    Exact search costs ``queries x references x C``; above ``max_reference`` training patches a
    seeded random subset is searched (distances then read slightly high). The real answer to this
    cost is a coreset (notebook 02).
    """
    n, h, w, c = test_features.shape
    bank = train_features.reshape(-1, c)
    if max_reference is not None and len(bank) > max_reference:
        keep = np.sort(np.random.default_rng(seed).choice(len(bank), max_reference, replace=False))
        bank = bank[torch.from_numpy(keep)]
    dist, _ = knn(test_features.reshape(-1, c), bank, k=1)
    maps = dist[:, 0].reshape(n, h, w)
    labels = patch_labels(test_masks, h, min_fraction)
    clean = ~patch_labels(test_masks, h, 1e-9)
    return PatchDistanceReport(normal=maps[clean], defect=maps[labels], maps=maps)


def feature_statistics(features: torch.Tensor, layer_channels: list[int], layer_names: list[str] | None = None):
    """Per-layer statistics of patch features ``(N, h, w, C)`` (unprojected, layers concatenated).

    Returns a DataFrame: channels, mean and std of the values, and the mean L2 norm of each
    layer's part of a patch vector. Deeper layers have larger norms, which is why a plain
    Euclidean distance on concatenated features weighs them more.
    """
    import pandas as pd

    flat = features.reshape(-1, features.shape[-1])
    rows, start = [], 0
    for i, c in enumerate(layer_channels):
        part = flat[:, start : start + c]
        rows.append({"layer": (layer_names or [f"layer {i}" for i in range(len(layer_channels))])[i], "channels": c,
                     "mean": float(part.mean()), "std": float(part.std()), "mean_l2_norm": float(part.norm(dim=1).mean())})
        start += c
    return pd.DataFrame(rows)
