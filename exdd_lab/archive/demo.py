"""A small archive to practise on, and the few images of a scored archive worth a closer look.

``make_demo_archive`` lays a dataset's test images out as a production line's archive (dated sub-folders,
symbolic links: nothing is copied) and adds the bad files a real archive holds (an empty file, a text file
with an image ending, a truncated JPEG, an operator's note). ``closer_look`` recomputes the anomaly maps of
the k highest-scoring images only: the archive run kept none. Taught in ``notebooks/08_scoring_an_archive.ipynb``.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from PIL import Image

from exdd_lab.data.records import Sample


def make_demo_archive(samples: Sequence[Sample], folder: str | Path, days: int = 3, bad_files: bool = True) -> pd.DataFrame:
    """Link ``samples`` into ``folder/<date>/<defect type>-<name>`` spread over ``days`` dated folders; returns
    the ground truth (path, label, defect type) that an analyst of a real archive would not have."""
    folder = Path(folder)
    rows = []
    for i, sample in enumerate(samples):
        day = folder / f"2026-11-{20 + i % days:02d}"
        day.mkdir(parents=True, exist_ok=True)
        link = day / f"{sample.defect_type}-{Path(sample.image_path).name}"
        if not link.exists():
            link.symlink_to(Path(sample.image_path).resolve())
        rows.append({"path": str(link.absolute()), "label": sample.label, "defect_type": sample.defect_type})
    if bad_files and samples:
        broken = folder / "2026-11-19"
        broken.mkdir(parents=True, exist_ok=True)
        (broken / "camera-dropout.png").write_bytes(b"")
        (broken / "export-error.png").write_text("<html>502 Bad Gateway</html>")
        buffer = io.BytesIO()
        Image.open(samples[0].image_path).convert("RGB").save(buffer, format="JPEG")
        (broken / "cut-off.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 3])
        (broken / "shift-notes.txt").write_text("belt speed changed at 14:00")
    return pd.DataFrame(rows)


def closer_look(detector, paths: Sequence[str | Path]) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(k, S, S, 3)`` and their anomaly maps ``(k, S, S)``, recomputed for these ``paths`` only."""
    from exdd_lab.data.imageio import load_image

    images = np.stack([load_image(p, detector.input_size) for p in paths])
    return images, detector.predict_images(images).maps
