"""ExDD (explicit dual distribution): a normal bank, a defect bank, and the ratio between them.

fit: the **negative bank** = PatchCore's coreset of normal patches (1%); the **positive bank** = patches
of defect images — synthetic defects (and optionally a few real labelled ones) — coreset 10%, chosen by
``positive_patches`` (:mod:`exdd_lab.methods.exdd.positive_patches`: ``"masked"``, the cells the defect fills,
by default; ``"crop"``, ExDD's original crop around each defect). A normal-looking patch in the
positive bank makes normal test patches look defect-like.

predict: per test patch ``d_neg``, ``d_pos`` and the score of :mod:`exdd_lab.methods.exdd.ratio`: ``score="gated"``
(default: PatchCore's ``d_neg``, raised where a patch is unusual *and* close to a known defect, with
both thresholds measured on training normals at fit time) or ExDD's published ratio
(``"ratio_na"``, neighbourhood-aware; ``"ratio"``, plain); pixel map = the score grid upsampled and
smoothed; image score = the largest patch score (as PatchCore), the map's maximum, or ExDD's
published score (``image_score="exdd"``). The raw distances, weights and nearest items are kept
in ``Prediction.extra`` so every variant (negative-only, positive-only, plain or weighted ratio) can
be scored from one run, and :meth:`ExDD.explain` can show which bank items a pixel matched.
Taught in ``notebooks/04_dual_banks_ratio_scoring.ipynb``.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from safetensors.torch import load_file, save
from tqdm.auto import tqdm

from exdd_lab.components.registry import Registry
from exdd_lab.bank.index import BANK_INDEXES
from exdd_lab.bank.coreset import DEFAULT_PROJECTION, coreset_size, greedy_coreset
from exdd_lab.data.records import Sample
from exdd_lab.errors import ExddError, SettingsError
from exdd_lab.features import FeatureConfig, PatchFeatureExtractor, extract_features
from exdd_lab.bank.memory import MemoryBank
from exdd_lab.methods.base import Prediction
from exdd_lab.methods.persistence import format_header, new_detector_folder, read_saved_blob, settings_from_saved
from exdd_lab.methods.patchcore import PatchCore, PatchCoreSettings
from exdd_lab.methods.exdd.patch_sources import PatchSources
from exdd_lab.methods.exdd.positive_patches import ACCEPTS_MASKLESS, POSITIVE_PATCHES, positive_patches
from exdd_lab.methods.exdd.ratio import (
    NormalStatistics, bank_support, exdd_image_score, gated_scores, neighbourhood_weights, normal_statistics, ratio_scores,
    typical_worst_patch,
)
from exdd_lab.bank.scoring import ImageScore, anomaly_maps, max_score, score_map_max, score_max_patch
from exdd_lab.storage import atomic_write

#: Patch scores from the two banks' distances (``ExddSettings.score`` picks the detector's map): the kit's
#: default, ExDD's published two, then the single-bank references. Registered below.
VARIANTS: Registry[Callable] = Registry("ExDD score")
#: ExDD's image scores (``ExddSettings.image_score``); "exdd" is registered below.
IMAGE_SCORES: Registry[ImageScore] = Registry("ExDD image score")
IMAGE_SCORES.register("max_patch")(score_max_patch)
IMAGE_SCORES.register("max")(score_map_max)


@dataclass
class ExddSettings:
    """ExDD's knobs (defaults as the ExDD code where it states them)."""

    negative_ratio: float = 0.01
    positive_ratio: float = 0.10
    positive_patches: str = "masked"  # a name of exdd_lab.methods.exdd.positive_patches.POSITIVE_PATCHES ("crop": ExDD's original)
    min_mask_fraction: float = 0.9  # only cells (almost) fully inside a defect: see notebook 04
    crop_margin: int = 8
    score: str = "gated"  # "ratio_na" / "ratio": ExDD's published formula (notebook 04 shows why it changed)
    strength: float = 1.0  # gated: a patch's score rises by at most this factor of d_neg
    defect_quantile: float = 0.01  # gated: "close to a defect" = nearer than 99% of normal patches get (measured, notebook 04)
    calibration_images: int = 100  # gated: training normals (evenly spaced) that measure the two thresholds
    purify_positive: bool = True  # drop defect patches no more unusual than a normal image's typical worst patch
    neighbourhood_aware: bool = True  # compute Eq. 7 weights (needed by "ratio_na" and image_score="exdd")
    support_k: int = 9
    temperature: float | None = None  # None: sqrt(feature dimension)
    eps: float = 1e-3
    sigma: float = 4.0
    image_score: str = "max_patch"  # largest patch score (PatchCore's reference); "max": of the map; "exdd"
    coreset_projection: int | None = DEFAULT_PROJECTION
    seed: int = 0
    batch_size: int = 8
    chunk_images: int = 16
    bank_index: str = "auto"  # both banks: a name of exdd_lab.bank.index.BANK_INDEXES (exact up to a measured size)


