"""Is method A better than method B on this split, or is the difference luck?

Two methods scored on the *same* test images make correlated errors (the hard images are hard for
both), so their difference is far more certain than two independent intervals suggest. Paired tests
use that:

- **DeLong's test** for image AUROC (DeLong, DeLong & Clarke-Pearson 1988, computed with midranks as
  in Sun & Xu 2014): the variance of the AUROC difference from each image's placement values; exact,
  no resampling.
- **Paired bootstrap** for the pixel metrics (and AP, F1): the same resampled images (stratified, whole
  images, as in :mod:`exdd_lab.evaluation.uncertainty`) scored by both methods; the p-value is twice the share of
  resampled differences on the far side of zero.
- **Holm's correction** when more than two methods are compared: each metric's family of pairwise
  p-values is adjusted step-down, so "significant at 5 %" holds for the whole table.

Taught in ``notebooks/05_method_comparison.ipynb``; ``exdd-lab compare`` writes ``paired.csv``.
"""
from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

from exdd_lab.evaluation.uncertainty import BootstrapSettings, EvaluationSample, bootstrap_distribution


def placement_values(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's structural components: for each defect image the share of normals it outranks (ties
    half), and for each normal image the share of defects that outrank it. Their means are the AUROC."""
    labels, scores = np.asarray(labels, bool), np.asarray(scores, np.float64)
    pos, neg = scores[labels], scores[~labels]
    all_ranks = stats.rankdata(np.r_[pos, neg])  # midranks: ties count half
    pos_ranks, neg_ranks = stats.rankdata(pos), stats.rankdata(neg)
    v10 = (all_ranks[: len(pos)] - pos_ranks) / len(neg)
    v01 = 1.0 - (all_ranks[len(pos):] - neg_ranks) / len(pos)
    return v10, v01


def delong_test(labels: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray) -> dict:
    """DeLong's test of AUROC(a) = AUROC(b) on the same images: difference, its standard error, z, the
    two-sided p-value and a 95 % interval (normal approximation)."""
    labels = np.asarray(labels, bool)
    if labels.sum() < 2 or (~labels).sum() < 2:
        raise ValueError("DeLong's test needs at least two defect and two normal images")
    a10, a01 = placement_values(labels, scores_a)
    b10, b01 = placement_values(labels, scores_b)
    d10, d01 = a10 - b10, a01 - b01  # the difference's components; var(mean) from their spread
    variance = np.var(d10, ddof=1) / len(d10) + np.var(d01, ddof=1) / len(d01)
    difference = float(a10.mean() - b10.mean())
    se = float(np.sqrt(variance))
    if se == 0:
        z, p = (0.0, 1.0) if difference == 0 else (float(np.sign(difference) * np.inf), 0.0)
    else:
        z = difference / se
        p = float(2 * stats.norm.sf(abs(z)))
    half = float(stats.norm.ppf(0.975)) * se
    return {"auroc_a": float(a10.mean()), "auroc_b": float(b10.mean()), "difference": difference, "se": se,
            "z": float(z), "p_value": p, "ci_low": difference - half, "ci_high": difference + half}


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error at the chosen level)."""
    p = np.asarray(p_values, np.float64)
    order = np.argsort(p)
    m = len(p)
    adjusted = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


