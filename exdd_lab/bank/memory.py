"""A memory bank of patch features: add, subsample with a coreset, search with faiss, save and load.

The bank does not know what its patches mean (normal or defect): PatchCore keeps one of normal
patches, ExDD a second one of defect patches. Shapes: items ``(M, C)`` float32.
How it is searched (exact, or approximate above a measured size) is a strategy of
:mod:`exdd_lab.bank.index`. Saved as ``<name>.safetensors`` (the features, and a built approximate
index) plus ``<name>.json`` (metadata), no pickle.
Taught in ``notebooks/02_negative_only_baselines.ipynb``.
"""
from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import torch
from safetensors.torch import load_file, save

from exdd_lab.bank.index import BANK_INDEXES, build_index, index_from_bytes, index_to_bytes, strategy
from exdd_lab.bank.coreset import DEFAULT_PROJECTION, coreset_size, greedy_coreset
from exdd_lab.errors import ExddError
from exdd_lab.components.neighbours import knn
from exdd_lab.storage import atomic_write, atomic_write_json


class BankError(ExddError, ValueError):
    """An empty bank, features of the wrong dimension, or a saved bank from another feature setup."""


class MemoryBank:
    """Patch features with a faiss index. ``metadata`` records the feature setup (backbone, layers, ...)."""

    def __init__(self, dim: int, metadata: dict | None = None, index: str = "auto", seed: int = 0) -> None:
        if index not in BANK_INDEXES:
            raise BankError(f"unknown bank index {index!r}", f"choose one of {', '.join(BANK_INDEXES)} "
                            "('auto': exact up to a measured size, approximate above; see exdd_lab.bank.index)")
        self.dim = int(dim)
        self.metadata = dict(metadata or {})
        self.index_type = index  # the strategy asked for ("auto" by default)
        self.index_seed = int(seed)  # seeds an approximate index's k-means
        self._items = torch.empty(0, self.dim)
        self._index: faiss.Index | None = None
        self._index_built: str | None = None
        self._flat: faiss.Index | None = None  # exact index beside an approximate one (refine_worst)

    @property
    def index_in_use(self) -> str:
        """The concrete strategy searching this bank (``flat``, ``ivf``, ...): what ``auto`` resolves to at its size."""
        return self._index_built or strategy(self.index_type).resolve(len(self))

    @property
    def exact(self) -> bool:
        """Whether a search returns the true nearest items (the index in use is exact)."""
        return bool(strategy(self.index_in_use).exact)

    def use_index(self, name: str) -> MemoryBank:
        """Search with strategy ``name`` from now on (the index is rebuilt on the next search): to compare
        exact and approximate search on one bank."""
        BANK_INDEXES.check(name)
        self.index_type = name
        self._index = self._index_built = None
        return self

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
        self._index = self._index_built = self._flat = None
        return self

    def subsample(self, ratio: float, seed: int = 0, projection_dim: int | None = DEFAULT_PROJECTION) -> np.ndarray:
        """Keep a greedy k-center coreset of ``ratio`` of the items; returns the kept indices."""
        if not len(self):
            raise BankError("cannot subsample an empty memory bank", "add features first")
        keep = greedy_coreset(self._items, coreset_size(len(self), ratio), projection_dim, seed)
        self._items = self._items[torch.from_numpy(np.sort(keep))].contiguous()
        self._index = self._index_built = self._flat = None
        self.metadata["coreset"] = {"ratio": ratio, "seed": seed, "projection_dim": projection_dim}
        return keep

    # ------------------------------------------------------------------ search
    def index(self) -> faiss.Index:
        """The faiss index over the items, built on first use."""
        if not len(self):
            raise BankError("the memory bank is empty", "add normal patch features (bank.add) before searching")
        if self._index is None:
            self._index, self._index_built = build_index(self._items.numpy(), self.index_type, self.index_seed)
        return self._index

    def search(self, queries: torch.Tensor | np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Euclidean distances ``(Q, k)`` (ascending) and item indices ``(Q, k)`` of each query's k nearest items."""
        q = self._check_dim(queries, "query features")
        return knn(q, self.index(), min(k, len(self)) if len(self) else k)

    def refine_worst(self, queries: torch.Tensor | np.ndarray, distances: np.ndarray, indices: np.ndarray,
                     start: int = 8) -> int:
        """Make each group's largest distance exact after an approximate search; returns how many queries were
        searched again exactly.

        ``queries (n, P, C)`` are ``n`` images' patches, ``distances``/``indices (n, P)`` their nearest-item answers
        from :meth:`search` (updated in place). An approximate index can only overestimate a distance, so the
        image's ``start`` highest patches are searched exactly; when the largest exact one is at least every
        remaining approximate distance (an upper bound on its exact value), it is the true maximum, else twice as
        many are refined. PatchCore's image score (the largest patch distance) is then the exact search's, whatever
        the index; with an exact index nothing is done."""
        if self.exact or not distances.size:
            return 0
        queries = torch.as_tensor(queries).reshape(distances.shape[0], distances.shape[1], -1)
        refined = np.zeros(distances.shape, bool)
        todo, top, searched = np.arange(distances.shape[0]), start, 0
        while len(todo):
            order = np.argsort(-distances[todo], axis=1, kind="stable")[:, :top]
            rows = np.repeat(todo, order.shape[1])
            cols = order.ravel()
            new = ~refined[rows, cols]
            rows, cols = rows[new], cols[new]
            if len(rows):
                d, i = _blas_knn(queries[torch.from_numpy(rows), torch.from_numpy(cols)], self._exact_index())
                distances[rows, cols], indices[rows, cols], refined[rows, cols] = d[:, 0], i[:, 0], True
                searched += len(rows)
            exact_max = np.where(refined[todo], distances[todo], -np.inf).max(1)
            bound = np.where(refined[todo], -np.inf, distances[todo]).max(1)
            todo, top = todo[exact_max < bound], top * 2
        return searched

    def _exact_index(self) -> faiss.Index:
        """An exact index over the items (for :meth:`refine_worst` beside an approximate one), built on first use."""
        if self._flat is None:
            self._flat = build_index(self._items.numpy(), "flat")[0]
        return self._flat

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write ``path.safetensors`` and ``path.json`` atomically; an approximate index is built and saved
        with the items, so the loaded bank answers every query as this one does."""
        path = Path(path)
        tensors = {"items": self._items.contiguous()}
        if len(self) and not self.exact:
            tensors["index"] = torch.from_numpy(index_to_bytes(self.index()))
        with atomic_write(path.with_suffix(".safetensors")) as handle:
            handle.write(save(tensors))
        atomic_write_json(path.with_suffix(".json"), {"dim": self.dim, "index": self.index_type, "index_seed": self.index_seed,
                                                      "index_in_use": self.index_in_use if len(self) else None,
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
        bank = cls(meta["dim"], meta["metadata"], meta.get("index", "flat"), meta.get("index_seed", 0))
        tensors = load_file(data_file)
        bank._items = tensors["items"]
        if "index" in tensors:
            bank._index_built = meta["index_in_use"]
            bank._index = index_from_bytes(tensors["index"].numpy(), bank._index_built, len(bank), bank.dim)
        return bank

    def __repr__(self) -> str:
        index = self.index_type if self.index_type != "auto" else f"auto: {self.index_in_use}"
        return f"MemoryBank({len(self)} patches x {self.dim} dims, {self.size_mb:.1f} MB, index={index})"


def _blas_knn(queries: torch.Tensor, index: faiss.Index) -> tuple[np.ndarray, np.ndarray]:
    """Exact nearest items of a few queries through faiss's matrix-product path.

    faiss computes distances query by query below ``distance_compute_blas_threshold`` queries (128,000 in
    this build), which for the few dozen queries of :meth:`MemoryBank.refine_worst` against a 163,840-item
    bank costs 2.2 ms a query; the matrix-product path costs 0.37 (measured, 2 cores). Distances agree to a
    few 1e-6 relative, the neighbours exactly (``benchmarks/README.md``, cost growth).
    """
    saved = faiss.cvar.distance_compute_blas_threshold
    faiss.cvar.distance_compute_blas_threshold = 1
    try:
        return knn(queries, index, 1)
    finally:
        faiss.cvar.distance_compute_blas_threshold = saved
