"""Looking at failures: which images a method gets most wrong, and why that matters.

Taught in ``notebooks/02_negative_only_baselines.ipynb`` (and, at length, notebook 06).
"""
from __future__ import annotations

import numpy as np


def hardest_cases(labels: np.ndarray, scores: np.ndarray, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the ``k`` highest-scoring normal images (worst false alarms) and the ``k``
    lowest-scoring defect images (worst misses), most severe first."""
    labels, scores = np.asarray(labels).astype(bool), np.asarray(scores, np.float64)
    normal, defect = np.flatnonzero(~labels), np.flatnonzero(labels)
    false_alarms = normal[np.argsort(-scores[normal], kind="stable")][:k]
    misses = defect[np.argsort(scores[defect], kind="stable")][:k]
    return false_alarms, misses
