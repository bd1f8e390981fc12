"""Greedy k-center coreset selection (PatchCore's memory subsampling), made fast on a CPU.

Greedy k-center picks, one at a time, the feature farthest from everything picked so far, so the
kept subset covers the whole set, rare patches included (random subsampling would drop exactly
those). The textbook loop touches all ``N x d`` values at each of its ``k`` steps: for 400 images
(409,600 patches) and a 1% bank that is minutes on two cores, for 10% an hour.

What makes it fast here:

1. **two-stage ("composable") greedy**: the points are split into pieces of ``chunk_size`` (default
   4,096 patches = 4 images, a block that stays in the CPU cache); greedy picks ``oversample x``
   (default 4) its share of centers in each piece, then a final greedy pass picks ``k`` centers from
   that union. Work drops from ``k N d`` to about ``oversample k chunk d + (oversample k) k d``. The
   defaults were chosen by measurement (benchmarks/README.md): on MTD, both splits, they land within
   0.005 image AUROC of the textbook greedy at about 1/20 of its time; the previous 16-image pieces with
   2x oversampling on a 128-d projection lost 0.01. For very large ``k`` (thousands of training images,
   or a 10% bank) one final pass over all candidates would cost ``(oversample k) k d``, growing with the
   square of the training set; above ``FINAL_STAGE_BUDGET`` it runs instead on groups of
   ``FINAL_GROUP_CANDIDATES`` candidates in stream order, each keeping 1/oversample of its own, so the
   cost grows linearly. (Before, the oversampling shrank to fit the budget, down to no final pass at
   all: at 4,000 MTD images that lost 0.020 image AUROC and 0.045 pixel AUROC against a full final pass;
   the grouped pass came within 0.003 / 0.009 of it at a quarter of its time.) :class:`StreamingCoreset`
   runs the stages on chunks that arrive one at a time (PatchCore's fit streams image groups through it);
2. optionally, selection on a seeded random projection to ``projection_dim`` dimensions (PatchCore's
   reference projects to 128 to make its exact greedy affordable); the bank keeps the full features.
   The default (``DEFAULT_PROJECTION = None``) selects on the features themselves;
3. squared distances, preallocated buffers and in-place updates: one matrix-vector product and one
   elementwise minimum per step, no temporaries that pile up.

``method="exact"`` runs the textbook loop (same buffers) for comparison. Triangle-inequality
pruning was tried and dropped: on patch features about 35% of points stay candidates at every step,
so its bookkeeping cost more than it saved.

Shapes: features ``(N, C)``; returns indices ``(k,)`` into them.
Taught in ``notebooks/02_negative_only_baselines.ipynb``.
"""
from __future__ import annotations

import contextlib
import itertools
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from exdd_lab.components.projection import gaussian_projection
from exdd_lab.components.registry import Registry
from exdd_lab.errors import SettingsError
from exdd_lab.storage import cache_root


FINAL_STAGE_BUDGET = 6e10  # multiply-adds of the final greedy pass: about 10 s on two cores
#: First-stage piece size and oversampling (measured in benchmarks/README.md, "exact greedy's quality"):
#: pieces of 4 images (4,096 patches) with 4x oversampling came within 0.005 image AUROC of the exact greedy.
DEFAULT_CHUNK_PATCHES = 4096
#: Candidates per group of the grouped final pass (about 800 images' worth at a 1% bank): each group costs
#: ``FINAL_GROUP_CANDIDATES**2 / oversample * d`` multiply-adds, about 4e10 (some 13 s on two cores). None: no
#: groups, the old behaviour (oversampling shrinks to fit FINAL_STAGE_BUDGET, down to no final pass), which lost
#: 0.020 image AUROC, 0.045 pixel AUROC and 0.031 AUPRO at 4,000 MTD images (benchmarks/README.md, "Cost growth").
FINAL_GROUP_CANDIDATES: int | None = 32_768
DEFAULT_OVERSAMPLE = 4.0
#: Selection on the full features (None) or on a random projection to this many dimensions. The reference
#: projects to 128 for the exact greedy's sake; for the two-stage greedy the projection cost more AUROC
#: than it saved seconds (benchmarks/README.md), so the default selects on the features themselves.
DEFAULT_PROJECTION: int | None = None


def coreset_size(n: int, ratio: float) -> int:
    """How many items a ``ratio`` keeps of ``n`` (at least 1)."""
    if not 0 < ratio <= 1:
        raise SettingsError(f"coreset ratio {ratio} is outside (0, 1]",
                            "give the share of patches to keep, e.g. --coreset 0.01 (1%) or 0.1 (10%)")
    return max(1, int(round(n * ratio)))


