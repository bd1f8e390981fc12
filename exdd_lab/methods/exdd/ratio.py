"""ExDD's scores from two banks: distance to normal over distance to known defects. Pure functions.

Per test patch: ``d_neg`` = distance to the nearest *normal* patch, ``d_pos`` = distance to the nearest
*defect* patch, and the ratio ``R = d_neg / (d_pos + eps)``: large when a patch is far from normal **and**
close to a known defect; a patch that is merely unusual (far from both banks) gets a moderate ratio,
which is how the positive bank cuts false alarms on harmless normal variation.

**Neighbourhood-aware** form: each bank's distance is multiplied by PatchCore's Eq. 7 weight
``w = 1 - softmax(d / T)[0]`` over the distances from the test patch to its nearest bank item and that
item's ``k`` nearest bank neighbours (temperature ``T = sqrt(D)``, ``D`` the feature dimension, as in
ExDD's code). ``w`` is near 1 when the nearest item is isolated in its bank (weak evidence: it stands
alone) and ``1 - 1/k`` when it sits in a dense region, so dense, well-supported matches count for more.
With a bank of one item there is no neighbourhood and ``w = 1``.

``eps`` keeps the ratio finite when a patch coincides with a defect patch (``d_pos = 0``); with
non-negative distances the result is never NaN or infinite. Shapes: ``(P,)`` per patch, or any shape
as long as the two distance arrays agree.

**Gated** form (the kit's default, :func:`gated_scores`): the published ratio is unbounded as
``d_pos -> 0`` and *divides down* every patch far from the synthetic defects, so one normal-looking
patch in the positive bank can make a normal image score high, and a real defect unlike every
synthetic one scores below PatchCore. The gated score starts from PatchCore's ``d_neg`` and only
raises it, by at most ``1 + strength``, where a patch is both unusual (``d_neg`` above the typical worst
patch of a training normal) and closer to a known defect than most normal patches are
(``d_pos`` below the 1% quantile of the training normals' ``d_pos``). Both thresholds come from the
training normals (:func:`normal_statistics`), never from test labels.
Taught in ``notebooks/04_dual_banks_ratio_scoring.ipynb``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from exdd_lab.bank.scoring import reweighting_factor


def ratio_scores(d_neg: np.ndarray, d_pos: np.ndarray, eps: float = 1e-3) -> np.ndarray:
    """``d_neg / (d_pos + eps)``, elementwise; ``eps > 0`` and distances ``>= 0`` are required."""
    d_neg, d_pos = np.asarray(d_neg, np.float64), np.asarray(d_pos, np.float64)
    if eps <= 0:
        raise ValueError(f"eps must be positive, got {eps}")
    if d_neg.shape != d_pos.shape:
        raise ValueError(f"distance arrays differ in shape: {d_neg.shape} vs {d_pos.shape}")
    if (d_neg < 0).any() or (d_pos < 0).any() or not (np.isfinite(d_neg).all() and np.isfinite(d_pos).all()):
        raise ValueError("distances must be finite and non-negative")
    return d_neg / (d_pos + eps)


def bank_support(items: torch.Tensor, k: int, search) -> np.ndarray:
    """``(M, k')`` indices of each bank item's nearest bank items, itself first (``k' = min(k, M)``).

    ``search(queries, k) -> (distances, indices)`` is the bank's own search (e.g. ``MemoryBank.search``).
    """
    k = min(k, len(items))
    _, idx = search(items, k)
    own = np.arange(len(items))
    if k > 1 and not np.array_equal(idx[:, 0], own):  # duplicates may tie: put the item itself first
        rest = np.array([[j for j in row if j != i][: k - 1] for i, row in enumerate(idx)])
        idx = np.concatenate([own[:, None], rest], axis=1)
    return idx


def neighbourhood_weights(query: torch.Tensor, items: torch.Tensor, nearest: np.ndarray, support: np.ndarray,
                          temperature: float) -> np.ndarray:
    """Eq. 7 weights ``(P,)`` for queries ``(P, C)`` whose nearest bank item is ``nearest (P,)``.

    ``support (M, k)`` comes from :func:`bank_support`; ``temperature`` is usually ``sqrt(C)``.
    """
    if support.shape[1] < 2:
        return np.ones(len(query))
    neighbours = items[torch.from_numpy(support[nearest])]  # (P, k, C): nearest item first
    d = (neighbours - query[:, None]).norm(dim=2).numpy()
    return reweighting_factor(d, temperature)


def exdd_image_score(d_neg: np.ndarray, d_pos: np.ndarray, w_neg: np.ndarray, w_pos: np.ndarray,
                     eps: float = 1e-3) -> np.ndarray:
    """ExDD's published image score per image: ``s_neg / (s_pos + eps)``.

    ``s_neg`` = the reweighted normal-bank score of the most anomalous patch (largest ``d_neg``; PatchCore's
    image score); ``s_pos`` = the reweighted defect-bank distance of the most defect-like patch (smallest
    ``d_pos``). Inputs ``(N, P)`` per image and patch; returns ``(N,)``.
    """
    d_neg, d_pos = np.asarray(d_neg, np.float64), np.asarray(d_pos, np.float64)
    rows = np.arange(len(d_neg))
    worst = d_neg.argmax(axis=1)
    closest = d_pos.argmin(axis=1)
    s_neg = np.asarray(w_neg)[rows, worst] * d_neg[rows, worst]
    s_pos = np.asarray(w_pos)[rows, closest] * d_pos[rows, closest]
    return ratio_scores(s_neg, s_pos, eps)


@dataclass(frozen=True)
class NormalStatistics:
    """What normal looks like to the two banks, measured on training normals (no test labels).

    ``worst_patch``: the median over images of each image's largest ``d_neg``, the gate: a patch below it
    is no more unusual than the worst patch of a typical normal image. ``defect_distance``: a low quantile
    of the normal patches' ``d_pos``, the scale of closeness: a patch nearer a defect than this is nearer
    than most normal patches ever get.
    """

    worst_patch: float
    defect_distance: float

    def to_dict(self) -> dict:
        return asdict(self)


def typical_worst_patch(d_neg: np.ndarray) -> float:
    """The median over normal images ``(N, h, w)`` of each image's largest ``d_neg``: how unusual the worst
    patch of a typical normal image is."""
    d_neg = np.asarray(d_neg, np.float64)
    if d_neg.ndim != 3 or len(d_neg) == 0:
        raise ValueError(f"need an (N, h, w) grid with N >= 1, got {d_neg.shape}")
    return float(np.median(d_neg.reshape(len(d_neg), -1).max(axis=1)))


def normal_statistics(d_neg: np.ndarray, d_pos: np.ndarray, quantile: float = 0.01) -> NormalStatistics:
    """:class:`NormalStatistics` from the grids ``(N, h, w)`` of ``N`` normal images (``quantile`` of ``d_pos``)."""
    d_neg, d_pos = np.asarray(d_neg, np.float64), np.asarray(d_pos, np.float64)
    if d_neg.ndim != 3 or d_neg.shape != d_pos.shape or len(d_neg) == 0:
        raise ValueError(f"need two (N, h, w) grids of the same shape with N >= 1, got {d_neg.shape} and {d_pos.shape}")
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must lie in (0, 1), got {quantile}")
    return NormalStatistics(typical_worst_patch(d_neg), float(np.quantile(d_pos, quantile)))


def gated_scores(d_neg: np.ndarray, d_pos: np.ndarray, stats: NormalStatistics, strength: float = 1.0) -> np.ndarray:
    """``d_neg * (1 + strength * closeness)`` where ``d_neg > stats.worst_patch``, else ``d_neg``.

    ``closeness = clip(1 - d_pos / stats.defect_distance, 0, 1)``: 1 on a known defect patch, 0 at or beyond
    the distance most normal patches keep from the defect bank. The score is never below ``d_neg``
    (PatchCore) and never above ``(1 + strength) * d_neg``.
    """
    d_neg, d_pos = np.asarray(d_neg, np.float64), np.asarray(d_pos, np.float64)
    if d_neg.shape != d_pos.shape:
        raise ValueError(f"distance arrays differ in shape: {d_neg.shape} vs {d_pos.shape}")
    if strength < 0:
        raise ValueError(f"strength must be >= 0, got {strength}")
    closeness = np.clip(1 - d_pos / max(stats.defect_distance, 1e-12), 0, 1)
    return d_neg * (1 + strength * closeness * (d_neg > stats.worst_patch))