def bootstrap_p_value(differences: np.ndarray) -> float:
    """Two-sided paired-bootstrap p-value of "no difference": twice the share of resampled differences on
    the other side of zero from their median ((count + 1) / (B + 1), so never exactly 0)."""
    d = np.asarray(differences, np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return float("nan")
    tail = min(np.sum(d <= 0), np.sum(d >= 0))
    return float(min(1.0, 2 * (tail + 1) / (d.size + 1)))


def paired_comparisons(samples: dict[str, EvaluationSample], settings: BootstrapSettings = BootstrapSettings(),
                       point: dict[str, dict] | None = None, alpha: float = 0.05) -> pd.DataFrame:
    """Every pair of methods on one split: per metric, the difference (first minus second), its 95 %
    interval, the p-value (DeLong for image AUROC, paired bootstrap otherwise), Holm-adjusted over the
    pairs when more than two methods are compared, and whether it is significant at ``alpha``.

    ``samples``: one :class:`~exdd_lab.evaluation.uncertainty.EvaluationSample` per method, same images in the
    same order; ``point``: exact point metrics per method (the differences reported are theirs).
    """
    names = list(samples)
    labels = next(iter(samples.values())).labels
    pairs = list(combinations(names, 2))
    if not pairs:
        return pd.DataFrame()
    metric_names = [m for m in samples[names[0]].metric_names() if all(m in s.metric_names() for s in samples.values())]

    def statistic(weights):
        values = {n: samples[n].metrics(weights) for n in names}
        return np.concatenate([values[a][: len(metric_names)] - values[b][: len(metric_names)] for a, b in pairs])

    result = bootstrap_distribution(statistic, labels, settings)
    coarse = statistic(np.ones((1, len(labels))))[:, 0] if result is not None else None
    rows = []
    for p_i, (a, b) in enumerate(pairs):
        for m_i, metric in enumerate(metric_names):
            pa = (point or {}).get(a, {}).get(metric)
            pb = (point or {}).get(b, {}).get(metric)
            row = {"method_a": a, "method_b": b, "metric": metric, "a": pa, "b": pb,
                   "difference": None if pa is None or pb is None else float(pa) - float(pb)}
            if metric == "image_auroc":
                d = delong_test(labels, samples[a].scores, samples[b].scores)
                row.update(difference=d["difference"], a=d["auroc_a"], b=d["auroc_b"], ci_low=d["ci_low"],
                           ci_high=d["ci_high"], p_value=d["p_value"], test="DeLong")
            elif result is not None:
                k = p_i * len(metric_names) + m_i
                dist = result.bootstrap_distribution[k]
                lo, hi = np.nanquantile(dist, [(1 - settings.level) / 2, (1 + settings.level) / 2])
                if row["difference"] is not None and np.isfinite(coarse[k]):  # binning offset, as in the intervals
                    lo, hi = lo + row["difference"] - coarse[k], hi + row["difference"] - coarse[k]
                row.update(ci_low=float(lo), ci_high=float(hi), p_value=bootstrap_p_value(dist),
                           test="paired bootstrap")
            rows.append(row)
    table = pd.DataFrame(rows)
    if "p_value" not in table:
        return table
    table["p_adjusted"] = table["p_value"]
    if len(names) > 2:
        for metric, group in table.groupby("metric"):
            ok = group["p_value"].notna()
            table.loc[group.index[ok], "p_adjusted"] = holm(group.loc[ok, "p_value"].to_numpy())
    table["correction"] = "Holm" if len(names) > 2 else "none"
    table["significant"] = table["p_adjusted"] < alpha
    return table


def format_paired(table: pd.DataFrame, metrics: tuple[str, ...] = ("image_auroc", "pixel_auroc", "aupro")) -> str:
    """The paired table as text: one line per pair and metric, ``+0.012 [-0.004, 0.027] p=0.14``, with a
    star where the (adjusted) p-value is under 5 %."""
    lines = []
    for _, r in table[table.metric.isin(metrics)].iterrows():
        if r.get("p_value") is None or not np.isfinite(r["p_value"]):
            continue
        star = " *" if r["significant"] else ""
        adjusted = f" (Holm {r['p_adjusted']:.3g})" if r["correction"] == "Holm" else ""
        lines.append(f"{r['method_a']} - {r['method_b']:<16} {r['metric']:<12} {r['difference']:+.4f} "
                     f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]  p={r['p_value']:.3g}{adjusted} {r['test']}{star}")
    return "\n".join(lines + (["* significant at 5 %"] if any(l.endswith("*") for l in lines) else []))
