"""ExDD (explicit dual distribution): a normal bank, a defect bank, and the ratio between them.

fit: the **negative bank** = PatchCore's coreset of normal patches (1%); the **positive bank** = patches
of defect images — synthetic defects (and optionally a few real labelled ones) — coreset 10%:

- ``positive_patches="masked"`` (default): the patches whose cell is at least ``min_mask_fraction``
  masked (0.9 by default), i.e. the defect itself. On MTD a lower threshold (0.3) let boundary cells,
  which look normal, into the bank and cost 0.11 image AUROC (0.80 vs 0.91): a normal-looking patch in
  the positive bank makes normal test patches look defect-like;
- ``positive_patches="crop"`` (ExDD's original): every patch of a tight crop around each defect
  (mask bounding box plus ``crop_margin`` pixels, resized to the input size), background included.

predict: per test patch ``d_neg``, ``d_pos`` and the (neighbourhood-aware) ratio ``R`` of
:mod:`exdd_lab.ratio`; pixel map = ``R`` upsampled and smoothed; image score = the map's maximum, or
ExDD's published score (``image_score="exdd"``). The raw distances, weights and nearest items are kept
in ``Prediction.extra`` so every variant (negative-only, positive-only, plain or weighted ratio) can
be scored from one run, and :meth:`ExDD.explain` can show which bank items a pixel matched.
Taught in ``notebooks/04_dual_banks_ratio_scoring.ipynb``.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save
from tqdm.auto import tqdm

from exdd_lab.coreset import DEFAULT_PROJECTION, coreset_size, greedy_coreset
from exdd_lab.data.imageio import load_image, load_masks, sample_mask
from exdd_lab.data.records import Sample
from exdd_lab.errors import ExddError, SettingsError
from exdd_lab.features import FeatureConfig, PatchFeatureExtractor
from exdd_lab.features.patch_labels import patch_labels
from exdd_lab.memory import BankError, MemoryBank
from exdd_lab.methods.base import Prediction
from exdd_lab.methods.persistence import check_format, format_header, settings_from_saved
from exdd_lab.methods.patchcore import PatchCore, PatchCoreSettings
from exdd_lab.ratio import bank_support, exdd_image_score, neighbourhood_weights, ratio_scores
from exdd_lab.scoring import anomaly_maps, max_score
from exdd_lab.storage import atomic_directory, atomic_write

VARIANTS = ("negative", "positive", "ratio", "ratio_na")


@dataclass
class ExddSettings:
    """ExDD's knobs (defaults as the ExDD code where it states them)."""

    negative_ratio: float = 0.01
    positive_ratio: float = 0.10
    positive_patches: str = "masked"  # or "crop"
    min_mask_fraction: float = 0.9  # only cells (almost) fully inside a defect: see notebook 04
    crop_margin: int = 8
    neighbourhood_aware: bool = True
    support_k: int = 9
    temperature: float | None = None  # None: sqrt(feature dimension)
    eps: float = 1e-3
    sigma: float = 4.0
    image_score: str = "max"  # or "exdd"
    coreset_projection: int | None = DEFAULT_PROJECTION
    seed: int = 0
    batch_size: int = 8
    chunk_images: int = 16


def positive_patches(extractor: PatchFeatureExtractor, defects: Sequence[Sample], settings: ExddSettings,
                     progress: bool = False) -> tuple[torch.Tensor, np.ndarray]:
    """Features ``(P, C)`` of defect patches and their sources ``(P, 7)``: sample index, patch row and
    column, and the box ``y0, y1, x0, x1`` (image pixels) the patch grid covered."""
    size, g = extractor.config.image_size, extractor.grid_size
    missing = [s.image_path for s in defects if s.mask_path is None]
    if missing:
        raise ExddError(f"defect image {missing[0]} has no mask", "the positive bank needs pixel masks for its defects")
    feats, sources = [], []
    if settings.positive_patches == "masked":
        for start in tqdm(range(0, len(defects), 64), desc="positive bank", disable=not progress):
            part = defects[start : start + 64]
            f = extractor.extract([s.image_path for s in part], settings.batch_size)
            keep = patch_labels(load_masks([s.mask_path for s in part], size=size, image_paths=[s.image_path for s in part]), g, settings.min_mask_fraction)
            n, y, x = np.nonzero(keep)
            feats.append(f[torch.from_numpy(keep)])
            sources.append(np.stack([n + start, y, x] + [np.full_like(n, v) for v in (0, size, 0, size)], 1))
    elif settings.positive_patches == "crop":
        for i, s in enumerate(tqdm(defects, desc="positive bank (crops)", disable=not progress)):
            image, mask = load_image(s.image_path, size), sample_mask(s, size)
            if not mask.any():
                continue
            ys, xs = np.nonzero(mask)
            m = settings.crop_margin
            y0, y1 = max(0, ys.min() - m), min(size, ys.max() + 1 + m)
            x0, x1 = max(0, xs.min() - m), min(size, xs.max() + 1 + m)
            crop = np.array(Image.fromarray(image[y0:y1, x0:x1]).resize((size, size), Image.BILINEAR))
            feats.append(extractor(crop[None]).reshape(-1, extractor.feature_dim))
            yy, xx = np.divmod(np.arange(g * g), g)
            sources.append(np.stack([np.full_like(yy, i), yy, xx] + [np.full_like(yy, v) for v in (y0, y1, x0, x1)], 1))
    else:
        raise ValueError(f"positive_patches must be 'masked' or 'crop', not {settings.positive_patches!r}")
    if not feats or sum(len(f) for f in feats) == 0:
        raise BankError(
            f"the positive bank is empty: no patch of the {len(defects)} defect image(s) is at least "
            f"{settings.min_mask_fraction:.0%} masked",
            "use more or larger synthetic defects, lower min_mask_fraction, or positive_patches='crop'",
        )
    return torch.cat(feats).float(), np.concatenate(sources).astype(np.int64)


