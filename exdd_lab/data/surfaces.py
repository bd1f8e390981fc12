"""Procedural industrial surfaces and defects with exact masks: pure numpy, deterministic by seed.

A surface is a float32 RGB array ``(H, W, 3)`` in ``[0, 1]``; a defect painter takes a surface
and a ``numpy.random.Generator`` and returns ``(image, mask)`` where ``mask`` is ``bool (H, W)``
and **every pixel outside the mask is bit-identical to the input** (the mask is exact by
construction: painters compute a candidate image, then only masked pixels are taken from it).

Taught in ``notebooks/00_data_tour.ipynb``; used as the default dataset and the test fixture.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

Surface = np.ndarray  # float32 (H, W, 3) in [0, 1]


# --------------------------------------------------------------------------- noise
def fractal_noise(rng: np.random.Generator, size: int, base_cells: int = 4, octaves: int = 4,
                  persistence: float = 0.5) -> np.ndarray:
    """Smooth multi-octave value noise ``(size, size)``, zero mean and unit std."""
    out = np.zeros((size, size), np.float32)
    amp = 1.0
    for octave in range(octaves):
        cells = base_cells * 2**octave
        grid = rng.standard_normal((cells + 1, cells + 1)).astype(np.float32)
        out += amp * np.asarray(Image.fromarray(grid).resize((size, size), Image.BICUBIC))
        amp *= persistence
    out -= out.mean()
    return out / (out.std() + 1e-8)


def _streaks(rng: np.random.Generator, size: int, along_sigma: float, across_sigma: float) -> np.ndarray:
    s = ndi.gaussian_filter(rng.standard_normal((size, size)).astype(np.float32), (across_sigma, along_sigma), mode="wrap")
    return s / (s.std() + 1e-8)


def _illumination(rng: np.random.Generator, size: int, strength: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    angle = rng.uniform(0, 2 * np.pi)
    return 1.0 + strength * (np.cos(angle) * xx + np.sin(angle) * yy)


def _colourise(gray: np.ndarray, colour: tuple[float, float, float]) -> Surface:
    return np.clip(gray[..., None] * np.asarray(colour, np.float32), 0, 1).astype(np.float32)


# --------------------------------------------------------------------------- materials
def brushed_metal(rng: np.random.Generator, size: int) -> Surface:
    """Grey metal with fine horizontal brushing streaks and a soft illumination gradient."""
    g = 0.62 + 0.05 * _streaks(rng, size, 40, 0.7) + 0.015 * rng.standard_normal((size, size))
    return _colourise(g * _illumination(rng, size, 0.15), (1.0, 1.0, 1.04))


def copper(rng: np.random.Generator, size: int) -> Surface:
    """Copper sheet: brushed streaks plus a mottled oxidation tint."""
    g = 0.8 + 0.06 * _streaks(rng, size, 30, 0.8) + 0.02 * rng.standard_normal((size, size))
    mottle = 0.06 * fractal_noise(rng, size, base_cells=3, octaves=3)
    img = _colourise(g * _illumination(rng, size, 0.2), (0.9, 0.55, 0.36))
    img[..., 1] += mottle * 0.5
    return np.clip(img, 0, 1)


def marble(rng: np.random.Generator, size: int) -> Surface:
    """Polished stone: soft veins from a turbulent sine, with fractal clouding."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    turb = fractal_noise(rng, size, base_cells=2, octaves=5)
    angle = rng.uniform(0, np.pi)
    phase = (np.cos(angle) * xx + np.sin(angle) * yy) * rng.uniform(3, 6) * np.pi + 1.6 * turb
    veins = np.abs(np.sin(phase)) ** 0.35
    g = 0.55 + 0.33 * veins + 0.04 * fractal_noise(rng, size, base_cells=8, octaves=3)
    return _colourise(g, (0.98, 0.96, 0.92))


def woven(rng: np.random.Generator, size: int) -> Surface:
    """Plain-weave fabric: alternating warp and weft threads with slight irregularity."""
    period = int(rng.integers(7, 11))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    jitter = 0.8 * fractal_noise(rng, size, base_cells=4, octaves=2)
    u, v = (xx + jitter) / period, (yy - jitter) / period
    warp_on_top = (np.floor(u) + np.floor(v)) % 2 == 0
    warp = 0.5 + 0.5 * np.cos(np.pi * (2 * (u % 1) - 1)) * 0.6
    weft = 0.5 + 0.5 * np.cos(np.pi * (2 * (v % 1) - 1)) * 0.6
    g = np.where(warp_on_top, warp, weft) * (0.9 + 0.05 * _streaks(rng, size, 0.5, 20))
    colour = [(0.36, 0.45, 0.62), (0.78, 0.72, 0.6), (0.45, 0.5, 0.4)][int(rng.integers(3))]
    return _colourise(0.35 + 0.65 * g, colour)


