"""Exact nearest-neighbour search over patch features, with faiss.

The one place the kit calls faiss directly; memory banks and analysis cells build on it.
Shapes: ``reference (M, C)``, ``queries (Q, C)`` -> distances and indices ``(Q, k)``. Distances are
Euclidean (faiss returns squared L2; we take the root). Notebook 01's distance histograms use it
through :func:`~exdd_lab.features.inspect.nearest_normal_distances`.
"""
from __future__ import annotations

import faiss
import numpy as np
import torch

from exdd_lab.errors import ExddError


def _as_float32(x: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


def flat_index(reference: np.ndarray | torch.Tensor) -> faiss.IndexFlatL2:
    """An exact L2 index over ``reference (M, C)``."""
    ref = _as_float32(reference)
    if ref.ndim != 2 or ref.shape[0] == 0:
        raise ExddError(f"cannot search an empty or non-2-D reference set (shape {ref.shape})",
                        "add normal patch features before searching")
    index = faiss.IndexFlatL2(ref.shape[1])
    index.add(ref)
    return index


def knn(
    queries: np.ndarray | torch.Tensor,
    reference: np.ndarray | torch.Tensor | faiss.Index,
    k: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Distances ``(Q, k)`` (Euclidean, ascending) and indices ``(Q, k)`` of each query's k nearest references."""
    index = reference if isinstance(reference, faiss.Index) else flat_index(reference)
    q = _as_float32(queries)
    if q.ndim != 2 or q.shape[1] != index.d:
        raise ExddError(f"query features have shape {q.shape} but the reference has dimension {index.d}",
                        "extract queries and reference with the same backbone, layers and projection")
    sq, idx = index.search(q, k)
    return np.sqrt(np.maximum(sq, 0.0)), idx