class ExDD:
    """Dual-bank detector. ``ExDD(features, settings, defects=synthetic_samples).fit(train).predict(test)``.

    ``defects``: defect images with masks for the positive bank (a synthetic set's ``test`` split, plus any
    real labelled training defects). Never pass images you will evaluate on.
    """

    name = "exdd"

    def __init__(self, features: FeatureConfig | None = None, settings: ExddSettings | None = None,
                 defects: Sequence[Sample] = (), extractor: PatchFeatureExtractor | None = None) -> None:
        self.settings = settings or ExddSettings()
        st = self.settings
        IMAGE_SCORES.check(st.image_score)
        VARIANTS.check(st.score)
        POSITIVE_PATCHES.check(st.positive_patches)
        BANK_INDEXES.check(st.bank_index)
        if (st.score == "ratio_na" or st.image_score == "exdd") and not st.neighbourhood_aware:
            raise SettingsError(f"score {st.score!r} / image score {st.image_score!r} need the neighbourhood weights",
                                "keep neighbourhood_aware=True, or use score='ratio' or 'gated'")
        if st.strength < 0 or not 0 < st.defect_quantile < 1 or st.calibration_images < 1:
            raise SettingsError(f"gated score knobs out of range: strength={st.strength}, defect_quantile={st.defect_quantile}, "
                                f"calibration_images={st.calibration_images}",
                                "strength >= 0, 0 < defect_quantile < 1, calibration_images >= 1")
        self.extractor = extractor or PatchFeatureExtractor(features or FeatureConfig())
        self.defects = list(defects)
        self.negative: MemoryBank | None = None
        self.positive: MemoryBank | None = None
        self.negative_sources = PatchSources.empty()  # where each bank item came from (image, cell, box)
        self.positive_sources = PatchSources.empty()
        self.train_paths: list[str] = []
        self._support: dict[str, np.ndarray] = {}
        self.normal_stats: NormalStatistics | None = None  # the gated score's thresholds, set by refit_positive
        self._calibration_d_neg: np.ndarray | None = None
        self.purified = 0  # defect patches the purification dropped from the last positive bank
        self.synthesis_info: dict = {}  # how the defects were made (generator, count, seconds), for metrics.json
        self.threshold: dict | None = None  # the decision threshold saved with the model (persistence.threshold_record)
        self.maskless_floor: float | None = None  # set_maskless_floor: the cells of maskless defects that count

    @property
    def temperature(self) -> float:
        return self.settings.temperature or math.sqrt(self.extractor.feature_dim)

    def feature_metadata(self) -> dict:
        return self.extractor.metadata()

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
            batch_size=st.batch_size, chunk_images=st.chunk_images, bank_index=st.bank_index)).fit(train, progress)
        self.negative = patchcore.bank
        self.negative_sources = PatchSources.from_positions(patchcore.bank_positions, self.extractor.grid_size,
                                                            self.extractor.config.image_size)
        self.train_paths = [str(p) for p in patchcore.train_paths]
        self._support = {}
        self._calibration_d_neg = None
        return self

    def refit_positive(self, defects: Sequence[Sample], progress: bool = False) -> ExDD:
        """Rebuild only the positive bank from ``defects`` (the negative bank is kept): for count sweeps.

        With ``purify_positive`` a defect patch enters the bank only when it is itself unusual: its ``d_neg``
        above the typical worst patch of a training normal. A normal-looking patch inside a defect mask
        (real masks are drawn generously; synthetic defects keep normal texture) would otherwise make
        normal test patches look defect-like. The gated score's thresholds are measured here too.
        """
        st = self.settings
        self.defects = list(defects)
        maskless = np.array([d.mask_path is None for d in self.defects], bool)
        if maskless.any() and st.positive_patches in ACCEPTS_MASKLESS and (not st.purify_positive or self.maskless_floor is None):
            raise SettingsError("defects without a mask (reviewed images) need purify_positive=True and a floor from "
                                "held-out normals", "call set_maskless_floor(held_out_normals) after fit_negative "
                                "(exdd-lab fit does, with --held-out N or --held-out-dir)")
        feats, sources = positive_patches(self.extractor, self.defects, st, progress)
        self.purified = 0
        if st.purify_positive:
            d_neg = self.negative.search(feats, k=1)[0][:, 0]
            floor = np.full(len(d_neg), typical_worst_patch(self.calibration_d_neg()))
            if maskless.any():  # a maskless image's cell counts only if it alone would flag a normal-only threshold
                floor[maskless[sources.image]] = self.maskless_floor
            keep = d_neg > floor
            if not keep.any():  # nothing unusual at all: keep the most unusual patch, so the bank is not empty
                keep[np.argmax(d_neg)] = True
            self.purified = int((~keep).sum())
            feats, sources = feats[torch.from_numpy(keep)].contiguous(), sources[keep]
        if st.positive_ratio < 1 and len(feats) > 1:
            keep = np.sort(greedy_coreset(feats, coreset_size(len(feats), st.positive_ratio), st.coreset_projection, st.seed))
            feats, sources = feats[torch.from_numpy(keep)].contiguous(), sources[keep]
        self.positive = MemoryBank(self.extractor.feature_dim, dict(self.feature_metadata(), bank="positive"),
                                   st.bank_index, st.seed).add(feats)
        self.positive_sources = sources
        self.positive.index()  # built while fitting, like the negative bank's
        self._support.pop("positive", None)
        self.normal_stats = self._measure_normals()
        return self

    def set_maskless_floor(self, held_out: Sequence[Sample], quantile: float = 0.99) -> float:
        """The floor a cell of a maskless defect image must exceed to enter the positive bank: the ``quantile`` of
        the held-out normals' worst-patch ``d_neg`` (the normal-only threshold of PatchCore's image score).

        Held-out normals, not the training ones: the training images built the negative bank, so their worst
        patches run far lower than a new normal's (on the tiny test set 17 against 22-28) and would let normal
        cells of a defect image in. Needs :meth:`fit_negative`."""
        if not held_out:
            raise SettingsError("no held-out normals to set the maskless floor on",
                                "hold out normal images that were not fitted (exdd-lab fit --held-out N)")
        worst = self.predict_negative(held_out).reshape(len(held_out), -1).max(axis=1)
        self.maskless_floor = float(np.quantile(worst.astype(np.float64), quantile))
        return self.maskless_floor

    def calibration_paths(self) -> list[str]:
        """Up to ``calibration_images`` training normals, evenly spaced over the training list."""
        n = self.settings.calibration_images
        step = max(1, len(self.train_paths) // n)
        return self.train_paths[::step][:n]

    def _calibration_grids(self, bank: MemoryBank) -> np.ndarray:
        """Nearest-item distances ``(N, h, w)`` of the calibration normals' patches to ``bank``."""
        st, paths, out = self.settings, self.calibration_paths(), []
        for start in range(0, len(paths), st.chunk_images):
            feats = extract_features(self.extractor, paths[start : start + st.chunk_images], st.batch_size)
            out.append(bank.search(feats.reshape(-1, feats.shape[-1]), k=1)[0][:, 0].reshape(feats.shape[:3]))
        return np.concatenate(out) if out else np.zeros((0, self.extractor.grid_size, self.extractor.grid_size))

    def calibration_d_neg(self) -> np.ndarray:
        """The calibration normals' ``d_neg`` grids (computed once per negative bank).

        The training images built the negative bank, so their ``d_neg`` runs a little lower than a new
        normal image's: the gate and the purification err towards letting positive evidence count.
        """
        if self._calibration_d_neg is None:
            self._calibration_d_neg = self._calibration_grids(self.negative)
        return self._calibration_d_neg

    def _measure_normals(self) -> NormalStatistics | None:
        """The gated score's two thresholds from the calibration normals' ``d_neg`` and ``d_pos`` grids."""
        if not self.train_paths:
            return None
        return normal_statistics(self.calibration_d_neg(), self._calibration_grids(self.positive), self.settings.defect_quantile)

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

    @property
    def input_size(self) -> int:
        """The side of the square RGB images :meth:`predict_images` takes."""
        return self.extractor.config.image_size

    def predict(self, samples: Sequence[Sample], progress: bool = False, keep_maps: bool = True) -> Prediction:
        """Ratio maps and image scores; ``extra`` holds ``d_neg, d_pos, w_neg, w_pos, nn_neg, nn_pos`` grids
        ``(N, h, w)``, from which :func:`variant_grid` gives every other score (PatchCore's included)."""
        st = self.settings
        paths = [s.image_path for s in samples]
        starts = tqdm(range(0, len(paths), st.chunk_images), desc="predict", unit="group", disable=not progress)
        return self._predict_features((extract_features(self.extractor, paths[i : i + st.chunk_images], st.batch_size)
                                       for i in starts), keep_maps)

    def predict_images(self, images: np.ndarray, keep_maps: bool = True) -> Prediction:
        """The same as :meth:`predict` for decoded images ``(N, S, S, 3) uint8`` at :attr:`input_size`, without
        the feature cache (the archive scorer's path)."""
        bs = self.settings.batch_size
        return self._predict_features((self.extractor(images[i : i + bs]) for i in range(0, len(images), bs)), keep_maps)

    def _predict_features(self, feature_groups: Iterable[torch.Tensor], keep_maps: bool) -> Prediction:
        if self.negative is None or self.positive is None:
            raise RuntimeError("call fit() before predict()")
        st, g = self.settings, self.extractor.grid_size
        grids: dict[str, list[np.ndarray]] = {}
        for feats in feature_groups:
            for k, v in self._score_group(feats).items():
                grids.setdefault(k, []).append(v)
        extra = {k: np.concatenate(v) if v else np.zeros((0, g, g)) for k, v in grids.items()}
        ratio = variant_grid(extra, st.score, st.eps, self.normal_stats, st.strength).astype(np.float32)
        size = self.input_size
        maps = anomaly_maps(ratio, size, st.sigma) if len(ratio) else np.zeros((0, size, size), np.float32)
        map_max = max_score(maps) if len(maps) else np.zeros(0)
        scores = IMAGE_SCORES[st.image_score](ratio, map_max, extra, st) if len(ratio) else np.zeros(0)
        if st.image_score != "max":
            extra["max_map_score"] = map_max  # the map's maximum, kept beside the chosen score
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
            feats = extract_features(self.extractor, paths[start : start + st.chunk_images], st.batch_size)
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
            i = int(sources.image[item])
            out["normal" if which == "neg" else "defect"] = {
                "path": paths[i] if i < len(paths) else "", "box": sources.cell_box(item, g),
                "distance": float(explanation["grids"][f"d_{which}"][py, px])}
        return out

    # ------------------------------------------------------------------ persistence
    def save(self, folder: str | Path) -> Path:
        """Both banks, their sources and the settings, written as one folder atomically (no pickle)."""
        with new_detector_folder(folder, fitted=self.negative is not None) as tmp:
            self.negative.save(tmp / "negative")
            self.positive.save(tmp / "positive")
            with atomic_write(tmp / "sources.safetensors") as handle:
                handle.write(save({"negative": torch.from_numpy(self.negative_sources.to_array()),
                                   "positive": torch.from_numpy(self.positive_sources.to_array())}))
            (tmp / "exdd.json").write_text(json.dumps({
                **format_header(self.name, self.threshold), "settings": asdict(self.settings), "features": asdict(self.extractor.config),
                "metadata": self.feature_metadata(), "train_paths": self.train_paths,
                "normal_stats": self.normal_stats.to_dict() if self.normal_stats else None,
                "defects": [s.to_dict() for s in self.defects]}, indent=2, default=str))
        return Path(folder)

    @classmethod
    def load(cls, folder: str | Path, extractor: PatchFeatureExtractor | None = None) -> ExDD:
        """A detector saved by :meth:`save`; the extractor must match the banks' backbone and layers."""
        folder = Path(folder)
        blob = read_saved_blob(folder, "exdd.json", cls.name, "ExDD")
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
        model.negative_sources = PatchSources.from_array(sources["negative"].numpy())
        model.positive_sources = PatchSources.from_array(sources["positive"].numpy())
        model.train_paths = blob["train_paths"]
        if "normal_stats" not in blob:  # saved before the gated score: its ratio maps would silently change
            raise ExddError(f"{folder} holds an ExDD detector saved before the gated score (no normal_stats in exdd.json)",
                            "re-fit and save it with this version (`exdd-lab evaluate --method exdd --save-model NEW_DIR`)")
        stats = blob["normal_stats"]
        model.normal_stats = NormalStatistics(**stats) if stats else None
        model.threshold = blob.get("threshold")
        return model

    def describe(self) -> dict:
        return {"method": self.name, **self.feature_metadata(), "weights_source": self.extractor.weights_source.description,
                **{f"settings.{k}": v for k, v in asdict(self.settings).items()},
                "n_defect_images": len(self.defects),
                **{f"normal_stats.{k}": v for k, v in (self.normal_stats.to_dict() if self.normal_stats else {}).items()}, **{f"synthesis.{k}": v for k, v in self.synthesis_info.items()},
                "negative_patches": len(self.negative) if self.negative is not None else 0,
                "positive_patches": len(self.positive) if self.positive is not None else 0,
                "negative_index": self.negative.index_in_use if self.negative is not None else None,
                "positive_index": self.positive.index_in_use if self.positive is not None else None,
                "positive_patches_purified": self.purified}


def variant_grid(extra: dict[str, np.ndarray], variant: str, eps: float = 1e-3, stats: NormalStatistics | None = None,
                 strength: float = 1.0) -> np.ndarray:
    """Patch-score grids of one scoring variant (a name of :data:`VARIANTS`) from a prediction's ``extra``."""
    return VARIANTS[variant](extra, eps, stats, strength)


@VARIANTS.register("gated")
def gated_variant(extra: dict, eps: float, stats: NormalStatistics | None, strength: float) -> np.ndarray:
    """:func:`~exdd_lab.methods.exdd.ratio.gated_scores` with the detector's ``normal_stats`` (the kit's default)."""
    if stats is None:
        raise ValueError("the gated variant needs the detector's normal_stats (set by fit)")
    return gated_scores(extra["d_neg"], extra["d_pos"], stats, strength)


@VARIANTS.register("ratio_na")
def ratio_na_variant(extra: dict, eps: float, stats: NormalStatistics | None, strength: float) -> np.ndarray:
    """The neighbourhood-aware ratio, ExDD's published score."""
    return ratio_scores(extra["w_neg"] * extra["d_neg"], extra["w_pos"] * extra["d_pos"], eps)


@VARIANTS.register("ratio")
def ratio_variant(extra: dict, eps: float, stats: NormalStatistics | None, strength: float) -> np.ndarray:
    """``d_neg / (d_pos + eps)``."""
    return ratio_scores(extra["d_neg"], extra["d_pos"], eps)


@VARIANTS.register("negative")
def negative_variant(extra: dict, eps: float, stats: NormalStatistics | None, strength: float) -> np.ndarray:
    """``d_neg``: PatchCore's patch score."""
    return extra["d_neg"]


@VARIANTS.register("positive")
def positive_variant(extra: dict, eps: float, stats: NormalStatistics | None, strength: float) -> np.ndarray:
    """``-d_pos``: closeness to known defects alone."""
    return -extra["d_pos"]


@IMAGE_SCORES.register("exdd")
def score_exdd(patch_grid: np.ndarray, map_max: np.ndarray, extra: dict, settings: ExddSettings) -> np.ndarray:
    """ExDD's published image score: the bank-distance ratio of the worst patches (:func:`~exdd_lab.methods.exdd.ratio.exdd_image_score`)."""
    n = len(patch_grid)
    return exdd_image_score(extra["d_neg"].reshape(n, -1), extra["d_pos"].reshape(n, -1),
                            extra["w_neg"].reshape(n, -1), extra["w_pos"].reshape(n, -1), settings.eps)
