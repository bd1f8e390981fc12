"""Where each memory-bank item came from, so a match can be shown to a person.

A bank item is one patch of one image: the image's index (into the training list or the defect list),
the patch cell ``(row, col)`` on the feature grid, and the pixel box ``(y0, y1, x0, x1)`` of the source
image that the grid covered (the whole image, or a defect's crop for ExDD's ``crop`` positive patches).
Saved as one ``(P, 7)`` integer array (``to_array``), the layout of ExDD's ``sources.safetensors``.
Taught in ``notebooks/04_dual_banks_ratio_scoring.ipynb``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class PatchSources:
    """``image, row, col`` ``(P,)`` and ``box`` ``(P, 4)`` as ``y0, y1, x0, x1``; all int64."""

    image: np.ndarray
    row: np.ndarray
    col: np.ndarray
    box: np.ndarray

    @classmethod
    def empty(cls) -> PatchSources:
        return cls.from_array(np.zeros((0, 7), np.int64))

    @classmethod
    def whole_images(cls, image: np.ndarray, row: np.ndarray, col: np.ndarray, size: int) -> PatchSources:
        """Patches of images whose grid covered the whole ``size x size`` image."""
        return cls.in_box(image, row, col, (0, size, 0, size))

    @classmethod
    def in_box(cls, image: np.ndarray, row: np.ndarray, col: np.ndarray, box: Sequence[int]) -> PatchSources:
        """Patches of a grid that covered ``box = (y0, y1, x0, x1)`` of each source image."""
        image = np.asarray(image, np.int64)
        return cls(image, np.asarray(row, np.int64), np.asarray(col, np.int64),
                   np.tile(np.asarray(box, np.int64), (len(image), 1)))

    @classmethod
    def from_positions(cls, positions: np.ndarray, grid: int, size: int) -> PatchSources:
        """Flat positions ``image * grid**2 + row * grid + col`` (PatchCore's ``bank_positions``)."""
        positions = np.asarray(positions, np.int64)
        return cls.whole_images(positions // (grid * grid), (positions % (grid * grid)) // grid, positions % grid, size)

    @classmethod
    def concat(cls, parts: Sequence[PatchSources]) -> PatchSources:
        return cls.from_array(np.concatenate([p.to_array() for p in parts])) if parts else cls.empty()

    def __len__(self) -> int:
        return len(self.image)

    def __getitem__(self, keep: np.ndarray) -> PatchSources:
        """The sources of the kept items (a boolean mask or indices)."""
        return PatchSources(self.image[keep], self.row[keep], self.col[keep], self.box[keep])

    def to_array(self) -> np.ndarray:
        """``(P, 7)``: image, row, col, y0, y1, x0, x1 (the saved layout)."""
        return np.column_stack([self.image, self.row, self.col, self.box]).astype(np.int64).reshape(-1, 7)

    @classmethod
    def from_array(cls, array: np.ndarray) -> PatchSources:
        array = np.asarray(array, np.int64).reshape(-1, 7)
        return cls(array[:, 0], array[:, 1], array[:, 2], array[:, 3:7])

    def cell_box(self, item: int, grid: int) -> tuple[int, int, int, int]:
        """The pixel box ``(y0, y1, x0, x1)`` of item ``item``'s patch cell in its source image."""
        y0, y1, x0, x1 = (int(v) for v in self.box[item])
        cell_h, cell_w = (y1 - y0) / grid, (x1 - x0) / grid
        row, col = int(self.row[item]), int(self.col[item])
        return int(y0 + row * cell_h), int(y0 + (row + 1) * cell_h), int(x0 + col * cell_w), int(x0 + (col + 1) * cell_w)
