"""What nearest-neighbour search costs as a memory bank grows, exact against approximate (notebook 02).

The bank keeps 1% of all training patches, so it grows with the training set, and exact search compares every
test patch with every item: its cost per image grows in step. :func:`search_cost` times one image's worth of
queries against banks of several sizes drawn from real patch features, for each index strategy of
:mod:`exdd_lab.bank.index`, with the recall of the exact nearest item. :func:`measured_cost_growth` reads the
full measurement of ``benchmarks/cost_growth.py`` (fit and predict at 250 ... 16,000 training images) when the
repository holds it.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from exdd_lab.bank.index import build_index

#: Where benchmarks/cost_growth.py writes its summary (committed with the benchmark notes).
COST_GROWTH_FILE = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "cost_growth.json"


def sample_bank(pool: np.ndarray, size: int, rng: np.random.Generator, jitter: float = 0.05) -> np.ndarray:
    """``size`` rows drawn from ``pool (M, C)`` (with replacement when the pool is smaller), each moved by seeded noise
    of ``jitter`` times the features' spread, so a bank larger than the pool holds no exact duplicates."""
    rows = pool[rng.choice(len(pool), size, replace=size > len(pool))]
    return (rows + rng.standard_normal(rows.shape).astype(np.float32) * jitter * float(pool.std())).astype(np.float32)


def search_cost(pool: np.ndarray | torch.Tensor, sizes: Sequence[int], indexes: Sequence[str] = ("flat", "ivf"),
                patches_per_image: int = 1024, images: int = 2, seed: int = 0,
                forward_ms: float | None = None) -> pd.DataFrame:
    """Search milliseconds per image and recall@1 (against exact search) for banks of ``sizes`` items drawn from
    ``pool`` (patch features ``(M, C)``), one row per (size, index); ``forward_ms`` (the backbone's time per
    image) is added as a column to compare with."""
    pool = np.ascontiguousarray(torch.as_tensor(pool).reshape(-1, torch.as_tensor(pool).shape[-1]).numpy(), np.float32)
    rng = np.random.default_rng(seed)
    queries = sample_bank(pool, patches_per_image * images, rng)
    rows = []
    for size in sizes:
        bank = sample_bank(pool, int(size), rng)
        truth = None
        for name in ("flat", *[i for i in indexes if i != "flat"]):
            index, resolved = build_index(bank, name, seed)
            start = time.perf_counter()
            _, found = index.search(queries, 1)
            ms = 1000 * (time.perf_counter() - start) / images
            truth = found[:, 0] if truth is None else truth
            if name in indexes:
                rows.append({"bank_size": int(size), "index": resolved, "search_ms_per_image": ms,
                             "recall_at_1": float((found[:, 0] == truth).mean())})
    table = pd.DataFrame(rows)
    if forward_ms is not None:
        table["forward_ms_per_image"] = forward_ms
    return table


def measured_cost_growth(path: str | Path | None = None) -> pd.DataFrame | None:
    """The rows of ``benchmarks/cost_growth.py``'s summary (one per data set, configuration and N), or None
    when the file is absent (a copy of the package without the repository's benchmark notes)."""
    path = Path(path) if path else COST_GROWTH_FILE
    if not path.is_file():
        return None
    return pd.DataFrame(json.loads(path.read_text())["rows"])


def forward_ms_per_image(extractor, images: int = 16, batch: int = 8, seed: int = 0) -> float:
    """Milliseconds the backbone's forward pass takes per image (seeded random pixels, after one warm-up batch):
    the floor every scored image pays, to set the search's cost against."""
    size = extractor.config.image_size
    pixels = np.random.default_rng(seed).integers(0, 255, (batch, size, size, 3), dtype=np.uint8)
    extractor(pixels)
    start = time.perf_counter()
    for _ in range(max(1, images // batch)):
        extractor(pixels)
    return 1000 * (time.perf_counter() - start) / (max(1, images // batch) * batch)