def greedy_k_center(x: torch.Tensor, k: int, first: int) -> np.ndarray:
    """Textbook farthest-point selection on ``x (n, d)``, starting at ``first``; squared distances, in place."""
    n = x.shape[0]
    k = min(k, n)
    sq = (x * x).sum(1)
    min_d = torch.full((n,), float("inf"))
    d_new = torch.empty(n)
    chosen = np.empty(k, np.int64)
    new = first
    for step in range(k):
        chosen[step] = new
        torch.mv(x, x[new], out=d_new)  # d_new = x . c
        d_new.mul_(-2).add_(sq).add_(sq[new])  # |x - c|^2 = |x|^2 - 2 x.c + |c|^2
        torch.minimum(min_d, d_new, out=min_d)
        min_d[new] = -1.0  # never pick a chosen point again
        if step + 1 < k:
            new = int(torch.argmax(min_d))
    return chosen


def greedy_coreset(
    features: torch.Tensor | np.ndarray,
    k: int,
    projection_dim: int | None = DEFAULT_PROJECTION,
    seed: int = 0,
    method: str = "two-stage",
    chunk_size: int | None = None,
    oversample: float | None = None,
) -> np.ndarray:
    """Indices of ``k`` features chosen by greedy k-center selection (see the module docstring).

    ``method`` is ``"two-stage"`` (default) or ``"exact"`` (textbook): the names of :data:`CORESET_METHODS`.
    With fewer than two chunks' worth of points the two agree, and the exact loop runs.
    """
    x = features if isinstance(features, torch.Tensor) else torch.from_numpy(np.asarray(features))
    x = x.float()
    n = x.shape[0]
    if n == 0:
        raise ValueError("cannot select a coreset from an empty feature set")
    CORESET_METHODS.check(method)
    k = min(int(k), n)
    gen = torch.Generator().manual_seed(seed)
    if projection_dim and projection_dim < x.shape[1]:
        x = x @ gaussian_projection(x.shape[1], projection_dim, gen)
    x = x.contiguous()
    first = int(torch.randint(n, (1,), generator=gen))
    chunk_size = chunk_size or DEFAULT_CHUNK_PATCHES
    oversample = oversample or DEFAULT_OVERSAMPLE
    n_chunks = n // chunk_size
    if method == "exact" or n_chunks < 2 or oversample * k >= n:
        return greedy_k_center(x, k, first)
    stream = StreamingCoreset(n, k, x.shape[1], projection_dim=None, seed=seed, oversample=oversample, chunk_patches=None,
                              group_candidates=FINAL_GROUP_CANDIDATES)
    for idx in torch.tensor_split(torch.randperm(n, generator=gen), n_chunks):
        stream.add(x[idx], idx)
    return stream.finish_indices()


