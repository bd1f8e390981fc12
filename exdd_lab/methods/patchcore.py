"""PatchCore (Roth et al., CVPR 2022): a coreset memory bank of normal patches and kNN scoring.

fit: patch features of every training (normal) image -> one bank -> greedy coreset (1% by default).
predict: each test patch's distance to its nearest bank item -> smoothed map -> image score.
Taught in ``notebooks/02_negative_only_baselines.ipynb``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from exdd_lab.data.records import Sample
from exdd_lab.features import FeatureConfig, PatchFeatureExtractor
from exdd_lab.memory import MemoryBank
from exdd_lab.methods.base import Prediction
from exdd_lab.scoring import anomaly_maps, max_score, reweighting_factor


@dataclass
class PatchCoreSettings:
    """PatchCore's knobs. ``image_score`` is ``"max"`` (max of the smoothed map) or ``"reweighted"`` (Eq. 7)."""

    coreset_ratio: float = 0.01
    coreset_projection: int | None = 128
    sigma: float = 4.0
    image_score: str = "max"
    reweight_neighbours: int = 9
    seed: int = 0
    batch_size: int = 8


class PatchCore:
    """Negative-only detector. ``PatchCore(FeatureConfig(...), PatchCoreSettings(...)).fit(train).predict(test)``."""

    name = "patchcore"

    def __init__(self, features: FeatureConfig | None = None, settings: PatchCoreSettings | None = None,
                 extractor: PatchFeatureExtractor | None = None) -> None:
        self.settings = settings or PatchCoreSettings()
        if self.settings.image_score not in ("max", "reweighted"):
            raise ValueError(f"image_score must be 'max' or 'reweighted', not {self.settings.image_score!r}")
        self.extractor = extractor or PatchFeatureExtractor(features or FeatureConfig())
        self.bank: MemoryBank | None = None

    def feature_metadata(self) -> dict:
        cfg = self.extractor.config
        return {"backbone": cfg.backbone, "layers": list(cfg.resolved_layers), "image_size": cfg.image_size,
                "projection_dim": cfg.projection_dim, "weights": self.extractor.weights_source.kind}

    def fit(self, train: Sequence[Sample], progress: bool = False) -> PatchCore:
        if not train:
            raise ValueError("PatchCore.fit needs at least one normal training image")
        feats = self.extractor.extract([s.image_path for s in train], self.settings.batch_size, progress=progress)
        self.bank = MemoryBank(self.extractor.feature_dim, self.feature_metadata()).add(feats)
        if self.settings.coreset_ratio < 1:
            self.bank.subsample(self.settings.coreset_ratio, self.settings.seed, self.settings.coreset_projection)
        return self

    def predict(self, samples: Sequence[Sample], progress: bool = False) -> Prediction:
        if self.bank is None:
            raise RuntimeError("call fit() before predict()")
        feats = self.extractor.extract([s.image_path for s in samples], self.settings.batch_size, progress=progress)
        n, h, w, c = feats.shape
        flat = feats.reshape(-1, c)
        dist, idx = self.bank.search(flat, k=1)
        patch_scores = dist[:, 0].reshape(n, h, w)
        maps = anomaly_maps(patch_scores, self.extractor.config.image_size, self.settings.sigma)
        scores = max_score(maps)
        extra = {"nn_index": idx[:, 0].reshape(n, h, w)}
        if self.settings.image_score == "reweighted":
            extra["max_map_score"] = scores
            scores = self.reweighted_scores(flat.reshape(n, h * w, c), patch_scores.reshape(n, -1), idx[:, 0].reshape(n, -1))
        return Prediction(maps, scores, patch_scores, extra)

    def reweighted_scores(self, feats, patch_scores: np.ndarray, nn_index: np.ndarray) -> np.ndarray:
        """Eq. 7 of PatchCore on the most anomalous patch of each image."""
        worst = patch_scores.argmax(axis=1)
        rows = np.arange(len(worst))
        query = feats[rows, worst]  # (N, C)
        star = nn_index[rows, worst]  # (N,) nearest bank item of that patch
        b = min(self.settings.reweight_neighbours, len(self.bank))
        _, support = self.bank.search(self.bank.items[star], k=b)  # (N, b): m* first, then its neighbours
        items = self.bank.items[support]  # (N, b, C)
        d = (items - query[:, None]).norm(dim=2).numpy()
        return reweighting_factor(d) * patch_scores[rows, worst]

    def describe(self) -> dict:
        return {"method": self.name, **self.feature_metadata(), "weights_source": self.extractor.weights_source.description,
                **{f"settings.{k}": v for k, v in self.settings.__dict__.items()},
                "bank_patches": len(self.bank) if self.bank is not None else 0,
                "bank_mb": round(self.bank.size_mb, 2) if self.bank is not None else 0}
