"""A memory bank of patch features: add, subsample with a coreset, search with faiss, save and load.

The bank does not know what its patches mean (normal or defect): PatchCore keeps one of normal
patches, ExDD a second one of defect patches. Shapes: items ``(M, C)`` float32.
Saved as ``<name>.safetensors`` (the features) plus ``<name>.json`` (metadata), no pickle.
Taught in ``notebooks/02_negative_only_baselines.ipynb``.
"""
from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import torch
from safetensors.torch import load_file, save

from exdd_lab.coreset import DEFAULT_PROJECTION, coreset_size, greedy_coreset
from exdd_lab.errors import ExddError
from exdd_lab.neighbours import knn
from exdd_lab.storage import atomic_write, atomic_write_json


class BankError(ExddError, ValueError):
    """An empty bank, features of the wrong dimension, or a saved bank from another feature setup."""


class MemoryBank:
    """Patch features with a faiss index. ``metadata`` records the feature setup (backbone, layers, ...)."""

    def __init__(self, dim: int, metadata: dict | None = None, index: str = "flat") -> None:
        if index not in ("flat", "hnsw"):
            raise BankError(f"unknown index type {index!r}", "use 'flat' (exact, default) or 'hnsw' (approximate, large banks)")
        self.dim = int(dim)
        self.metadata = dict(metadata or {})
        self.index_type = index
        self._items = torch.empty(0, self.dim)
        self._index: faiss.Index | None = None

    # ------------------------------------------------------------------ contents
    @property
    def items(self) -> torch.Tensor:
        return self._items

    def __len__(self) -> int:
        return self._items.shape[0]

    @property
    def size_mb(self) -> float:
        return self._items.numel() * 4 / 2**20

    def _check_dim(self, features: torch.Tensor, what: str) -> torch.Tensor:
        features = torch.as_tensor(features).float()
        if features.ndim == 4:  # (N, h, w, C) patch grids
            features = features.reshape(-1, features.shape[-1])
        if features.ndim != 2 or features.shape[1] != self.dim:
            raise BankError(
                f"{what} have shape {tuple(features.shape)} but this bank holds {self.dim}-dimensional features",
                "extract both with the same backbone, layers and projection (see bank.metadata)",
            )
        return features

    def add(self, features: torch.Tensor | np.ndarray) -> MemoryBank:
        """Append features ``(M, C)`` or patch grids ``(N, h, w, C)``."""
        features = self._check_dim(features, "added features")
        self._items = torch.cat([self._items, features.contiguous()]) if len(self) else features.contiguous().clone()
        self._index = None
        return self

    def subsample(self, ratio: float, seed: int = 0, projection_dim: int | None = DEFAULT_PROJECTION) -> np.ndarray:
        """Keep a greedy k-center coreset of ``ratio`` of the items; returns the kept indices."""
        if not len(self):
            raise BankError("cannot subsample an empty memory bank", "add features first")
        keep = greedy_coreset(self._items, coreset_size(len(self), ratio), projection_dim, seed)
        self._items = self._items[torch.from_numpy(np.sort(keep))].contiguous()
        self._index = None
        self.metadata["coreset"] = {"ratio": ratio, "seed": seed, "projection_dim": projection_dim}
        return keep

    # ------------------------------------------------------------------ search
    def index(self) -> faiss.Index:
        """The faiss index over the items, built on first use."""
        if not len(self):
            raise BankError("the memory bank is empty", "add normal patch features (bank.add) before searching")
        if self._index is None:
            if self.index_type == "hnsw":
                index = faiss.IndexHNSWFlat(self.dim, 32)
                index.hnsw.efSearch = 64
            else:
                index = faiss.IndexFlatL2(self.dim)
            index.add(np.ascontiguousarray(self._items.numpy(), dtype=np.float32))
            self._index = index
        return self._index

    def search(self, queries: torch.Tensor | np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Euclidean distances ``(Q, k)`` (ascending) and item indices ``(Q, k)`` of each query's k nearest items."""
        q = self._check_dim(queries, "query features")
        return knn(q, self.index(), min(k, len(self)) if len(self) else k)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write ``path.safetensors`` and ``path.json`` atomically."""
        path = Path(path)
        with atomic_write(path.with_suffix(".safetensors")) as handle:
            handle.write(save({"items": self._items.contiguous()}))
        atomic_write_json(path.with_suffix(".json"), {"dim": self.dim, "index": self.index_type,
                                                      "size": len(self), "metadata": self.metadata})

    @classmethod
    def load(cls, path: str | Path, expect: dict | None = None) -> MemoryBank:
        """Read a bank saved by :meth:`save`. ``expect`` (e.g. the current feature setup) must match its metadata."""
        path = Path(path)
        meta_file, data_file = path.with_suffix(".json"), path.with_suffix(".safetensors")
        if not meta_file.is_file() or not data_file.is_file():
            raise BankError(f"no saved memory bank at {path} (need {meta_file.name} and {data_file.name})",
                            "save one with bank.save(path) or fit the method first")
        meta = json.loads(meta_file.read_text())
        for key, value in (expect or {}).items():
            if meta["metadata"].get(key) != value:
                raise BankError(
                    f"memory bank {path} was built with {key}={meta['metadata'].get(key)!r}, not {value!r}",
                    "rebuild the bank with the current backbone/feature settings, or load it with matching settings",
                )
        bank = cls(meta["dim"], meta["metadata"], meta.get("index", "flat"))
        bank._items = load_file(data_file)["items"]
        return bank

    def __repr__(self) -> str:
        return f"MemoryBank({len(self)} patches x {self.dim} dims, {self.size_mb:.1f} MB, index={self.index_type})"
