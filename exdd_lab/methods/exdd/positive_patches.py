"""Which patches of the defect images enter ExDD's positive bank: one strategy per name.

- ``"masked"`` (default): the patches whose cell is at least ``min_mask_fraction`` masked (0.9 by
  default), i.e. the defect itself. On MTD a lower threshold (0.3) let boundary cells, which look
  normal, into the bank and cost 0.11 image AUROC (0.80 vs 0.91).
- ``"crop"`` (ExDD's original): every patch of a tight crop around each defect (mask bounding box plus
  ``crop_margin`` pixels, resized to the input size), background included.
- ``"unusual"`` (images reviewed as defect, which have no mask): the masked cells of images that have a mask, as
  ``"masked"``, and *every* cell of an image without one; ExDD's purification then keeps only the maskless cells
  above the normal-only threshold of held-out normals (``ExDD.set_maskless_floor``), i.e. the cells that alone would
  flag the image. It is the only selection that accepts maskless defects, and it needs ``purify_positive``.

Each strategy: ``(extractor, defects, knobs, progress) -> (features (P, C), PatchSources)``.
Taught in ``notebooks/04_dual_banks_ratio_scoring.ipynb``.
"""
from __future__ import annotations

from typing import Callable, Protocol, Sequence

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from exdd_lab.components.registry import Registry
from exdd_lab.data.imageio import load_image, load_masks, sample_mask
from exdd_lab.data.records import Sample
from exdd_lab.errors import ExddError
from exdd_lab.features import PatchFeatureExtractor, extract_features
from exdd_lab.features.patch_labels import patch_labels
from exdd_lab.bank.memory import BankError
from exdd_lab.methods.exdd.patch_sources import PatchSources


class PositivePatchKnobs(Protocol):
    """The settings a selection reads (``ExddSettings`` has them)."""

    positive_patches: str
    min_mask_fraction: float
    crop_margin: int
    batch_size: int


Selection = Callable[[PatchFeatureExtractor, Sequence[Sample], PositivePatchKnobs, bool], tuple[list, list]]
#: ``ExddSettings.positive_patches`` names one of these.
POSITIVE_PATCHES: Registry[Selection] = Registry("positive-patch selection")


@POSITIVE_PATCHES.register("masked")
def masked_patches(extractor: PatchFeatureExtractor, defects: Sequence[Sample], knobs: PositivePatchKnobs,
                   progress: bool = False) -> tuple[list[torch.Tensor], list[PatchSources]]:
    """The cells of each defect image that its mask covers by at least ``min_mask_fraction``."""
    size, g = extractor.config.image_size, extractor.grid_size
    feats, sources = [], []
    for start in tqdm(range(0, len(defects), 64), desc="positive bank", disable=not progress):
        part = defects[start : start + 64]
        f = extract_features(extractor, [s.image_path for s in part], knobs.batch_size)
        masks = load_masks([s.mask_path for s in part], size=size, image_paths=[s.image_path for s in part])
        keep = patch_labels(masks, g, knobs.min_mask_fraction)
        n, y, x = np.nonzero(keep)
        feats.append(f[torch.from_numpy(keep)])
        sources.append(PatchSources.whole_images(n + start, y, x, size))
    return feats, sources


@POSITIVE_PATCHES.register("crop")
def crop_patches(extractor: PatchFeatureExtractor, defects: Sequence[Sample], knobs: PositivePatchKnobs,
                 progress: bool = False) -> tuple[list[torch.Tensor], list[PatchSources]]:
    """Every patch of a crop around each defect (mask bounding box plus ``crop_margin``), resized to the input."""
    size, g = extractor.config.image_size, extractor.grid_size
    feats, sources = [], []
    for i, s in enumerate(tqdm(defects, desc="positive bank (crops)", disable=not progress)):
        image, mask = load_image(s.image_path, size), sample_mask(s, size)
        if not mask.any():
            continue
        ys, xs = np.nonzero(mask)
        m = knobs.crop_margin
        y0, y1 = max(0, ys.min() - m), min(size, ys.max() + 1 + m)
        x0, x1 = max(0, xs.min() - m), min(size, xs.max() + 1 + m)
        crop = np.array(Image.fromarray(image[y0:y1, x0:x1]).resize((size, size), Image.BILINEAR))
        feats.append(extractor(crop[None]).reshape(-1, extractor.feature_dim))
        yy, xx = np.divmod(np.arange(g * g), g)
        sources.append(PatchSources.in_box(np.full_like(yy, i), yy, xx, (y0, y1, x0, x1)))
    return feats, sources


@POSITIVE_PATCHES.register("unusual")
def unusual_patches(extractor: PatchFeatureExtractor, defects: Sequence[Sample], knobs: PositivePatchKnobs,
                    progress: bool = False) -> tuple[list[torch.Tensor], list[PatchSources]]:
    """Masked cells of the defects with a mask; all cells of those without (purification picks the unusual ones)."""
    masked = [i for i, s in enumerate(defects) if s.mask_path is not None]
    maskless = [i for i, s in enumerate(defects) if s.mask_path is None]
    feats, sources = [], []
    if masked:
        f, src = masked_patches(extractor, [defects[i] for i in masked], knobs, progress)
        feats += f
        sources += [_renumbered(part, masked) for part in src]
    size, g = extractor.config.image_size, extractor.grid_size
    for start in tqdm(range(0, len(maskless), 64), desc="positive bank (maskless)", disable=not progress):
        part = maskless[start : start + 64]
        f = extract_features(extractor, [defects[i].image_path for i in part], knobs.batch_size)
        n, y, x = np.nonzero(np.ones(f.shape[:3], bool))
        feats.append(f.reshape(-1, f.shape[-1]))
        sources.append(PatchSources.whole_images(np.asarray(part)[n], y, x, size))
    return feats, sources


def _renumbered(sources: PatchSources, positions: list[int]) -> PatchSources:
    """``sources`` whose image numbers count within a subset, renumbered to the full defect list."""
    array = sources.to_array().copy()
    array[:, 0] = np.asarray(positions)[array[:, 0]]
    return PatchSources.from_array(array)


#: The selections that accept defects without a mask (the others need the mask to find the defect).
ACCEPTS_MASKLESS = frozenset({"unusual"})


def positive_patches(extractor: PatchFeatureExtractor, defects: Sequence[Sample], knobs: PositivePatchKnobs,
                     progress: bool = False) -> tuple[torch.Tensor, PatchSources]:
    """Features ``(P, C)`` of the defect patches that ``knobs.positive_patches`` selects, and their sources."""
    select = POSITIVE_PATCHES[knobs.positive_patches]
    missing = [s.image_path for s in defects if s.mask_path is None]
    if missing and knobs.positive_patches not in ACCEPTS_MASKLESS:
        raise ExddError(f"defect image {missing[0]} has no mask",
                        f"positive_patches={knobs.positive_patches!r} needs pixel masks; for defects without masks "
                        "(images reviewed as defect) use positive_patches='unusual'")
    feats, sources = select(extractor, defects, knobs, progress)
    if not feats or sum(len(f) for f in feats) == 0:
        raise BankError(
            f"the positive bank is empty: no patch of the {len(defects)} defect image(s) is at least "
            f"{knobs.min_mask_fraction:.0%} masked",
            "use more or larger synthetic defects, lower min_mask_fraction, or positive_patches='crop'",
        )
    return torch.cat(feats).float(), PatchSources.concat(sources)
