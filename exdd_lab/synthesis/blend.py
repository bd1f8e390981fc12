"""The classical baseline: DRAEM-style blending of a foreign texture inside a mask.

Inside the mask the image becomes ``beta * image + (1 - beta) * texture``, with ``beta`` drawn from
``[0, 0.8]`` as in DRAEM (so some defects are faint); outside it nothing changes. The texture is
another normal image, strongly augmented (flips, rotation, contrast, colour, inversion) so it does
not look like the surface any more. Fast, needs no training: the comparison point for diffusion.
Shapes: images ``(H, W, 3) uint8``; masks ``(H, W) bool``.
Taught in ``notebooks/03_diffusion_defect_synthesis.ipynb``.
"""
from __future__ import annotations

import numpy as np


def augment_texture(source: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A strongly augmented copy of ``source`` ``(H, W, 3) uint8``: a texture foreign to the surface."""
    x = np.rot90(source, int(rng.integers(4)))
    if rng.random() < 0.5:
        x = x[:, ::-1]
    x = x.astype(np.float32) / 255.0
    x = (x - x.mean()) * rng.uniform(1.5, 3.0) + x.mean() + rng.uniform(-0.3, 0.3)  # contrast, brightness
    x = x * rng.uniform(0.6, 1.4, size=3)  # colour cast
    if rng.random() < 0.3:
        x = 1.0 - x  # inverted
    if rng.random() < 0.3:
        levels = int(rng.integers(2, 5))
        x = np.round(np.clip(x, 0, 1) * levels) / levels  # posterised
    return (np.clip(x, 0, 1) * 255).astype(np.uint8)


def blend_texture(
    image: np.ndarray,
    mask: np.ndarray,
    texture: np.ndarray,
    beta: float,
) -> np.ndarray:
    """``image`` with ``beta * image + (1 - beta) * texture`` inside ``mask``; pixels outside are untouched.

    ``texture`` must be at least as large as the image; it is cropped from its top-left corner.
    """
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must lie in [0, 1], got {beta}")
    h, w = image.shape[:2]
    tex = texture[:h, :w].astype(np.float32)
    if tex.shape[:2] != (h, w):
        raise ValueError(f"texture {texture.shape[:2]} is smaller than the image {(h, w)}")
    out = image.copy()
    mixed = beta * image.astype(np.float32) + (1.0 - beta) * tex
    out[mask] = np.clip(np.round(mixed[mask]), 0, 255).astype(np.uint8)
    return out