def tile(rng: np.random.Generator, size: int) -> Surface:
    """Ceramic tiles with grout lines; each tile a slightly different shade, with glaze speckle."""
    cell = int(rng.integers(48, 80))
    off = rng.integers(0, cell, size=2)
    yy, xx = np.mgrid[0:size, 0:size]
    ty, tx = (yy + off[0]) // cell, (xx + off[1]) // cell
    shade = np.random.default_rng(int(rng.integers(1 << 31))).uniform(-0.04, 0.04, (ty.max() + 1, tx.max() + 1))
    g = 0.78 + shade[ty, tx] + 0.02 * rng.standard_normal((size, size))
    grout = (((yy + off[0]) % cell) < 3) | (((xx + off[1]) % cell) < 3)
    g = np.where(grout, 0.45, g)
    return _colourise(g * _illumination(rng, size, 0.1), (0.95, 0.93, 0.88))


MATERIALS: dict[str, Callable[[np.random.Generator, int], Surface]] = {
    "brushed_metal": brushed_metal,
    "copper": copper,
    "marble": marble,
    "woven": woven,
    "tile": tile,
}


# --------------------------------------------------------------------------- defects
def _keep_outside(clean: Surface, candidate: Surface, mask: np.ndarray) -> tuple[Surface, np.ndarray]:
    """Take masked pixels from ``candidate`` and all others from ``clean``: the exactness guarantee."""
    out = np.where(mask[..., None], np.clip(candidate, 0, 1), clean).astype(np.float32)
    return out, mask


def _polyline_mask(size: int, points: np.ndarray, width: float) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    pts = np.round(points).astype(int)
    ok = (pts[:, 0] >= 0) & (pts[:, 0] < size) & (pts[:, 1] >= 0) & (pts[:, 1] < size)
    mask[pts[ok, 0], pts[ok, 1]] = True
    radius = max(0, int(round(width / 2)))
    if radius:
        disk = np.hypot(*np.mgrid[-radius:radius + 1, -radius:radius + 1]) <= radius + 0.3
        mask = ndi.binary_dilation(mask, structure=disk)
    return mask


def scratch(img: Surface, rng: np.random.Generator) -> tuple[Surface, np.ndarray]:
    """A thin, slightly curved bright or dark line, 40-150 px long."""
    size = img.shape[0]
    p0 = rng.uniform(0.15, 0.85, 2) * size
    angle, length = rng.uniform(0, np.pi), rng.uniform(40, 150)
    p2 = p0 + length * np.array([np.sin(angle), np.cos(angle)])
    p1 = (p0 + p2) / 2 + rng.normal(0, length * 0.15, 2)
    t = np.linspace(0, 1, int(length * 3))[:, None]
    pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
    mask = _polyline_mask(size, pts, rng.uniform(1.5, 3.5))
    tone = 0.95 if rng.random() < 0.5 else 0.2
    return _keep_outside(img, img * 0.25 + tone * 0.75, mask)