class StreamingCoreset:
    """The two-stage greedy fed one chunk at a time, so the full feature set never sits in memory.

    ``add(chunk)`` runs the first stage on a chunk (e.g. the patches of 16 images) and keeps only its
    candidates at full dimension; ``finish()`` runs the final greedy over all candidates and returns
    the chosen features ``(k, C)``. Memory: one chunk plus ``oversample x k`` candidates.
    """

    def __init__(self, n_total: int, k: int, dim: int, projection_dim: int | None = DEFAULT_PROJECTION, seed: int = 0,
                 oversample: float = DEFAULT_OVERSAMPLE, chunk_patches: int | None = DEFAULT_CHUNK_PATCHES,
                 group_candidates: int | None = None) -> None:
        if n_total <= 0:
            raise ValueError("cannot select a coreset from an empty feature set")
        self.k = min(int(k), n_total)
        self.chunk_patches = chunk_patches
        # the final stage costs (pool x k x d). When that exceeds FINAL_STAGE_BUDGET (very large k: big training
        # sets, 10% banks), either the final pass runs on groups of ``group_candidates`` candidates in stream order
        # (each group keeps 1/oversample of its candidates: cost linear in the number of images), or, without
        # groups, the oversampling shrinks to fit the budget, down to none (the union of chunk picks is the coreset)
        d = projection_dim if projection_dim and projection_dim < dim else dim
        affordable = max(1.0, min(oversample, FINAL_STAGE_BUDGET / (self.k * self.k * d)))
        self.grouped = bool(group_candidates) and affordable < oversample and oversample > 1.0
        self.group_candidates = group_candidates
        oversample = oversample if self.grouped else affordable
        self.oversample = oversample
        self.final_pass = oversample > 1.0  # without one, chunks round down so the union never exceeds k
        self.keep_share = min(1.0, oversample * self.k / n_total)
        self.gen = torch.Generator().manual_seed(seed)
        self.proj = None
        if projection_dim and projection_dim < dim:
            self.proj = gaussian_projection(dim, projection_dim, self.gen)
        self._pool: list[torch.Tensor] = []
        self._pool_index: list[torch.Tensor] = []
        self._pool_size = 0
        self._picks: list[tuple[torch.Tensor, torch.Tensor, np.ndarray]] = []  # grouped mode: (items, index, rank)
        self._seen = 0

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        return (x @ self.proj).contiguous() if self.proj is not None else x.contiguous()

    def add(self, chunk: torch.Tensor, index: torch.Tensor | None = None) -> None:
        """First stage on one chunk ``(n, C)`` (or ``(n, h, w, C)``); ``index`` names its items (default:
        their running position in the stream)."""
        chunk = chunk.reshape(-1, chunk.shape[-1]).float()
        if index is None:
            index = torch.arange(self._seen, self._seen + len(chunk))
        self._seen += len(chunk)
        if self.chunk_patches and len(chunk) > self.chunk_patches:  # first stage on cache-sized pieces
            for start in range(0, len(chunk), self.chunk_patches):
                self._first_stage(chunk[start : start + self.chunk_patches], index[start : start + self.chunk_patches])
        else:
            self._first_stage(chunk, index)

    def _first_stage(self, chunk: torch.Tensor, index: torch.Tensor) -> None:
        if self.keep_share >= 1.0:
            keep = torch.arange(len(chunk))
        else:
            share = self.keep_share * len(chunk)
            k_chunk = max(1, int(np.ceil(share) if self.final_pass else np.floor(share)))
            start = int(torch.randint(len(chunk), (1,), generator=self.gen))
            keep = torch.from_numpy(greedy_k_center(self._project(chunk), k_chunk, start))
        self._pool.append(chunk[keep].clone())
        self._pool_index.append(index[keep].clone())
        self._pool_size += len(keep)
        if self.grouped and self._pool_size >= self.group_candidates:
            self._close_group()

    def _close_group(self) -> None:
        """Grouped mode: the final greedy over the candidates gathered so far, keeping ``1/oversample`` of them with
        each pick's rank (its step divided by the group's picks: early picks cover the most)."""
        pool, index = torch.cat(self._pool), torch.cat(self._pool_index)
        self._pool, self._pool_index, self._pool_size = [], [], 0
        k_group = min(len(pool), int(np.ceil(len(pool) / self.oversample)))
        start = int(torch.randint(len(pool), (1,), generator=self.gen))
        chosen = torch.from_numpy(greedy_k_center(self._project(pool), k_group, start))
        self._picks.append((pool[chosen], index[chosen], np.arange(k_group) / k_group))

    def finish_indices(self) -> np.ndarray:
        """Second stage: the indices (as named in ``add``) of the ``k`` chosen items, sorted."""
        return np.sort(self._finish()[1].numpy())

    def finish(self) -> torch.Tensor:
        """Second stage: the chosen features ``(k, C)``, in stream order."""
        return self.finish_with_index()[0]

    def finish_with_index(self) -> tuple[torch.Tensor, np.ndarray]:
        """Second stage: the chosen features ``(k, C)`` and their stream positions ``(k,)``, in stream order."""
        feats, index = self._finish()
        order = torch.argsort(index)
        return feats[order].contiguous(), index[order].numpy()

    def _finish(self) -> tuple[torch.Tensor, torch.Tensor]:
        if not self._pool and not self._picks:
            raise ValueError("no features were added to the coreset")
        if self.grouped:
            if self._pool:
                self._close_group()
            items, index = torch.cat([p[0] for p in self._picks]), torch.cat([p[1] for p in self._picks])
            rank = np.concatenate([p[2] for p in self._picks])
            self._picks = []
            keep = torch.from_numpy(np.sort(np.argsort(rank, kind="stable")[: self.k]))  # drop every group's latest picks
            return items[keep], index[keep]
        pool, index = torch.cat(self._pool), torch.cat(self._pool_index)
        self._pool, self._pool_index = [], []
        if len(pool) <= self.k or not self.final_pass:
            return pool[: self.k], index[: self.k]
        start = int(torch.randint(len(pool), (1,), generator=self.gen))
        chosen = torch.from_numpy(greedy_k_center(self._project(pool), self.k, start))
        return pool[chosen], index[chosen]