class ExDD:
    """Dual-bank detector. ``ExDD(features, settings, defects=synthetic_samples).fit(train).predict(test)``.

    ``defects``: defect images with masks for the positive bank (a synthetic set's ``test`` split, plus any
    real labelled training defects). Never pass images you will evaluate on.
    """

    name = "exdd"

    def __init__(self, features: FeatureConfig | None = None, settings: ExddSettings | None = None,
                 defects: Sequence[Sample] = (), extractor: PatchFeatureExtractor | None = None) -> None:
        self.settings = settings or ExddSettings()
        if self.settings.image_score not in ("max", "exdd"):
            raise SettingsError(f"unknown ExDD image score {self.settings.image_score!r}", "use 'max' (default) or 'exdd'")
        self.extractor = extractor or PatchFeatureExtractor(features or FeatureConfig())
        self.defects = list(defects)
        self.negative: MemoryBank | None = None
        self.positive: MemoryBank | None = None
        self.negative_sources = np.zeros((0, 7), np.int64)
        self.positive_sources = np.zeros((0, 7), np.int64)
        self.train_paths: list[str] = []
        self._support: dict[str, np.ndarray] = {}
        self.synthesis_info: dict = {}  # how the defects were made (generator, count, seconds), for metrics.json

    @property
    def temperature(self) -> float:
        return self.settings.temperature or math.sqrt(self.extractor.feature_dim)

    def feature_metadata(self) -> dict:
        cfg = self.extractor.config
        return {"backbone": cfg.backbone, "layers": list(cfg.resolved_layers), "image_size": cfg.image_size,
                "projection_dim": cfg.projection_dim, "weights": self.extractor.weights_source.kind}

    def fit(self, train: Sequence[Sample], progress: bool = False) -> ExDD:
        """Negative bank from ``train`` (normal images), positive bank from ``self.defects``."""
        if not self.defects:
            raise ExddError("ExDD needs defect images for its positive bank",
                            "pass defects= a synthetic set (exdd_lab.synthesis) and/or real labelled training defects")
        return self.fit_negative(train, progress).refit_positive(self.defects, progress)

    def fit_negative(self, train: Sequence[Sample], progress: bool = False) -> ExDD:
        """Only the negative bank (PatchCore's coreset of ``train``), with each item's source patch."""
        st = self.settings
        patchcore = PatchCore(extractor=self.extractor, settings=PatchCoreSettings(
            coreset_ratio=st.negative_ratio, coreset_projection=st.coreset_projection, seed=st.seed,
            batch_size=st.batch_size, chunk_images=st.chunk_images)).fit(train, progress)
        self.negative = patchcore.bank
        g = self.extractor.grid_size
        pos = patchcore.bank_positions
        size = self.extractor.config.image_size
        self.negative_sources = np.stack([pos // (g * g), (pos % (g * g)) // g, pos % g]
                                         + [np.full_like(pos, v) for v in (0, size, 0, size)], 1)
        self.train_paths = [str(p) for p in patchcore.train_paths]
        self._support = {}
        return self

    def refit_positive(self, defects: Sequence[Sample], progress: bool = False) -> ExDD:
        """Rebuild only the positive bank from ``defects`` (the negative bank is kept): for count sweeps."""
        st = self.settings
        self.defects = list(defects)
        feats, sources = positive_patches(self.extractor, self.defects, st, progress)
        if st.positive_ratio < 1 and len(feats) > 1:
            keep = np.sort(greedy_coreset(feats, coreset_size(len(feats), st.positive_ratio), st.coreset_projection, st.seed))
            feats, sources = feats[torch.from_numpy(keep)].contiguous(), sources[keep]
        self.positive = MemoryBank(self.extractor.feature_dim, dict(self.feature_metadata(), bank="positive")).add(feats)
        self.positive_sources = sources
        self._support.pop("positive", None)
        return self

    def support(self, which: str) -> np.ndarray:
        """Each bank item's ``support_k`` nearest items in its own bank (computed once)."""
        if which not in self._support:
            bank = self.negative if which == "negative" else self.positive
            self._support[which] = bank_support(bank.items, self.settings.support_k, bank.search)
        return self._support[which]

    def _score_group(self, feats: torch.Tensor) -> dict[str, np.ndarray]:
        n, g, _, c = feats.shape
        q = feats.reshape(-1, c)
        out = {}
        for which, bank in (("neg", self.negative), ("pos", self.positive)):
            d, idx = bank.search(q, k=1)
            out[f"d_{which}"], out[f"nn_{which}"] = d[:, 0], idx[:, 0]
            out[f"w_{which}"] = (neighbourhood_weights(q, bank.items, idx[:, 0], self.support("negative" if which == "neg" else "positive"),
                                                       self.temperature)
                                 if self.settings.neighbourhood_aware else np.ones(len(q)))
        return {k: v.reshape(n, g, g) for k, v in out.items()}

    def predict(self, samples: Sequence[Sample], progress: bool = False, keep_maps: bool = True) -> Prediction:
        """Ratio maps and image scores; ``extra`` holds ``d_neg, d_pos, w_neg, w_pos, nn_neg, nn_pos`` grids
        ``(N, h, w)``, from which :func:`variant_grid` gives every other score (PatchCore's included)."""
        if self.negative is None or self.positive is None:
            raise RuntimeError("call fit() before predict()")
        st, g = self.settings, self.extractor.grid_size
        grids: dict[str, list[np.ndarray]] = {}
        paths = [s.image_path for s in samples]
        for start in tqdm(range(0, len(paths), st.chunk_images), desc="predict", unit="group", disable=not progress):
            for k, v in self._score_group(self.extractor.extract(paths[start : start + st.chunk_images], st.batch_size)).items():
                grids.setdefault(k, []).append(v)
        extra = {k: np.concatenate(v) if v else np.zeros((0, g, g)) for k, v in grids.items()}
        ratio = variant_grid(extra, "ratio_na" if st.neighbourhood_aware else "ratio", st.eps).astype(np.float32)
        size = self.extractor.config.image_size
        maps = anomaly_maps(ratio, size, st.sigma) if len(ratio) else np.zeros((0, size, size), np.float32)
        scores = max_score(maps) if len(maps) else np.zeros(0)
        if st.image_score == "exdd":
            extra["max_map_score"] = scores
            scores = exdd_image_score(extra["d_neg"].reshape(len(ratio), -1), extra["d_pos"].reshape(len(ratio), -1),
                                      extra["w_neg"].reshape(len(ratio), -1), extra["w_pos"].reshape(len(ratio), -1), st.eps)
        return Prediction(maps if keep_maps else np.zeros((0, size, size), np.float32), scores, ratio, extra)

    def predict_negative(self, samples: Sequence[Sample]) -> np.ndarray:
        """``d_neg`` grids ``(N, h, w)`` from the negative bank alone (PatchCore's patch scores); needs only
        :meth:`fit_negative`."""
        if self.negative is None:
            raise RuntimeError("call fit() or fit_negative() before predict_negative()")
        st, g = self.settings, self.extractor.grid_size
        paths = [s.image_path for s in samples]
        out = np.empty((len(paths), g, g), np.float32)
        for start in range(0, len(paths), st.chunk_images):
            feats = self.extractor.extract(paths[start : start + st.chunk_images], st.batch_size)
            d, _ = self.negative.search(feats.reshape(-1, feats.shape[-1]), k=1)
            out[start : start + len(feats)] = d[:, 0].reshape(len(feats), g, g)
        return out

    def explain(self, sample: Sample) -> dict[str, np.ndarray]:
        """The three maps ``d_neg``, ``d_pos``, ``ratio`` (smoothed, image size) of one image, plus the grids."""
        pred = self.predict([sample])
        size = self.extractor.config.image_size
        out = {name: anomaly_maps(pred.extra[name], size, self.settings.sigma)[0] for name in ("d_neg", "d_pos")}
        out["ratio"] = pred.maps[0]
        out["grids"] = {k: v[0] for k, v in pred.extra.items() if v.ndim == 3}
        return out

    def nearest_items(self, explanation: dict, y: int, x: int) -> dict[str, dict]:
        """For pixel ``(y, x)``: the nearest normal and defect bank items, as source image path and pixel box."""
        size, g = self.extractor.config.image_size, self.extractor.grid_size
        py, px = min(g - 1, y * g // size), min(g - 1, x * g // size)
        out = {}
        for which, sources, paths in (("neg", self.negative_sources, self.train_paths),
                                      ("pos", self.positive_sources, [str(s.image_path) for s in self.defects])):
            item = int(explanation["grids"][f"nn_{which}"][py, px])
            i, sy, sx, y0, y1, x0, x1 = (int(v) for v in sources[item])
            cell_h, cell_w = (y1 - y0) / g, (x1 - x0) / g  # one patch cell, mapped back to source pixels
            box = (int(y0 + sy * cell_h), int(y0 + (sy + 1) * cell_h), int(x0 + sx * cell_w), int(x0 + (sx + 1) * cell_w))
            out["normal" if which == "neg" else "defect"] = {
                "path": paths[i] if i < len(paths) else "", "box": box,
                "distance": float(explanation["grids"][f"d_{which}"][py, px])}
        return out

    # ------------------------------------------------------------------ persistence
    def save(self, folder: str | Path) -> Path:
        """Both banks, their sources and the settings, written as one folder atomically (no pickle)."""
        folder = Path(folder)
        if folder.exists():
            raise ExddError(f"{folder} already exists", "save to a new folder (detectors are never overwritten in place)")
        if self.negative is None:
            raise RuntimeError("call fit() before save()")
        with atomic_directory(folder) as tmp:
            self.negative.save(tmp / "negative")
            self.positive.save(tmp / "positive")
            with atomic_write(tmp / "sources.safetensors") as handle:
                handle.write(save({"negative": torch.from_numpy(self.negative_sources),
                                   "positive": torch.from_numpy(self.positive_sources)}))
            (tmp / "exdd.json").write_text(json.dumps({
                **format_header(self.name), "settings": asdict(self.settings), "features": asdict(self.extractor.config),
                "metadata": self.feature_metadata(), "train_paths": self.train_paths,
                "defects": [s.to_dict() for s in self.defects]}, indent=2, default=str))
        return folder

    @classmethod
    def load(cls, folder: str | Path, extractor: PatchFeatureExtractor | None = None) -> ExDD:
        """A detector saved by :meth:`save`; the extractor must match the banks' backbone and layers."""
        folder = Path(folder)
        if not (folder / "exdd.json").is_file():
            raise ExddError(f"{folder} holds no saved ExDD detector (exdd.json missing)", "save one with detector.save(folder)")
        blob = json.loads((folder / "exdd.json").read_text())
        check_format(blob, folder)
        features = blob["features"]
        features["layers"] = tuple(features["layers"]) if features.get("layers") else features.get("layers")
        extractor = extractor or PatchFeatureExtractor(settings_from_saved(FeatureConfig, features, folder, "feature settings", blob))
        defects = [Sample(Path(d["image_path"]), d["label"], d["defect_type"], Path(d["mask_path"]) if d["mask_path"] else None)
                   for d in blob["defects"]]
        model = cls(settings=settings_from_saved(ExddSettings, blob["settings"], folder, "ExDD settings", blob),
                    defects=defects, extractor=extractor)
        expect = model.feature_metadata()
        model.negative = MemoryBank.load(folder / "negative", expect)
        model.positive = MemoryBank.load(folder / "positive", expect)
        sources = load_file(folder / "sources.safetensors")
        model.negative_sources, model.positive_sources = sources["negative"].numpy(), sources["positive"].numpy()
        model.train_paths = blob["train_paths"]
        return model

    def describe(self) -> dict:
        return {"method": self.name, **self.feature_metadata(), "weights_source": self.extractor.weights_source.description,
                **{f"settings.{k}": v for k, v in asdict(self.settings).items()},
                "n_defect_images": len(self.defects), **{f"synthesis.{k}": v for k, v in self.synthesis_info.items()},
                "negative_patches": len(self.negative) if self.negative is not None else 0,
                "positive_patches": len(self.positive) if self.positive is not None else 0}


def variant_grid(extra: dict[str, np.ndarray], variant: str, eps: float = 1e-3) -> np.ndarray:
    """Patch-score grids of one scoring variant from a prediction's ``extra``.

    ``negative``: ``d_neg`` (PatchCore); ``positive``: ``-d_pos`` (closeness to known defects alone);
    ``ratio``: ``d_neg / (d_pos + eps)``; ``ratio_na``: the neighbourhood-aware ratio.
    """
    if variant == "negative":
        return extra["d_neg"]
    if variant == "positive":
        return -extra["d_pos"]
    if variant == "ratio":
        return ratio_scores(extra["d_neg"], extra["d_pos"], eps)
    if variant == "ratio_na":
        return ratio_scores(extra["w_neg"] * extra["d_neg"], extra["w_pos"] * extra["d_pos"], eps)
    raise ValueError(f"variant must be one of {VARIANTS}, not {variant!r}")
