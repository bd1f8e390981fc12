"""What every method looks like from outside: ``fit(train)`` and ``predict(samples) -> Prediction``.

Notebooks, the CLI and the analysis treat PatchCore, ExDD and the student-teacher alike through
:class:`Detector`; the optional hooks below are every other thing the kit asks of a method (saving,
alternative maps, explanations, synthetic defects), each checked with ``isinstance``. Taught in ``notebooks/02_negative_only_baselines.ipynb``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from exdd_lab.data.records import DefectDataset, Sample


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


@runtime_checkable
class Detector(Protocol):
    """What every method is: a name, ``fit`` on training normals, ``predict`` maps and scores, ``describe`` its settings.

    ``predict_images`` scores images already decoded at ``input_size`` (``(N, S, S, 3) uint8``, as
    :func:`~exdd_lab.data.imageio.load_image` returns them) without touching the feature cache: the archive
    scorer decodes in parallel with the forward pass and never keeps anything per image. ``threshold`` is the
    decision threshold a saved detector carries (``None`` until an evaluation measured one)."""

    name: str
    threshold: dict | None

    @property
    def input_size(self) -> int: ...

    def fit(self, train: Sequence[Sample], progress: bool = False) -> Detector: ...

    def predict(self, samples: Sequence[Sample], progress: bool = False, keep_maps: bool = True) -> Prediction: ...

    def predict_images(self, images: np.ndarray, keep_maps: bool = True) -> Prediction: ...

    def describe(self) -> dict: ...


# Optional hooks: a method has them when it can do the job; the kit asks with ``isinstance(method, Hook)``.
@runtime_checkable
class Savable(Protocol):
    """A fitted detector written to a new folder atomically (``exdd-lab evaluate --save-model``) and read back
    with the class's ``load(folder)`` (``exdd-lab score``)."""

    def save(self, folder: str | Path) -> Path: ...

    def load(folder: str | Path) -> Detector: ...


@runtime_checkable
class HasAlternatives(Protocol):
    """Several maps from one run (the student-teacher's head and discrepancy): ``metrics.json`` reports each
    under its name as a prefix."""

    def alternative_predictions(self, prediction: Prediction) -> dict[str, Prediction]: ...


@runtime_checkable
class Explainable(Protocol):
    """The maps a score is made of, for one image (ExDD's ``d_neg``, ``d_pos`` and their ratio)."""

    def explain(self, sample: Sample) -> dict: ...


@runtime_checkable
class UsesSyntheticDefects(Protocol):
    """Learns from synthetic defects: ``synthesis_info`` (generator, count, time) goes into ``metrics.json``."""

    synthesis_info: dict


@runtime_checkable
class TrainsOnDefects(Protocol):
    """Makes (or is given) its own synthetic defect set; ``compare`` shares it with ExDD's positive bank."""

    def training_defects(self, train: Sequence[Sample], progress: bool = False) -> DefectDataset: ...


#: Every optional hook, for the test that each method declares what it has.
OPTIONAL_HOOKS = (Savable, HasAlternatives, Explainable, UsesSyntheticDefects, TrainsOnDefects)
