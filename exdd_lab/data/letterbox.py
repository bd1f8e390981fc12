"""Keeping the aspect ratio: pad every image (and its mask) to a square before the kit resizes it.

The kit feeds the backbone square images (``image_size`` x ``image_size``), so by default an image of
another shape is *stretched*: a 230 x 630 KolektorSDD2-like strip becomes 2.7 times wider than it was,
and its defects with it. :func:`letterboxed` instead pads each image to a square with a constant grey
(centred, aspect ratio kept), pads its mask with "normal" the same way, and returns a dataset over these
copies. Padding is the same on training and test images, so the memory banks learn it as normal. The
copies live in the cache (``<cache>/letterbox/``, keyed by content, written atomically) and keep their
file names, so tables still name the original images. ``exdd-lab evaluate|compare|datasets --keep-aspect``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from exdd_lab.data.imageio import load_image, load_mask
from exdd_lab.data.records import DefectDataset, Sample
from exdd_lab.storage import atomic_directory, cache_root, file_digest, stable_hash

FILL = 128  # a mid grey: no edge the backbone could take for a defect boundary


def pad_to_square(array: np.ndarray, fill: int | bool) -> np.ndarray:
    """``(H, W[, C])`` -> ``(S, S[, C])`` with ``S = max(H, W)``, the original centred."""
    h, w = array.shape[:2]
    side = max(h, w)
    out = np.full((side, side) + array.shape[2:], fill, dtype=array.dtype)
    top, left = (side - h) // 2, (side - w) // 2
    out[top : top + h, left : left + w] = array
    return out


def _padded_copy(sample: Sample, root: Path) -> Sample:
    key = stable_hash({"image": file_digest(sample.image_path), "name": sample.stem,  # byte-identical images under
                       "mask": file_digest(sample.mask_path) if sample.mask_path else None, "fill": FILL})  # two names: two copies
    folder = root / key
    image_file, mask_file = folder / f"{sample.stem}.png", folder / f"{sample.stem}_mask.png"
    if not folder.is_dir():
        image = load_image(sample.image_path)
        with atomic_directory(folder) as tmp:
            Image.fromarray(pad_to_square(image, FILL)).save(tmp / image_file.name)
            if sample.mask_path is not None:
                mask = load_mask(sample.mask_path, expected_hw=image.shape[:2], image_path=sample.image_path)
                Image.fromarray(pad_to_square(mask, False).astype(np.uint8) * 255).save(tmp / mask_file.name)
    return Sample(image_file, sample.label, sample.defect_type, mask_file if sample.mask_path else None)


def letterboxed(ds: DefectDataset) -> DefectDataset:
    """The same dataset with every image and mask padded to a square (see the module docstring)."""
    root = cache_root() / "letterbox"
    splits = {name: [_padded_copy(s, root) for s in samples] for name, samples in ds.splits().items()}
    train, test = splits.pop("train"), splits.pop("test")
    info = dict(ds.split_info, resize={"mode": "letterbox", "fill": FILL, "originals": str(ds.root)})
    return DefectDataset(ds.name, ds.root, ds.layout, train, test, splits, info)
