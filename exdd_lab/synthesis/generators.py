"""One interface for every defect generator: an image and a mask in, a defective image out.

A generator has a ``name`` and ``generate(image, mask, rng) -> (image, params)``. :func:`make_defect`
wraps it with what every generator must guarantee: the mask is valid (right size, not empty) and
**pixels outside the mask are the original's, bit for bit** (diffusion models and VAEs change
every pixel a little; the paste-back makes the mask exact, which is what pixel supervision and
positive banks need). Shapes: images ``(H, W, 3) uint8``; masks ``(H, W) bool``.
Taught in ``notebooks/03_diffusion_defect_synthesis.ipynb``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from exdd_lab.data.imageio import load_image
from exdd_lab.errors import ExddError
from exdd_lab.synthesis.blend import augment_texture, blend_texture
from exdd_lab.synthesis.masks import MaskSettings, perlin_mask


class SynthesisError(ExddError):
    """A defect cannot be made from the given image and mask."""


@dataclass
class SyntheticDefect:
    """A synthetic defect: the image, its exact mask, and how it was made."""

    image: np.ndarray
    mask: np.ndarray
    generator: str
    params: dict = field(default_factory=dict)
    source: str = ""
    seed: int | None = None


class DefectGenerator(Protocol):
    """What :func:`make_defect` needs of a generator."""

    name: str

    def generate(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        """The defective image ``(H, W, 3) uint8`` and the parameters drawn for it."""
        ...


class PerlinBlendGenerator:
    """Classical baseline: an augmented normal image blended inside the mask (see ``blend``)."""

    name = "perlin"

    def __init__(self, textures: Sequence[str | Path | np.ndarray] = (), beta_range: tuple[float, float] = (0.0, 0.8)):
        self.textures = list(textures)
        self.beta_range = beta_range

    def generate(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        params: dict = {"beta": float(rng.uniform(*self.beta_range))}
        source = image
        if self.textures:
            i = int(rng.integers(len(self.textures)))
            t = self.textures[i]
            source = t if isinstance(t, np.ndarray) else load_image(t, size=image.shape[:2])
            params["texture"] = str(t) if not isinstance(t, np.ndarray) else f"array {i}"
        return blend_texture(image, mask, augment_texture(source, rng), params["beta"]), params


def check_image_and_mask(image: np.ndarray, mask: np.ndarray, source: str = "") -> np.ndarray:
    """Validate a generator's input; returns the mask as ``bool``. Errors name the source and the fix."""
    where = f" ({source})" if source else ""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise SynthesisError(
            f"image{where} must be (H, W, 3) uint8, got {image.shape} {image.dtype}",
            "load it with exdd_lab.data.load_image",
        )
    mask = np.asarray(mask)
    if mask.shape != image.shape[:2]:
        raise SynthesisError(
            f"mask of shape {mask.shape} does not match the image{where} of size {image.shape[:2]}",
            "resize the mask to the image (exdd_lab.data.load_mask(..., size=...)) or draw a new one",
        )
    mask = mask.astype(bool)
    if not mask.any():
        raise SynthesisError(f"the mask for{where or ' the image'} is empty", "draw a mask with at least one defect pixel")
    return mask


def make_defect(
    generator: DefectGenerator,
    image: np.ndarray,
    rng: np.random.Generator,
    mask: np.ndarray | None = None,
    mask_settings: MaskSettings | None = None,
    foreground: np.ndarray | None = None,
    source: str = "",
    seed: int | None = None,
) -> SyntheticDefect:
    """Make one defect on ``image``: a Perlin mask is drawn unless ``mask`` is given; outside it the
    result equals ``image`` exactly."""
    if mask is None:
        mask = perlin_mask(np.asarray(image).shape[:2], rng, mask_settings, foreground)
    mask = check_image_and_mask(image, mask, source)
    out, params = generator.generate(image, mask, rng)
    out = np.asarray(out)
    if out.shape != image.shape:
        raise SynthesisError(f"generator {generator.name!r} returned {out.shape}, expected {image.shape}", "fix the generator")
    exact = image.copy()
    exact[mask] = out[mask]
    return SyntheticDefect(exact, mask, generator.name, params, source, seed)
