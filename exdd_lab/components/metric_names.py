"""The names of the metrics the kit reports, in the order tables show them: one place to add a metric.

The keys are those of :func:`exdd_lab.evaluation.run.evaluate_prediction`'s ``metrics`` (and ``metrics.json``).
"""
from __future__ import annotations

#: What every comparison leads with (the papers' numbers plus the best-threshold F1).
HEADLINE_METRICS: tuple[str, ...] = ("image_auroc", "pixel_auroc", "aupro", "f1_max")
#: The threshold-free ranking metrics (learning curves, per-data-set tables).
RANKING_METRICS: tuple[str, ...] = ("image_auroc", "pixel_auroc", "aupro")
#: Average precision, image- and pixel-level (informative when defects are rare).
PRECISION_METRICS: tuple[str, ...] = ("image_ap", "pixel_ap")
#: One row of a method table: ranking metrics, average precision, then the F1 at its threshold.
METHOD_TABLE_METRICS: tuple[str, ...] = RANKING_METRICS + PRECISION_METRICS + ("f1_max", "f1_threshold")
#: Cost of a run, as ``metrics.json`` records it.
TIMING_METRICS: tuple[str, ...] = ("fit_s", "predict_s", "peak_rss_mb")
