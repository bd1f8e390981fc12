"""Datasets: sample records, loaders per layout, the procedural default, validation.

Never computes features or scores: it only says which images and masks there are, and reads them.

Taught in ``notebooks/00_data_tour.ipynb``.
"""
from __future__ import annotations

from pathlib import Path

from exdd_lab.data.imageio import load_image, load_mask, load_masks
from exdd_lab.data.letterbox import letterboxed
from exdd_lab.data.layouts import LAYOUTS, MTD_SPLITS, PUBLISHED_MTD_IMAGE_AUROC, load_folder, load_ksdd2, load_mtd, load_mvtec, seeded_normal_split
from exdd_lab.data.procedural import procedural_dataset, write_procedural_dataset
from exdd_lab.data.records import GOOD, DefectDataset, Sample, load_split, pick_per_type
from exdd_lab.data.surfaces import DEFECTS, MATERIALS
from exdd_lab.data.validate import ValidationReport, validate_dataset
from exdd_lab.errors import DatasetError

__all__ = [
    "DEFECTS", "GOOD", "LAYOUTS", "MATERIALS", "MTD_SPLITS", "PUBLISHED_MTD_IMAGE_AUROC", "DatasetError", "DefectDataset", "Sample", "ValidationReport",
    "letterboxed", "load_dataset", "load_folder", "load_image", "load_ksdd2", "load_mask", "load_masks", "load_mtd", "load_mvtec", "load_split", "pick_per_type",
    "procedural_dataset", "seeded_normal_split", "validate_dataset", "write_procedural_dataset",
]


def load_dataset(
    data: str | Path | None = None,
    layout: str | None = None,
    category: str | None = None,
    seed: int = 0,
    split: str | None = None,
    **kwargs,
) -> DefectDataset:
    """One entry point for every layout.

    ``data=None`` (or ``"procedural"``) gives the procedural default, with ``category`` naming
    the material. Otherwise ``layout`` names one of :data:`~exdd_lab.data.layouts.LAYOUTS`
    (``mvtec``, ``ksdd2``, ``mtd``, ``folder``).
    ``split`` names a published protocol where the layout has several (MTD: ``"seeded"``, the default,
    or ``"differnet"``); other layouts have one split and accept only ``None``.
    Extra keyword arguments go to the layout's loader (e.g. ``n_train`` or ``split_file`` for ``mtd``).
    """
    if split is not None and layout != "mtd":
        raise DatasetError(f"split {split!r} was asked of layout {layout or 'procedural'!r}, which has one fixed split",
                           "named splits exist for --layout mtd (seeded, differnet); drop --split for other layouts")
    if split is not None:
        kwargs["split"] = split
    if data is None or str(data) == "procedural" or layout == "procedural":
        return procedural_dataset(material=category or "brushed_metal", seed=seed, **kwargs)
    return LAYOUTS[layout](data, category=category, seed=seed, **kwargs)
