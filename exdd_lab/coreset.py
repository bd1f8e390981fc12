"""Greedy k-center coreset selection (PatchCore's memory subsampling), made fast on a CPU.

Greedy k-center picks, one at a time, the feature farthest from everything picked so far, so the
kept subset covers the whole set, rare patches included (random subsampling would drop exactly
those). The textbook loop touches all ``N x d`` values at each of its ``k`` steps: for 400 images
(409,600 patches) and a 1% bank that is minutes on two cores, for 10% an hour.

What makes it fast here:

1. selection runs on a seeded random projection to ``projection_dim`` dimensions (as PatchCore);
   the bank keeps the full features;
2. **two-stage ("composable") greedy**: the points are split into random chunks of ``chunk_size``
   (a block that stays in the CPU cache); greedy picks ``oversample x`` its share of centers in
   each chunk, then a final greedy pass picks ``k`` centers from that union. Work drops from
   ``k N d`` to about ``oversample k N d / n_chunks + (oversample k) k d``; the result is a
   k-center cover within a constant factor of the textbook one (measured in the benchmark:
   coverage radius and detection AUROC);
3. squared distances, preallocated buffers and in-place updates: one matrix-vector product and one
   elementwise minimum per step, no temporaries that pile up.

``method="exact"`` runs the textbook loop (same buffers) for comparison. Triangle-inequality
pruning was tried and dropped: on patch features about 35% of points stay candidates at every step,
so its bookkeeping cost more than it saved.

Shapes: features ``(N, C)``; returns indices ``(k,)`` into them.
Taught in ``notebooks/02_negative_only_baselines.ipynb``.
"""
from __future__ import annotations

import numpy as np
import torch


def coreset_size(n: int, ratio: float) -> int:
    """How many items a ``ratio`` keeps of ``n`` (at least 1)."""
    if not 0 < ratio <= 1:
        raise ValueError(f"coreset ratio must be in (0, 1], got {ratio}")
    return max(1, int(round(n * ratio)))


def _greedy(x: torch.Tensor, k: int, first: int) -> np.ndarray:
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
    projection_dim: int | None = 128,
    seed: int = 0,
    method: str = "chunked",
    chunk_size: int = 16384,
    oversample: float = 2.0,
) -> np.ndarray:
    """Indices of ``k`` features chosen by greedy k-center selection (see the module docstring).

    ``method`` is ``"chunked"`` (default, two-stage) or ``"exact"`` (textbook). With fewer than
    two chunks' worth of points the two agree, and the exact loop runs.
    """
    x = features if isinstance(features, torch.Tensor) else torch.from_numpy(np.asarray(features))
    x = x.float()
    n = x.shape[0]
    if n == 0:
        raise ValueError("cannot select a coreset from an empty feature set")
    if method not in ("chunked", "exact"):
        raise ValueError(f"method must be 'chunked' or 'exact', not {method!r}")
    k = min(int(k), n)
    gen = torch.Generator().manual_seed(seed)
    if projection_dim and projection_dim < x.shape[1]:
        x = x @ (torch.randn(x.shape[1], projection_dim, generator=gen) / np.sqrt(projection_dim))
    x = x.contiguous()
    first = int(torch.randint(n, (1,), generator=gen))
    n_chunks = n // chunk_size
    if method == "exact" or n_chunks < 2 or oversample * k >= n:
        return _greedy(x, k, first)
    order = torch.randperm(n, generator=gen)
    chunks = torch.tensor_split(order, n_chunks)
    per_chunk = int(np.ceil(oversample * k / n_chunks))
    candidates = []
    for idx in chunks:
        block = x[idx].contiguous()
        start = int(torch.randint(len(idx), (1,), generator=gen))
        candidates.append(idx[torch.from_numpy(_greedy(block, per_chunk, start))])
    pool = torch.cat(candidates)
    # the final pass starts from the global first point's nearest candidate (usually itself when it was drawn)
    start = int(torch.argmin(((x[pool] - x[first]) ** 2).sum(1)))
    return pool[torch.from_numpy(_greedy(x[pool].contiguous(), k, start))].numpy()


class StreamingCoreset:
    """The two-stage greedy fed one chunk at a time, so the full feature set never sits in memory.

    ``add(chunk)`` runs the first stage on a chunk (e.g. the patches of 16 images) and keeps only its
    candidates at full dimension; ``finish()`` runs the final greedy over all candidates and returns
    the chosen features ``(k, C)``. Memory: one chunk plus ``oversample x k`` candidates.
    """

    def __init__(self, n_total: int, k: int, dim: int, projection_dim: int | None = 128, seed: int = 0,
                 oversample: float = 2.0) -> None:
        if n_total <= 0:
            raise ValueError("cannot select a coreset from an empty feature set")
        self.k = min(int(k), n_total)
        self.keep_share = min(1.0, oversample * self.k / n_total)
        self.gen = torch.Generator().manual_seed(seed)
        self.proj = None
        if projection_dim and projection_dim < dim:
            self.proj = torch.randn(dim, projection_dim, generator=self.gen) / np.sqrt(projection_dim)
        self._pool: list[torch.Tensor] = []

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        return (x @ self.proj).contiguous() if self.proj is not None else x.contiguous()

    def add(self, chunk: torch.Tensor) -> None:
        chunk = chunk.reshape(-1, chunk.shape[-1]).float()
        if self.keep_share >= 1.0:
            self._pool.append(chunk.clone())
            return
        k_chunk = max(1, int(np.ceil(self.keep_share * len(chunk))))
        start = int(torch.randint(len(chunk), (1,), generator=self.gen))
        chosen = _greedy(self._project(chunk), k_chunk, start)
        self._pool.append(chunk[torch.from_numpy(chosen)].clone())

    def finish(self) -> torch.Tensor:
        if not self._pool:
            raise ValueError("no features were added to the coreset")
        pool = torch.cat(self._pool)
        self._pool = []
        start = int(torch.randint(len(pool), (1,), generator=self.gen))
        return pool[torch.from_numpy(np.sort(_greedy(self._project(pool), self.k, start)))].contiguous()


def coverage_radius(features: torch.Tensor | np.ndarray, chosen: np.ndarray, chunk: int = 65536) -> float:
    """The largest distance from any feature to its nearest chosen one: what greedy k-center minimises."""
    from exdd_lab.neighbours import knn

    x = np.asarray(features, np.float32)
    worst = 0.0
    for start in range(0, len(x), chunk):
        d, _ = knn(x[start : start + chunk], x[chosen], k=1)
        worst = max(worst, float(d.max()))
    return worst
