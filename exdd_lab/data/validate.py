"""Checking a dataset before any model sees it: every file readable, every mask its image's size.

Used by ``exdd-lab datasets``; taught in ``notebooks/00_data_tour.ipynb``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from exdd_lab.data.duplicates import dataset_duplicates
from exdd_lab.data.imageio import list_non_images, load_image, load_mask
from exdd_lab.data.records import DefectDataset
from exdd_lab.errors import ImageError


@dataclass
class ValidationReport:
    """What a full read of the dataset found: image sizes, mask coverage, problems and warnings.

    ``problems`` make the dataset unusable (unreadable file, mask of the wrong size);
    ``warnings`` do not (a defect image whose mask is empty: pixel metrics see no defect there; a file
    in a dataset folder that is not an image and so was left out, listed in ``skipped_files`` too).
    """

    sizes: list[tuple[int, int]] = field(default_factory=list)
    mask_fractions: list[float] = field(default_factory=list)
    masks_found: int = 0
    defects_without_mask: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped_files: list[str] = field(default_factory=list)
    duplicate_groups: int = 0  # groups of byte-identical images (exdd_lab.data.duplicates); the warnings say which

    @property
    def ok(self) -> bool:
        return not self.problems

    def size_table(self) -> pd.DataFrame:
        """Min / median / max image height and width."""
        arr = np.asarray(self.sizes or [(0, 0)])
        return pd.DataFrame(
            {"min": arr.min(0), "median": np.median(arr, 0).astype(int), "max": arr.max(0)}, index=["height", "width"]
        )


def validate_dataset(ds: DefectDataset) -> ValidationReport:
    """Read every image and mask once; collect (not raise) every problem, each naming its file."""
    report = ValidationReport()
    for samples in ds.splits().values():
        for s in samples:
            try:
                img = load_image(s.image_path)
            except ImageError as exc:
                report.problems.append(str(exc))
                continue
            report.sizes.append(img.shape[:2])
            if s.mask_path is None:
                report.defects_without_mask += s.is_defect
                continue
            try:
                mask = load_mask(s.mask_path, expected_hw=img.shape[:2], image_path=s.image_path)
            except ImageError as exc:
                report.problems.append(str(exc))
                continue
            report.masks_found += 1
            if s.is_defect:
                report.mask_fractions.append(float(mask.mean()))
                if not mask.any():
                    # Real datasets have these (MTD has a few): a warning, since image metrics still work.
                    report.warnings.append(f"defect image {s.image_path} has an empty mask {s.mask_path.name}")
    aspect = [h / w for h, w in report.sizes if w]
    off_square = sum(abs(a - 1) > 0.05 for a in aspect)
    if off_square:
        report.warnings.insert(0, (
            f"{off_square} of {len(aspect)} images are not square (height/width from {min(aspect):.2f} to "
            f"{max(aspect):.2f}): the kit resizes every image to a square, which stretches them; pass --keep-aspect "
            "(exdd_lab.data.letterboxed) to pad them to squares instead"))
    duplicates = dataset_duplicates(ds)
    report.duplicate_groups = len(duplicates.groups)
    report.warnings.extend(duplicates.lines())
    folders = {p.parent for samples in ds.splits().values() for s in samples for p in (s.image_path, s.mask_path) if p}
    for folder in sorted(folders):
        for path in list_non_images(folder):
            report.skipped_files.append(str(path))
            report.warnings.append(f"not an image, left out of the dataset: {path} (remove it, or convert it to an image format)")
    return report
