"""Seeded Perlin-noise masks: where a synthetic defect goes.

Perlin noise is smooth random "gradient noise"; thresholding it gives blob- and vein-shaped regions
of many sizes, which is why DRAEM and the diffusion-defect papers use it for anomaly masks.
``perlin_noise`` is a short numpy implementation (no maintained Perlin library is both seedable
with a numpy ``Generator`` and vectorised). Shapes: noise ``(H, W) float32`` in about [-1, 1];
masks ``(H, W) bool`` (True = defect). Taught in ``notebooks/03_diffusion_defect_synthesis.ipynb``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from exdd_lab.errors import ExddError


def _fade(t: np.ndarray) -> np.ndarray:
    return t * t * t * (t * (t * 6 - 15) + 10)  # 6t^5 - 15t^4 + 10t^3: smooth at the lattice


def perlin_noise(shape: tuple[int, int], res: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """2-D Perlin noise of ``shape`` with ``res`` lattice cells along (y, x); about [-1, 1]."""
    h, w = shape
    ry, rx = max(1, int(res[0])), max(1, int(res[1]))
    angles = rng.uniform(0, 2 * np.pi, (ry + 1, rx + 1))
    grad = np.stack([np.cos(angles), np.sin(angles)], -1)  # unit gradient at each lattice corner
    gy = (np.arange(h) + 0.5) * ry / h
    gx = (np.arange(w) + 0.5) * rx / w
    iy, ix = np.floor(gy).astype(int), np.floor(gx).astype(int)
    fy, fx = (gy - iy)[:, None], (gx - ix)[None, :]

    def corner(dy: int, dx: int) -> np.ndarray:
        g = grad[iy[:, None] + dy, ix[None, :] + dx]
        return g[..., 0] * (fy - dy) + g[..., 1] * (fx - dx)

    uy, ux = _fade(fy), _fade(fx)
    top = corner(0, 0) * (1 - ux) + corner(0, 1) * ux
    bottom = corner(1, 0) * (1 - ux) + corner(1, 1) * ux
    return (np.sqrt(2) * (top * (1 - uy) + bottom * uy)).astype(np.float32)


@dataclass(frozen=True)
class MaskSettings:
    """How Perlin masks are drawn.

    ``scale_exponents``: the lattice has ``2**a`` cells per side, ``a`` drawn from this range
    (DRAEM's 0..6: from one big blob to fine speckle); ``threshold``: noise above it is defect;
    ``rotate``: a random rotation breaks the lattice's axis alignment; ``min_area``/``max_area``:
    accepted mask area as a fraction of the image (masks outside are redrawn).
    """

    scale_exponents: tuple[int, int] = (0, 6)
    threshold: float = 0.5
    rotate: bool = True
    min_area: float = 0.002
    max_area: float = 0.25
    max_tries: int = 100

    def to_dict(self) -> dict:
        return asdict(self)


def perlin_mask(
    shape: tuple[int, int],
    rng: np.random.Generator,
    settings: MaskSettings | None = None,
    foreground: np.ndarray | None = None,
) -> np.ndarray:
    """A ``bool (H, W)`` Perlin mask whose area lies within the settings' bounds.

    ``foreground`` (``bool (H, W)``), when given, restricts the mask to the object (e.g. not the
    background of an MVTec screw); the area bounds then apply to the restricted mask.
    """
    s = settings or MaskSettings()
    h, w = shape
    if foreground is not None and np.asarray(foreground).shape != (h, w):
        raise ExddError(
            f"foreground mask has shape {np.asarray(foreground).shape}, the image is {(h, w)}",
            "pass a foreground mask of the image's size (or none)",
        )
    lo, hi = s.scale_exponents
    for _ in range(s.max_tries):
        res = 2 ** rng.integers(lo, hi, size=2, endpoint=False) if hi > lo else (2**lo, 2**lo)
        noise = perlin_noise((h, w), tuple(res), rng)
        if s.rotate:
            noise = ndimage.rotate(noise, rng.uniform(-90, 90), reshape=False, order=1, mode="reflect")
        mask = noise > s.threshold
        if foreground is not None:
            mask &= np.asarray(foreground, bool)
        if s.min_area <= mask.mean() <= s.max_area:
            return mask
    raise ExddError(
        f"no Perlin mask with area in [{s.min_area}, {s.max_area}] after {s.max_tries} tries",
        "lower the threshold or min_area, raise max_area, or check the foreground mask is not (nearly) empty",
    )


def mask_area_statistics(masks: list[np.ndarray] | np.ndarray) -> dict[str, float]:
    """Area fraction (mean, median, min, max) and connected regions per mask: what a defect set looks like."""
    areas = np.array([np.asarray(m, bool).mean() for m in masks], dtype=np.float64)
    regions = np.array([ndimage.label(np.asarray(m, bool))[1] for m in masks], dtype=np.float64)
    if len(areas) == 0:
        raise ValueError("no masks given")
    return {
        "n_masks": int(len(areas)),
        "area_mean": float(areas.mean()),
        "area_median": float(np.median(areas)),
        "area_min": float(areas.min()),
        "area_max": float(areas.max()),
        "regions_mean": float(regions.mean()),
    }
