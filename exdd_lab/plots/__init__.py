"""Figures: every plot the notebooks draw, and the widget browser for failure cases. Plotting only.

- :mod:`~exdd_lab.plots.figures`: the lessons' general figures (re-exported here: ``from exdd_lab import plots``,
  then ``plots.show_gallery(...)``);
- :mod:`~exdd_lab.plots.failures`: methods compared case by case on one colour scale (notebook 06);
- :mod:`~exdd_lab.plots.browser`: step through failure cases (ipywidgets; a static gallery when headless);
- :mod:`~exdd_lab.plots.controls`: the lessons' knobs, redrawn live in JupyterLab, drawn once when headless;
- :mod:`~exdd_lab.plots.student_teacher`, :mod:`~exdd_lab.plots.archive`, :mod:`~exdd_lab.plots.cost`: the figures of
  notebooks 05, 08 and 02's cost section.

Never computes a score or a metric: every number shown comes from the layers below.
"""
from exdd_lab.plots.figures import (
    overlay_mask, plot_count_sweep, plot_counts, plot_distance_histograms, plot_mask_areas, plot_metric_bars,
    plot_score_distributions, plot_training_curve, show_anomaly_maps, show_coreset_projection, show_decomposition,
    show_gallery, show_image_rows, show_layer_views, show_masks, show_nearest_items, show_procedural_catalogue,
)

__all__ = [
    "overlay_mask", "plot_count_sweep", "plot_counts", "plot_distance_histograms", "plot_mask_areas", "plot_metric_bars",
    "plot_score_distributions", "plot_training_curve", "show_anomaly_maps", "show_coreset_projection",
    "show_decomposition", "show_gallery", "show_image_rows", "show_layer_views", "show_masks", "show_nearest_items",
    "show_procedural_catalogue",
]
