"""What every method looks like from outside: ``fit(train)`` and ``predict(samples) -> Prediction``.

Notebooks, the CLI and the analysis treat PatchCore, ExDD and the student-teacher alike through
this interface. Taught in ``notebooks/02_negative_only_baselines.ipynb``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np

from exdd_lab.data.records import Sample


@dataclass
class Prediction:
    """A method's output for N images at ``image_size``.

    ``predict(..., keep_maps=False)`` leaves ``maps`` empty (shape ``(0, S, S)``) to save memory.

    ``maps (N, S, S)`` anomaly maps; ``scores (N,)`` image scores (higher = more anomalous);
    ``patch_scores (N, h, w)`` the unsmoothed grid when the method has one; ``extra`` holds
    method-specific arrays (e.g. nearest-bank indices, other score variants).
    """

    maps: np.ndarray
    scores: np.ndarray
    patch_scores: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)


class Detector(Protocol):
    name: str

    def fit(self, train: Sequence[Sample], progress: bool = False) -> Detector: ...

    def predict(self, samples: Sequence[Sample], progress: bool = False, keep_maps: bool = True) -> Prediction: ...

    def describe(self) -> dict: ...
