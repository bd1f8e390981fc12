"""A normal-only threshold with a stated guarantee: how often the false-alarm rate it promises can be exceeded.

Held-out normal scores ``s_1..s_n`` and the score ``S`` of a future normal image are exchangeable (same part, same
camera, drawn the same way). Take the ``k``-th largest held-out score as the threshold ``t`` and flag ``S >= t``.
The false-alarm rate ``FA(t) = P(S >= t | t)`` of that threshold is itself random -- it depends on which normals
were held out -- and for continuous scores it follows ``Beta(k, n - k + 1)`` whatever the score distribution (the
order-statistic, or conformal, argument). Hence

    P(FA(t) > alpha) = P(Binomial(n, alpha) < k) = binom.cdf(k - 1, n, alpha),

so with ``n = 299`` held-out normals and ``k = 1`` (their maximum) a 1 % rate holds with 95 % confidence, and with
``n = 12`` the same rule can promise no better than 22 %. The usual 0.99 quantile of 12 scores is almost their
maximum: its false-alarm rate is about 1/13 on average, not 1 %. The largest ``k`` that keeps the guarantee gives
the most recall; where no ``k`` does, the maximum is used and the rate that *can* be promised is stated.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from exdd_lab.errors import ExddError


def _check(alpha: float, confidence: float) -> None:
    if not (np.isfinite(alpha) and 0 < alpha < 1):
        raise ExddError(f"false-alarm rate {alpha!r} is not a share in (0, 1)", "give e.g. 0.01 for 1 %")
    if not (np.isfinite(confidence) and 0 < confidence < 1):
        raise ExddError(f"confidence {confidence!r} is not in (0, 1)", "give e.g. 0.95")


def exceedance_probability(n: int, k: int, alpha: float) -> float:
    """``P(FA > alpha)`` for the ``k``-th largest of ``n`` exchangeable normal scores as threshold."""
    from scipy.stats import binom

    if not 1 <= k <= n:
        raise ExddError(f"k = {k} is not between 1 and n = {n}", "take the k-th largest of the n held-out scores")
    return float(binom.cdf(k - 1, n, alpha))


def promised_false_alarm_rate(n: int, k: int, confidence: float) -> float:
    """The smallest rate ``alpha`` with ``P(FA > alpha) <= 1 - confidence``: the ``confidence`` quantile of
    ``Beta(k, n - k + 1)``."""
    from scipy.stats import beta

    _check(0.5, confidence)
    if not 1 <= k <= n:
        raise ExddError(f"k = {k} is not between 1 and n = {n}", "take the k-th largest of the n held-out scores")
    return float(beta.ppf(confidence, k, n - k + 1))


def held_out_needed(alpha: float, confidence: float, k: int = 1) -> int:
    """The fewest held-out normals whose ``k``-th largest score keeps ``alpha`` with ``confidence``
    (``alpha`` 1 %, ``confidence`` 95 %, ``k`` 1: 299)."""
    _check(alpha, confidence)
    n = k
    while exceedance_probability(n, k, alpha) > 1 - confidence:
        n += max(1, n // 8)  # grow geometrically, then step back to the first n that holds
    while n > k and exceedance_probability(n - 1, k, alpha) <= 1 - confidence:
        n -= 1
    return n


@dataclass(frozen=True)
class GuaranteedThreshold:
    """A threshold and what it promises: ``P(false-alarm rate > alpha_promised) <= 1 - confidence``."""

    threshold: float
    k: int                  # the threshold is the k-th largest held-out score
    n: int                  # held-out normal scores
    alpha_asked: float
    alpha_promised: float   # alpha_asked where n allows it, else the best rate n can promise (k = 1)
    confidence: float

    @property
    def meets_request(self) -> bool:
        return self.alpha_promised <= self.alpha_asked + 1e-12

    def to_dict(self) -> dict:
        return asdict(self)

    def sentence(self) -> str:
        """One line for a report: what the threshold promises, and why not more."""
        promise = (f"at most {self.alpha_promised:.2%} of new normal images flagged, with {self.confidence:.0%} confidence "
                   f"(the {_ordinal(self.k)} largest of {self.n} held-out normal scores)")
        if self.meets_request:
            return promise
        return (f"{promise}; {self.alpha_asked:.2%} needs at least {held_out_needed(self.alpha_asked, self.confidence)} "
                f"held-out normals")


def _ordinal(k: int) -> str:
    return f"{k}{'th' if 10 <= k % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(k % 10, 'th')}"


def guaranteed_threshold(normal_scores, alpha: float, confidence: float = 0.95) -> GuaranteedThreshold:
    """The most permissive order statistic of ``normal_scores`` whose false-alarm rate exceeds ``alpha`` with
    probability at most ``1 - confidence``; with too few scores for that, their maximum and the rate it promises."""
    _check(alpha, confidence)
    scores = np.sort(np.asarray(normal_scores, np.float64).ravel())[::-1]
    if scores.size == 0 or not np.isfinite(scores).all():
        raise ExddError(f"{scores.size} held-out normal scores, some not finite" if scores.size else "no held-out normal scores",
                        "hold out normal images (their scores set the threshold) and check they score finitely")
    from scipy.stats import binom

    n = scores.size
    ks = np.arange(1, n + 1)
    holds = binom.cdf(ks - 1, n, alpha) <= 1 - confidence  # falls with k: the kept ones are a prefix
    k = int(ks[holds].max()) if holds.any() else 1
    promised = alpha if holds.any() else promised_false_alarm_rate(n, 1, confidence)
    return GuaranteedThreshold(float(scores[k - 1]), k, n, float(alpha), float(promised), float(confidence))