def crack(img: Surface, rng: np.random.Generator) -> tuple[Surface, np.ndarray]:
    """A jagged dark random-walk line with an occasional branch."""
    size = img.shape[0]
    walks = []
    start, heading = rng.uniform(0.2, 0.8, 2) * size, rng.uniform(0, 2 * np.pi)
    for branch in range(1 + int(rng.random() < 0.6)):
        n = int(rng.uniform(60, 160) / (branch + 1))
        headings = heading + (0.9 if branch else 0) * rng.choice([-1, 1]) + np.cumsum(rng.normal(0, 0.35, n))
        steps = np.stack([np.sin(headings), np.cos(headings)], 1)
        pts = start + np.cumsum(steps, 0)
        walks.append(pts)
        start = pts[len(pts) // 2]
    mask = _polyline_mask(size, np.concatenate(walks), rng.uniform(1.0, 2.5))
    return _keep_outside(img, img * 0.25, mask)


def pit(img: Surface, rng: np.random.Generator) -> tuple[Surface, np.ndarray]:
    """A blowhole: a small dark ellipse, darkest at its centre, with a faint bright rim."""
    size = img.shape[0]
    cy, cx = rng.uniform(0.15, 0.85, 2) * size
    ry, rx = rng.uniform(4, 13, 2)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    r = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    mask = r <= 1.0
    depth = np.clip(1 - r, 0, 1) ** 0.5
    shaded = img * (1 - 0.75 * depth[..., None]) + 0.25 * ((r > 0.8) & mask)[..., None]
    return _keep_outside(img, shaded, mask)


def stain(img: Surface, rng: np.random.Generator) -> tuple[Surface, np.ndarray]:
    """A blotchy discolouration (oil, oxidation, water mark) with an irregular outline."""
    size = img.shape[0]
    cy, cx = rng.uniform(0.2, 0.8, 2) * size
    radius = rng.uniform(14, 40)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    envelope = 1 - np.hypot(yy - cy, xx - cx) / radius
    blob = envelope + 0.35 * fractal_noise(rng, size, base_cells=8, octaves=2)
    mask = blob > 0.15
    if mask.sum() < 30:  # never an empty defect
        mask = envelope > 0
    strength = np.clip((blob - 0.15) * 3, 0.35, 0.8)[..., None]
    colour = np.asarray([(0.45, 0.32, 0.18), (0.2, 0.2, 0.22), (0.55, 0.6, 0.45)][int(rng.integers(3))], np.float32)
    return _keep_outside(img, img * (1 - strength) + colour * strength, mask)


def frayed_edge(img: Surface, rng: np.random.Generator) -> tuple[Surface, np.ndarray]:
    """Material torn away along one border: an irregular dark gap with loose fibre ends."""
    size = img.shape[0]
    depth = rng.uniform(8, 24) + 6 * ndi.gaussian_filter1d(rng.standard_normal(size), 4) * 3
    start, stop = sorted(rng.uniform(0, size, 2).astype(int))
    stop = max(stop, start + size // 4)
    span = np.zeros(size, bool)
    span[start:min(stop, size)] = True
    depth = np.where(span, np.clip(depth, 3, None), 0)
    coord = np.arange(size)[:, None]
    mask = coord < depth[None, :]  # torn from the top edge, then rotated to a random side
    fibres = (rng.random((size, size)) < 0.04) & mask
    fibres = ndi.binary_dilation(fibres, structure=np.ones((5, 1), bool)) & mask
    k = int(rng.integers(4))
    mask, fibres = np.rot90(mask, k).copy(), np.rot90(fibres, k).copy()
    gap = np.full_like(img, 0.06)
    gap[fibres] = img[fibres] * 0.8 + 0.1
    return _keep_outside(img, gap, mask)


DEFECTS: dict[str, Callable[[Surface, np.random.Generator], tuple[Surface, np.ndarray]]] = {
    "scratch": scratch,
    "crack": crack,
    "pit": pit,
    "stain": stain,
    "frayed_edge": frayed_edge,
}

MATERIAL_DEFECTS: dict[str, tuple[str, ...]] = {
    "brushed_metal": ("scratch", "pit", "stain"),
    "copper": ("scratch", "stain", "pit"),
    "marble": ("crack", "stain", "pit"),
    "woven": ("frayed_edge", "stain", "scratch"),
    "tile": ("crack", "pit", "stain"),
}


def benign_variation(img: Surface, rng: np.random.Generator) -> Surface:
    """Normal-but-unusual appearance: a soft glare or a faint smudge-free tone shift over a large area.

    Real production images have these (reflections, uneven lighting); they are NOT defects, and a
    model that only knows "typical normal" may flag them: the lesson of notebooks 02 and 04.
    """
    size = img.shape[0]
    cy, cx = rng.uniform(0, size, 2)
    radius = rng.uniform(0.2, 0.45) * size
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    glow = np.exp(-(((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2)))
    return np.clip(img * (1 + rng.uniform(-0.18, 0.22) * glow[..., None]), 0, 1).astype(np.float32)


def render_surface(material: str, seed: int, size: int = 256, benign_rate: float = 0.25) -> Surface:
    """One defect-free surface of ``material``; the same seed gives the same pixels.

    A share ``benign_rate`` of surfaces carries a benign variation (see :func:`benign_variation`).
    """
    if material not in MATERIALS:
        raise ValueError(f"unknown material {material!r}; choose one of {sorted(MATERIALS)}")
    rng = np.random.default_rng(seed)
    img = MATERIALS[material](rng, size)
    if rng.random() < benign_rate:
        img = benign_variation(img, rng)
    return img


def add_defect(img: Surface, defect: str, seed: int, strength: tuple[float, float] = (0.35, 1.0)) -> tuple[Surface, np.ndarray]:
    """Paint one defect of type ``defect``; returns the new image and its exact mask.

    The defect's contrast is drawn from ``strength`` (1 = fully painted), so some defects are faint,
    as in real inspection data. Pixels outside the mask are never touched.
    """
    if defect not in DEFECTS:
        raise ValueError(f"unknown defect type {defect!r}; choose one of {sorted(DEFECTS)}")
    rng = np.random.default_rng(seed)
    alpha = np.float32(rng.uniform(*strength))
    painted, mask = DEFECTS[defect](img, rng)
    return _keep_outside(img, img + alpha * (painted - img), mask)


def to_uint8(img: Surface) -> np.ndarray:
    """float [0, 1] to uint8 for saving."""
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
