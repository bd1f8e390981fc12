"""PatchCore (Roth et al., CVPR 2022): a coreset memory bank of normal patches and kNN scoring.

fit: patch features of every training (normal) image -> one bank -> greedy coreset (1% by default).
predict: each test patch's distance to its nearest bank item -> smoothed map; image score = the largest
patch distance (as the reference code). Where the kit differs from the paper and the reference code, and
what each difference costs: ``benchmarks/README.md``, fidelity table.
Taught in ``notebooks/02_negative_only_baselines.ipynb``.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from safetensors.torch import load_file as load_tensors
from safetensors.torch import save as save_tensors
from tqdm.auto import tqdm

from exdd_lab.bank.index import BANK_INDEXES
from exdd_lab.components.registry import Registry
from exdd_lab.bank.coreset import CORESET_METHODS, DEFAULT_PROJECTION, coreset_size
from exdd_lab.data.records import Sample
from exdd_lab.errors import DatasetError
from exdd_lab.features import FeatureConfig, PatchFeatureExtractor, extract_features
from exdd_lab.bank.memory import MemoryBank
from exdd_lab.methods.base import Prediction
from exdd_lab.methods.persistence import format_header, new_detector_folder, read_saved_blob, settings_from_saved
from exdd_lab.bank.scoring import ImageScore, anomaly_maps, max_score, reweighting_factor, score_map_max, score_max_patch
from exdd_lab.storage import atomic_write


#: PatchCore's image scores (``PatchCoreSettings.image_score``); the first is the default.
IMAGE_SCORES: Registry[ImageScore] = Registry("PatchCore image score")
IMAGE_SCORES.register("max_patch")(score_max_patch)
IMAGE_SCORES.register("max")(score_map_max)


@IMAGE_SCORES.register("reweighted")
def score_reweighted(patch_grid: np.ndarray, map_max: np.ndarray, extra: dict, settings: PatchCoreSettings) -> np.ndarray:
    """s* times the paper's Eq. 7 weight; the weight needs the bank, so predict computes it during the search."""
    return extra["reweighted"]


@dataclass
class PatchCoreSettings:
    """PatchCore's knobs. ``image_score``: ``"max_patch"`` (max raw patch score, the paper's s*, what the
    reference code patchcore-inspection returns; default), ``"reweighted"`` (s* times the paper's Eq. 7
    weight, as anomalib), or ``"max"`` (max of the smoothed map: better on MTD, worse on the procedural
    default, equal on MPDD -- not all data sets agree, so the reference stays the default; see
    benchmarks/README.md, fidelity table). Coreset defaults: see :mod:`exdd_lab.bank.coreset`."""

    coreset_ratio: float = 0.01
    coreset_projection: int | None = DEFAULT_PROJECTION
    sigma: float = 4.0
    image_score: str = "max_patch"
    reweight_neighbours: int = 9
    seed: int = 0
    batch_size: int = 8
    chunk_images: int = 16  # images per streamed group (16 x 1024 patches: a first-stage coreset chunk)
    coreset_method: str = "two-stage"  # a name of exdd_lab.bank.coreset.CORESET_METHODS; "exact": the textbook greedy (slower)
    bank_index: str = "auto"  # a name of exdd_lab.bank.index.BANK_INDEXES: exact up to a measured bank size, approximate above


