"""An on-disk cache of patch features, keyed by image content and feature configuration.

Layout: ``<cache>/features/<config hash>/<image sha1>.safetensors``, one file per image, each
written atomically, plus ``config.json`` saying what the hash stands for. The key covers the
image bytes (not its path, so renamed or copied files hit, and edited files miss), the backbone,
its weights (file digest), layers, image size, aggregation and projection. Taught in
``notebooks/01_feature_extraction.ipynb``.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np
import torch
from safetensors.torch import load_file, save
from tqdm.auto import tqdm

from exdd_lab.data.imageio import load_image
from exdd_lab.storage import atomic_write, atomic_write_json, cache_root, file_digest, stable_hash

if TYPE_CHECKING:
    from exdd_lab.components.backbones import WeightsSource
    from exdd_lab.features.patches import FeatureConfig, PatchFeatureExtractor


class FeatureCache:
    """Per-image feature files for one feature configuration."""

    def __init__(self, config: FeatureConfig, weights: WeightsSource, root: str | Path | None = None) -> None:
        key = dict(config.key_dict(), weights=weights.identity)
        self.key = key
        self.folder = Path(root or cache_root() / "features") / stable_hash(key)
        self.hits = 0
        self.misses = 0
        self.disabled = False  # set when the cache folder cannot be written (disk full, read-only)

    def _file(self, digest: str) -> Path:
        return self.folder / f"{digest}.safetensors"

    def get(self, digest: str) -> torch.Tensor | None:
        path = self._file(digest)
        if not path.is_file():
            return None
        try:
            return load_file(path)["features"]
        except Exception:  # a damaged entry is recomputed, never trusted
            path.unlink(missing_ok=True)
            return None

    def put(self, digest: str, features: torch.Tensor) -> None:
        """Store one image's features. A cache that cannot be written (disk full, read-only folder) is
        switched off with one warning: features are still computed, only not kept."""
        if self.disabled:
            return
        try:
            if not (self.folder / "config.json").is_file():
                atomic_write_json(self.folder / "config.json", self.key)
            with atomic_write(self._file(digest), durable=False) as handle:  # get() redoes a damaged entry
                handle.write(save({"features": features.contiguous()}))
        except OSError as exc:
            self.disabled = True
            warnings.warn(f"cannot write the feature cache {self.folder} ({exc.strerror or exc}); carrying on without "
                          "caching features. Free disk space, or set EXDD_LAB_CACHE to a writable folder.",
                          CacheWriteWarning, stacklevel=2)


def extract_features(
    extractor: PatchFeatureExtractor,
    paths: Iterable[str | Path],
    batch_size: int = 16,
    cache: bool | None = True,
    progress: bool = False,
) -> torch.Tensor:
    """Patch features ``(N, h, w, C)`` of image files, reusing the on-disk cache unless ``cache=False``."""
    store = FeatureCache(extractor.config, extractor.weights_source) if cache else None
    return extract_with_cache(extractor, [Path(p) for p in paths], store, batch_size, progress)


class CacheWriteWarning(UserWarning):
    """The feature cache could not be written; extraction goes on without it."""


def extract_with_cache(
    extractor: PatchFeatureExtractor,
    paths: list[Path],
    cache: FeatureCache | None,
    batch_size: int = 16,
    progress: bool = False,
) -> torch.Tensor:
    """Features ``(N, h, w, C)`` for ``paths`` in order: cached ones read, the rest computed and stored."""
    size = extractor.config.image_size
    g, c = extractor.grid_size, extractor.feature_dim
    out = torch.empty(len(paths), g, g, c)  # filled in place: no list of copies, no final stack
    digests = [file_digest(p) for p in paths] if cache else [None] * len(paths)
    todo = []
    for i, d in enumerate(digests):
        hit = cache.get(d) if cache else None
        if hit is not None:
            out[i] = hit
        else:
            todo.append(i)
    if cache:
        cache.hits += len(paths) - len(todo)
        cache.misses += len(todo)
    batches = [todo[k : k + batch_size] for k in range(0, len(todo), batch_size)]
    for batch in tqdm(batches, desc="patch features", unit="batch", disable=not progress or not batches):
        images = np.stack([load_image(paths[i], size) for i in batch])
        feats = extractor(images)
        for i, f in zip(batch, feats):
            out[i] = f
            if cache:
                cache.put(digests[i], f)
    return out
