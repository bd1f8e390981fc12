"""Reading one archive file into the detector's input, or into the reason it cannot be scored.

Bad files never stop a run: a missing, empty, unreadable or truncated file, or one with an image ending that
is not an image, comes back with ``status="failed"`` and the reason; a file whose ending is no image type is
``"skipped"``. Valid but unusual images (16-bit, CMYK, palette, alpha, greyscale) are converted as
:func:`exdd_lab.data.imageio.to_rgb` converts a dataset's images, so an archive image scores exactly like the
same file in a dataset.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from exdd_lab.data.imageio import IMAGE_SUFFIXES, to_rgb

SCORED, FAILED, SKIPPED = "scored", "failed", "skipped"


@dataclass
class DecodedFile:
    """One file: its pixels at the detector's input size (``None`` unless ``status == "scored"``) and facts."""

    status: str
    image: np.ndarray | None = None
    error: str | None = None
    height: int | None = None
    width: int | None = None
    file_size: int | None = None
    mtime: float | None = None


def decode_file(path: str | Path, size: int) -> DecodedFile:
    """``path`` as RGB ``uint8 (size, size, 3)`` (bilinear resize, as :func:`~exdd_lab.data.imageio.load_image`),
    or the reason it cannot be."""
    path = Path(path)
    try:
        stat = path.stat()
    except FileNotFoundError:
        return DecodedFile(FAILED, error="file not found (moved or deleted after the input list was made)")
    except OSError as exc:
        return DecodedFile(FAILED, error=f"cannot stat the file: {exc.strerror or exc}")
    facts = {"file_size": int(stat.st_size), "mtime": float(stat.st_mtime)}
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return DecodedFile(SKIPPED, error=f"not an image file type ({path.suffix or 'no ending'})", **facts)
    if stat.st_size == 0:
        return DecodedFile(FAILED, error="empty file (0 bytes)", **facts)
    try:
        with Image.open(path) as im:
            im.load()
            width, height = im.size
            rgb = to_rgb(im)
            image = np.asarray(rgb.resize((size, size), Image.BILINEAR), dtype=np.uint8).copy()
    except Exception as exc:  # Pillow raises many types for broken files: each becomes a reason, never a crash
        kind = "truncated" if "truncat" in str(exc).lower() else "unreadable"
        return DecodedFile(FAILED, error=f"{kind}: {type(exc).__name__}: {exc}", **facts)
    return DecodedFile(SCORED, image=image, height=int(height), width=int(width), **facts)
