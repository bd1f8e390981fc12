"""Shared fixtures: an isolated cache, small procedural datasets, and the real MTD data when present."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_MTD = REPO.parent / "shared" / "data" / "mtd"


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Every test session gets its own cache folder, so tests never depend on a user's cache."""
    root = tmp_path_factory.mktemp("exdd-cache")
    old = os.environ.get("EXDD_LAB_CACHE")
    os.environ["EXDD_LAB_CACHE"] = str(root)
    os.environ["EXDD_LAB_METRICS_DIR"] = str(root / "notebook-metrics")
    yield root
    if old is None:
        os.environ.pop("EXDD_LAB_CACHE", None)
    else:
        os.environ["EXDD_LAB_CACHE"] = old


@pytest.fixture(scope="session")
def tiny_mvtec(tmp_path_factory) -> Path:
    """A small procedural dataset in the MVTec layout (64 px): 8 train, 4 good + 6 defect test images."""
    from exdd_lab.data import write_procedural_dataset

    return write_procedural_dataset(tmp_path_factory.mktemp("tiny"), "tile", n_train=8, n_test_good=4,
                                    n_test_defect=6, image_size=64, seed=3)


@pytest.fixture()
def mtd_root() -> Path:
    if not SHARED_MTD.is_dir():
        pytest.skip(f"real data not available: {SHARED_MTD} is missing (it is present in CI)")
    return SHARED_MTD


def save_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


@pytest.fixture()
def make_png():
    return save_png