#: How a memory bank is subsampled: ``CORESET_METHODS[name](projection_dim, seed).run(chunks, n_total, k)``.
CORESET_METHODS: Registry[type] = Registry("coreset method")


@CORESET_METHODS.register("two-stage")
class TwoStageCoreset:
    """The two-stage greedy on chunks as they arrive (:class:`StreamingCoreset`), its final pass on groups of
    :data:`FINAL_GROUP_CANDIDATES` candidates when one pass over all would exceed the budget: memory stays at
    one chunk plus the candidates, and the cost grows linearly with the number of images (the default)."""

    description = "streaming two-stage greedy"

    def __init__(self, projection_dim: int | None = DEFAULT_PROJECTION, seed: int = 0) -> None:
        self.projection_dim, self.seed = projection_dim, seed

    def run(self, chunks: Iterable[torch.Tensor], n_total: int, k: int) -> tuple[torch.Tensor, np.ndarray]:
        """``chunks`` ``(n_i, ..., C)`` holding ``n_total`` items -> chosen items ``(k, C)`` and their positions."""
        stream = None
        for chunk in chunks:
            if stream is None:
                stream = StreamingCoreset(n_total, k, chunk.shape[-1], self.projection_dim, self.seed,
                                          group_candidates=FINAL_GROUP_CANDIDATES)
            stream.add(chunk)
        if stream is None:
            raise ValueError("no features were given to the coreset")
        return stream.finish_with_index()


@CORESET_METHODS.register("exact")
class ExactCoreset:
    """The textbook greedy over all items at once (the reference selection; slower). Every step touches every
    item, so all features must persist: they are written, chunk by chunk, to a disk-backed array in the kit's
    cache (:func:`feature_scratch`), which the operating system may page out, and removed when it returns."""

    description = "exact greedy"

    def __init__(self, projection_dim: int | None = DEFAULT_PROJECTION, seed: int = 0) -> None:
        self.projection_dim, self.seed = projection_dim, seed

    def run(self, chunks: Iterable[torch.Tensor], n_total: int, k: int) -> tuple[torch.Tensor, np.ndarray]:
        """Same contract as :meth:`TwoStageCoreset.run`; positions are sorted, so items stay in input order."""
        chunks = iter(chunks)
        first = next(chunks, None)
        if first is None:
            raise ValueError("no features were given to the coreset")
        with feature_scratch(n_total, first.shape[-1]) as store:
            filled = 0
            for chunk in itertools.chain([first], chunks):
                chunk = chunk.reshape(-1, chunk.shape[-1]).float().numpy()
                store[filled : filled + len(chunk)] = chunk
                filled += len(chunk)
            if filled != n_total:
                raise ValueError(f"the coreset was promised {n_total} features and given {filled}")
            x = torch.from_numpy(store)
            if k >= len(x):
                return x.clone(), np.arange(len(x))
            keep = np.sort(greedy_coreset(x, k, self.projection_dim, self.seed, method="exact"))
            return x[torch.from_numpy(keep)].clone(), keep


@contextlib.contextmanager
def feature_scratch(n: int, dim: int) -> Iterator[np.ndarray]:
    """A disk-backed ``(n, dim)`` float32 array (numpy memmap) in ``<cache>/scratch`` (the system's temporary
    folder when the cache cannot be written), removed on leaving, also after an error."""
    try:
        folder = cache_root() / "scratch"
        folder.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile(dir=folder, prefix="features-", suffix=".f32", delete=False)
    except OSError:  # a read-only cache: the system's temporary folder instead
        handle = tempfile.NamedTemporaryFile(prefix="exdd-features-", suffix=".f32", delete=False)
    handle.close()
    path = Path(handle.name)
    try:
        store = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
        yield store
        del store
    finally:
        path.unlink(missing_ok=True)


def coverage_radius(features: torch.Tensor | np.ndarray, chosen: np.ndarray, chunk: int = 65536) -> float:
    """The largest distance from any feature to its nearest chosen one: what greedy k-center minimises."""
    from exdd_lab.components.neighbours import knn

    x = np.asarray(features, np.float32)
    worst = 0.0
    for start in range(0, len(x), chunk):
        d, _ = knn(x[start : start + chunk], x[chosen], k=1)
        worst = max(worst, float(d.max()))
    return worst
