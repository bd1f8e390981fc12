"""Reading images and masks with errors that name the file and the fix.

Images may be grayscale (8 or 16 bit), RGB or RGBA, in any file format Pillow can open (``IMAGE_SUFFIXES``
lists the file endings a dataset folder is searched for); they come back as RGB ``uint8`` arrays of shape
``(H, W, 3)``. 16-bit images are scaled by their bit depth (65535 -> 255), never by their own maximum, so
brightness stays comparable between images. Masks come back as ``bool`` arrays ``(H, W)``, binarised at
half of their range. Taught in ``notebooks/00_data_tour.ipynb``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

from exdd_lab.errors import ImageError

ImageFile.LOAD_TRUNCATED_IMAGES = False
# Every file ending Pillow can open (its own registry, so a format Pillow learns is read too), less the
# formats it only identifies (stubs) or opens through outside programs (Ghostscript) or not as pictures.
NOT_PICTURES = {"BUFR", "GRIB", "HDF5", "WMF", "EPS", "MPEG"}
Image.init()
IMAGE_SUFFIXES = frozenset(ext.lower() for ext, fmt in Image.registered_extensions().items()
                           if fmt in Image.OPEN and fmt not in NOT_PICTURES)
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def _open(path: Path, what: str) -> Image.Image:
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{what} not found: {path}", "check the path, or regenerate the dataset listing")
    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except Exception as exc:  # Pillow raises several types for corrupt or truncated files
        raise ImageError(
            f"cannot read {what} {path}: {type(exc).__name__}: {exc}",
            "the file is corrupt or truncated; re-export or re-download it, or remove it from the dataset",
        ) from exc


def to_rgb(im: Image.Image) -> Image.Image:
    """Grayscale/palette/16-bit/RGBA to RGB. Transparent pixels are composited onto black."""
    if im.mode == "RGB":
        return im
    if im.mode in SIXTEEN_BIT_MODES:  # scale by bit depth: a flat image keeps its level, images stay comparable
        arr = np.clip(np.asarray(im, dtype=np.float64), 0, 65535)
        im = Image.fromarray(np.rint(arr * (255 / 65535)).astype(np.uint8))
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        base = Image.new("RGBA", im.size, (0, 0, 0, 255))
        return Image.alpha_composite(base, im).convert("RGB")
    return im.convert("RGB")


def load_image(path: str | Path, size: int | tuple[int, int] | None = None) -> np.ndarray:
    """Read an image as RGB ``uint8`` ``(H, W, 3)``; resize to ``size`` (square int or (H, W))."""
    im = to_rgb(_open(Path(path), "image"))
    if size is not None:
        h, w = (size, size) if isinstance(size, int) else size
        im = im.resize((w, h), Image.BILINEAR)
    return np.asarray(im, dtype=np.uint8).copy()


def image_size(path: str | Path) -> tuple[int, int]:
    """``(H, W)`` of an image without decoding all of it; raises :class:`ImageError` if unreadable."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            w, h = im.size
            return h, w
    except FileNotFoundError:
        raise ImageError(f"image not found: {path}", "check the path") from None
    except Exception as exc:
        raise ImageError(f"cannot read image {path}: {exc}", "the file is corrupt; re-export it or remove it") from exc


def load_mask(
    path: str | Path | None,
    expected_hw: tuple[int, int] | None = None,
    size: int | tuple[int, int] | None = None,
    image_path: str | Path | None = None,
) -> np.ndarray:
    """Read a mask as ``bool`` ``(H, W)`` (True = defect).

    ``path=None`` with ``expected_hw`` gives an all-False mask (a normal image). If
    ``expected_hw`` is given (or ``image_path``, whose size is then read from its header) and the
    mask's size differs, raises :class:`ImageError` naming both files: a mask is never stretched onto
    an image of another size. ``size`` resizes with nearest-neighbour so the mask stays binary.
    """
    if path is None:
        if expected_hw is None and size is None:
            raise ValueError("load_mask(None) needs expected_hw or size to know the shape")
        hw = (size, size) if isinstance(size, int) else (size or expected_hw)
        return np.zeros(hw, dtype=bool)
    im = _open(Path(path), "mask")
    if expected_hw is None and image_path is not None:
        expected_hw = image_size(image_path)
    if expected_hw is not None and (im.size[1], im.size[0]) != tuple(expected_hw):
        partner = f" but its image {image_path} is" if image_path else ", expected"
        raise ImageError(
            f"mask {path} is {im.size[1]}x{im.size[0]} (HxW){partner} {expected_hw[0]}x{expected_hw[1]}",
            "masks must have their image's size; re-export the mask at the image's resolution",
        )
    arr = np.asarray(im.convert("L") if im.mode not in ("L", "1", "I;16", "I") else im)
    hi = 1 if im.mode == "1" else (65535 if im.mode.startswith("I") else 255)
    mask = arr > hi / 2
    if size is not None:
        h, w = (size, size) if isinstance(size, int) else size
        mask = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((w, h), Image.NEAREST)) > 127
    return mask


def sample_mask(sample, size: int) -> np.ndarray:
    """A sample's mask at ``size`` x ``size``, checked against its image's size; all normal without a mask.

    ``sample`` is anything with ``image_path`` and ``mask_path`` (a :class:`~exdd_lab.data.records.Sample`)."""
    if sample.mask_path is None:
        return np.zeros((size, size), dtype=bool)
    return load_mask(sample.mask_path, size=size, image_path=sample.image_path)


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (sorted), by suffix, skipping hidden files."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def list_non_images(folder: Path) -> list[Path]:
    """Files directly in ``folder`` that :func:`list_images` leaves out (not hidden): a dataset check lists
    them, so nothing is skipped silently."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() not in IMAGE_SUFFIXES and not p.name.startswith("."))


def load_masks(mask_paths: list[str | Path | None], size: int,
               image_paths: list[str | Path] | None = None) -> np.ndarray:
    """Masks of several images at a common square ``size``: ``bool (N, size, size)``; ``None`` = all normal.

    With ``image_paths`` (one per mask), each mask must have its image's size (see :func:`load_mask`)."""
    if not mask_paths:
        return np.zeros((0, size, size), bool)
    partners = image_paths if image_paths is not None else [None] * len(mask_paths)
    return np.stack([load_mask(p, size=size, image_path=i) for p, i in zip(mask_paths, partners)])