class PatchCore:
    """Negative-only detector. ``PatchCore(FeatureConfig(...), PatchCoreSettings(...)).fit(train).predict(test)``."""

    name = "patchcore"

    def __init__(self, features: FeatureConfig | None = None, settings: PatchCoreSettings | None = None,
                 extractor: PatchFeatureExtractor | None = None) -> None:
        self.settings = settings or PatchCoreSettings()
        CORESET_METHODS.check(self.settings.coreset_method)
        BANK_INDEXES.check(self.settings.bank_index)
        IMAGE_SCORES.check(self.settings.image_score)
        self.extractor = extractor or PatchFeatureExtractor(features or FeatureConfig())
        self.bank: MemoryBank | None = None
        self.bank_positions: np.ndarray | None = None  # (M,) position of each bank item: image * h * w + patch
        self.train_paths: list = []
        self.threshold: dict | None = None  # the decision threshold saved with the model (persistence.threshold_record)

    def feature_metadata(self) -> dict:
        return self.extractor.metadata()

    def _groups(self, samples: Sequence[Sample], size: int) -> list[list]:
        paths = [s.image_path for s in samples]
        return [paths[i : i + size] for i in range(0, len(paths), size)]

    def fit(self, train: Sequence[Sample], progress: bool = False) -> PatchCore:
        """Stream the training images' features in groups of ``chunk_images`` through the coreset method
        (``settings.coreset_method``): the two-stage default keeps one group plus its candidates in memory."""
        if not train:
            raise DatasetError("PatchCore has no training images to fit on (the train split is empty)",
                               "check the dataset's train split with `exdd-lab datasets --data DIR --layout LAYOUT`")
        st, g = self.settings, self.extractor.grid_size
        n_total = len(train) * g * g
        sampler = CORESET_METHODS[st.coreset_method](st.coreset_projection, st.seed)
        chunks = (extract_features(self.extractor, group, st.batch_size)
                  for group in tqdm(self._groups(train, st.chunk_images), desc="fit", unit="group", disable=not progress))
        items, self.bank_positions = sampler.run(chunks, n_total, coreset_size(n_total, st.coreset_ratio))
        self.train_paths = [s.image_path for s in train]
        self.bank = MemoryBank(self.extractor.feature_dim, self.feature_metadata(), st.bank_index, st.seed).add(items)
        self.bank.metadata["coreset"] = {"ratio": st.coreset_ratio, "seed": st.seed, "projection_dim": st.coreset_projection,
                                         "method": sampler.description, "chunk_images": st.chunk_images}
        self.bank.index()  # an approximate index is trained here (seconds at 160k items): fitting pays, not the first prediction
        return self

    @property
    def input_size(self) -> int:
        """The side of the square RGB images :meth:`predict_images` takes."""
        return self.extractor.config.image_size

    def predict(self, samples: Sequence[Sample], progress: bool = False, keep_maps: bool = True) -> Prediction:
        """Score images in groups: never all test features at once. ``keep_maps=False`` keeps only
        image and patch scores (maps are made per group and dropped): for scoring many images cheaply."""
        groups = tqdm(self._groups(samples, self.settings.chunk_images), desc="predict", unit="group", disable=not progress)
        return self._predict_features((extract_features(self.extractor, group, self.settings.batch_size) for group in groups),
                                      len(samples), keep_maps)

    def predict_images(self, images: np.ndarray, keep_maps: bool = True) -> Prediction:
        """The same as :meth:`predict` for decoded images ``(N, S, S, 3) uint8`` at :attr:`input_size`, without
        the feature cache: what the archive scorer calls on each batch it decoded."""
        bs = self.settings.batch_size
        return self._predict_features((self.extractor(images[i : i + bs]) for i in range(0, len(images), bs)),
                                      len(images), keep_maps)

    def _predict_features(self, feature_groups: Iterable[torch.Tensor], n_images: int, keep_maps: bool) -> Prediction:
        """Patch scores, maps and image scores from patch features ``(n, h, w, C)`` arriving in groups."""
        if self.bank is None:
            raise RuntimeError("call fit() before predict()")
        g = self.extractor.grid_size
        patch_scores = np.empty((n_images, g, g), np.float32)
        nn_index = np.empty((n_images, g, g), np.int64)
        reweighted = np.empty(n_images, np.float64)
        done = 0
        for feats in feature_groups:
            n, c = feats.shape[0], feats.shape[-1]
            dist, idx = self.bank.search(feats.reshape(-1, c), k=1)
            dist, idx = dist[:, 0].reshape(n, g * g), idx[:, 0].reshape(n, g * g)
            self.bank.refine_worst(feats.reshape(n, g * g, c), dist, idx)  # exact image scores under an approximate index
            patch_scores[done : done + n] = dist.reshape(n, g, g)
            nn_index[done : done + n] = idx.reshape(n, g, g)
            if self.settings.image_score == "reweighted":
                reweighted[done : done + n] = self.reweighted_scores(
                    feats.reshape(n, g * g, c), patch_scores[done : done + n].reshape(n, -1), idx)
            done += n
        size = self.input_size
        maps = np.empty((n_images, size, size) if keep_maps else (0, size, size), np.float32)
        scores = np.empty(n_images, np.float64)
        for start in range(0, n_images, 64):
            part = anomaly_maps(patch_scores[start : start + 64], size, self.settings.sigma)
            scores[start : start + 64] = max_score(part)
            if keep_maps:
                maps[start : start + 64] = part
        extra = {"nn_index": nn_index}
        image_scores = IMAGE_SCORES[self.settings.image_score](patch_scores, scores, {"reweighted": reweighted}, self.settings)
        if self.settings.image_score != "max":
            extra["max_map_score"] = scores  # the map's maximum, kept beside the chosen score
        return Prediction(maps, image_scores, patch_scores, extra)

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

    # ------------------------------------------------------------------ persistence
    def save(self, folder: str | Path) -> Path:
        """The bank (safetensors + JSON), each bank item's position, the settings and the feature setup,
        written as one new folder atomically (no pickle); read back with :meth:`load`."""
        with new_detector_folder(folder, fitted=self.bank is not None) as tmp:
            self.bank.save(tmp / "bank")
            with atomic_write(tmp / "positions.safetensors") as handle:
                handle.write(save_tensors({"bank_positions": torch.from_numpy(np.asarray(self.bank_positions, np.int64))}))
            (tmp / "patchcore.json").write_text(json.dumps({
                **format_header(self.name, self.threshold), "settings": asdict(self.settings),
                "features": asdict(self.extractor.config), "metadata": self.feature_metadata(),
                "train_paths": [str(p) for p in self.train_paths]}, indent=2, default=str))
        return Path(folder)

    @classmethod
    def load(cls, folder: str | Path, extractor: PatchFeatureExtractor | None = None) -> PatchCore:
        """A detector saved by :meth:`save`; refuses another format version or a bank of other features.
        ``extractor``: another front-end with the same features (an exported graph: :class:`exdd_lab.export.runtime.RuntimeFrontEnd`)."""
        folder = Path(folder)
        blob = read_saved_blob(folder, "patchcore.json", cls.name, "PatchCore")
        features = dict(blob["features"])
        features["layers"] = tuple(features["layers"]) if features.get("layers") else features.get("layers")
        model = cls(settings_from_saved(FeatureConfig, features, folder, "feature settings", blob),
                    settings_from_saved(PatchCoreSettings, blob["settings"], folder, "PatchCore settings", blob), extractor)
        model.bank = MemoryBank.load(folder / "bank", model.feature_metadata())
        model.bank_positions = load_tensors(folder / "positions.safetensors")["bank_positions"].numpy()
        model.train_paths = blob["train_paths"]
        model.threshold = blob.get("threshold")
        return model

    def describe(self) -> dict:
        return {"method": self.name, **self.feature_metadata(), "weights_source": self.extractor.weights_source.description,
                **{f"settings.{k}": v for k, v in self.settings.__dict__.items()},
                "bank_patches": len(self.bank) if self.bank is not None else 0,
                "bank_index": self.bank.index_in_use if self.bank is not None else None,
                "bank_mb": round(self.bank.size_mb, 2) if self.bank is not None else 0}
