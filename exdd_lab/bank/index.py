"""How a memory bank is searched: exact (``flat``) or approximate (``ivf``, ``hnsw``), one registered strategy each.

Exact search compares every test patch with every bank item, so its cost grows with the bank, and the
bank grows with the training set (1% of all training patches). Measured on 2 cores, 1,024 patches of 152
dimensions per image: 8.9 ms at 4,096 items, 41 ms at 16,384, 586 ms at 163,840 (a 16,000-image fit),
against 25 ms for the backbone's forward pass (benchmarks/README.md, "Cost growth"). An approximate index
looks at a small part of the bank instead:

- ``ivf``: faiss ``IndexIVFFlat``: the items are clustered (k-means, seeded) into about ``4 sqrt(M)`` lists;
  a query is compared only with the items of its ``nprobe`` nearest lists. Deterministic: the same items
  and seed give the same index and the same answers, whatever the number of threads.
- ``hnsw``: faiss ``IndexHNSWFlat``, a navigable small-world graph; built on one thread, so the graph (and
  every score) is the same from run to run.
- ``auto`` (the default): exact up to :data:`AUTO_EXACT_LIMIT` items, ``ivf`` above it. Every bank of the
  kit's usual data sets (a few hundred to a few thousand training images at 1%) stays exact; the limit and
  the approximate index's effect on AUROC and AUPRO are measured in benchmarks/README.md ("Approximate
  search: fidelity").

An approximate search can only miss the true nearest item, never find a closer one, so its distances are
never below the exact ones. A built approximate index is saved with its bank (faiss's own binary format,
inside the bank's safetensors file), so a loaded detector answers exactly as it did when it was fitted.
"""
from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np

from exdd_lab.components.registry import Registry
from exdd_lab.errors import ExddError
from exdd_lab.components.neighbours import flat_index

#: Banks up to this many items are searched exactly under ``auto``. Measured on MTD patch features, 2 cores, search
#: ms per image exact / IVF: 7.8 / 10.3 at 2,560 items, 18.9 / 11.5 at 10,240, 64 / 14 at 25,562, 328 / 34 at
#: 163,840 (benchmarks/README.md, "Cost growth"): above about 16,000 items exact search costs more than the
#: backbone's forward pass (25 ms) and IVF is three times faster or more, while PatchCore's image score stays
#: exact (see MemoryBank.refine_worst) and pixel AUROC and AUPRO move by less than 0.001.
AUTO_EXACT_LIMIT = 16_384


class BankIndexError(ExddError, ValueError):
    """An unknown index strategy, or a saved index that does not fit its bank."""


BANK_INDEXES: Registry[type] = Registry("bank index", BankIndexError, hint=" (see exdd_lab.bank.index)")


@BANK_INDEXES.register("auto")
@dataclass(frozen=True)
class AutoIndex:
    """Exact up to :data:`AUTO_EXACT_LIMIT` items, the ``approximate`` strategy above it (the default)."""

    approximate: str = "ivf"
    exact = None  # depends on the bank's size: see resolve()

    def resolve(self, n_items: int) -> str:
        """The strategy name ``auto`` stands for at a bank of ``n_items``."""
        return "flat" if n_items <= AUTO_EXACT_LIMIT else self.approximate


@BANK_INDEXES.register("flat")
@dataclass(frozen=True)
class FlatIndex:
    """Exact L2 search (``IndexFlatL2``): every query against every item."""

    exact = True

    def resolve(self, n_items: int) -> str:
        return "flat"

    def build(self, items: np.ndarray, seed: int = 0) -> faiss.Index:
        return flat_index(items)

    def configure(self, index: faiss.Index) -> None:
        """Nothing to set on an exact index."""


@BANK_INDEXES.register("ivf")
@dataclass(frozen=True)
class IvfIndex:
    """Inverted lists over k-means cells: ``lists_per_sqrt`` x sqrt(M) cells, ``nprobe`` of them searched."""

    lists_per_sqrt: float = 4.0
    nprobe: int = 32
    exact = False

    def resolve(self, n_items: int) -> str:
        return "ivf"

    def n_lists(self, n_items: int) -> int:
        """Cells for a bank of ``n_items``: about 4 sqrt(M), at least 1, at most one per 39 items (k-means needs points)."""
        return int(max(1, min(round(self.lists_per_sqrt * np.sqrt(n_items)), n_items // 39)))

    def build(self, items: np.ndarray, seed: int = 0) -> faiss.Index:
        quantizer = faiss.IndexFlatL2(items.shape[1])
        index = faiss.IndexIVFFlat(quantizer, items.shape[1], self.n_lists(len(items)))
        index.cp.seed = int(seed)
        index.train(items)
        index.add(items)
        self.configure(index)
        return index

    def configure(self, index: faiss.Index) -> None:
        faiss.extract_index_ivf(index).nprobe = min(self.nprobe, faiss.extract_index_ivf(index).nlist)


@BANK_INDEXES.register("hnsw")
@dataclass(frozen=True)
class HnswIndex:
    """A small-world graph with ``links`` neighbours per node, searched with a beam of ``ef_search``."""

    links: int = 32
    ef_construction: int = 40
    ef_search: int = 64
    exact = False

    def resolve(self, n_items: int) -> str:
        return "hnsw"

    def build(self, items: np.ndarray, seed: int = 0) -> faiss.Index:
        index = faiss.IndexHNSWFlat(items.shape[1], self.links)
        index.hnsw.efConstruction = self.ef_construction
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)  # a parallel build inserts in a racy order: another graph every run
        try:
            index.add(items)
        finally:
            faiss.omp_set_num_threads(threads)
        self.configure(index)
        return index

    def configure(self, index: faiss.Index) -> None:
        index.hnsw.efSearch = self.ef_search


def strategy(name: str):
    """The strategy registered as ``name`` (an instance with its default parameters)."""
    return BANK_INDEXES[name]()


def build_index(items: np.ndarray, name: str = "auto", seed: int = 0) -> tuple[faiss.Index, str]:
    """A faiss index over ``items (M, C)`` by strategy ``name``, and the concrete strategy it resolved to."""
    resolved = strategy(name).resolve(len(items))
    return strategy(resolved).build(np.ascontiguousarray(items, dtype=np.float32), seed), resolved


def index_to_bytes(index: faiss.Index) -> np.ndarray:
    """A built index as ``uint8`` bytes (faiss's own format), to be saved beside the bank's items."""
    return faiss.serialize_index(index)


def index_from_bytes(data: np.ndarray, name: str, n_items: int, dim: int) -> faiss.Index:
    """An index saved by :func:`index_to_bytes`; refuses one that does not hold ``n_items`` of ``dim``."""
    index = faiss.deserialize_index(np.ascontiguousarray(data, dtype=np.uint8))
    if index.ntotal != n_items or index.d != dim:
        raise BankIndexError(f"the saved {name} index holds {index.ntotal} x {index.d} items, the bank {n_items} x {dim}",
                          "the bank's files were mixed from two saves: fit and save the detector again")
    strategy(name).configure(index)
    return index
