"""Several methods on one split, compared the same way everywhere: ``exdd-lab compare`` and notebooks 05 and 06.

:func:`compared_methods` builds the named methods around one synthetic defect set (the student-teacher's
training defects also fill ExDD's positive bank); :func:`compare_methods` fits each on the training
normals and scores the test split (and the held-out normals, for normal-only thresholds);
:func:`write_comparison` writes what the command line promises: ``<method>/metrics.json`` and
``scores.csv`` per method, the per-image ``results.csv``/``.parquet``, ``methods.csv``, ``failures.csv``,
``disagreements.csv``, ``paired.csv`` (every pair of methods: difference, interval, p-value) and a static
``gallery/`` of failure cases.
Taught in ``notebooks/06_failure_case_analysis.ipynb``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from exdd_lab.data.records import DefectDataset, Sample
from exdd_lab.errors import SettingsError
from exdd_lab.features import FeatureConfig
from exdd_lab.methods.base import Detector, Prediction
from exdd_lab.methods.registry import METHODS, build_method, training_seed
from exdd_lab.evaluation.results import ResultSet
from exdd_lab.evaluation.uncertainty import BootstrapSettings


@dataclass
class Comparison:
    """Methods fitted and scored on one split: their predictions, the per-image results and one row per method."""

    dataset: DefectDataset
    methods: dict[str, Detector]
    predictions: dict[str, Prediction]
    normal_scores: dict[str, np.ndarray]
    timings: dict[str, dict]
    results: ResultSet
    table: pd.DataFrame  # headline metrics, the per-image summary, then each metric's interval (<metric>_low/_high)
    paired: pd.DataFrame = field(default_factory=pd.DataFrame)  # every pair of methods: differences, p-values
    bootstrap: BootstrapSettings = field(default_factory=BootstrapSettings)


def compared_methods(names: Sequence[str], features: FeatureConfig, train: Sequence[Sample], options: dict,
                     exdd_defects: int = 100, defects: DefectDataset | None = None,
                     progress: bool = False) -> dict[str, Detector]:
    """The named methods (names of :data:`~exdd_lab.methods.registry.METHODS`) built from ``options``, in order.

    ExDD's positive bank takes the first ``exdd_defects`` defects of one shared set: ``defects`` when given,
    else the student-teacher's training set when it is compared too, else a cached set of ``options["generator"]``.
    """
    if not names:
        raise SettingsError("no method to compare", f"name one or more of {', '.join(METHODS)}")
    for name in names:
        METHODS.check(name)
    methods: dict[str, Detector] = {}
    if "student-teacher" in names:
        methods["student-teacher"] = build_method("student-teacher", features, dict(options, defect_set=defects))
    if "exdd" in names:
        if defects is None and "student-teacher" in methods:
            defects = methods["student-teacher"].training_defects(train, progress=progress)
        if defects is None:
            from exdd_lab.synthesis import DdpmConfig, cached_defect_set

            seed = training_seed(options)
            defects = cached_defect_set(train, options.get("generator", "ddpm"), exdd_defects, seed=seed,
                                        image_size=features.image_size, model_dir=options.get("model_dir"),
                                        progress=progress, ddpm_config=DdpmConfig(image_size=features.image_size, seed=seed))
        methods["exdd"] = build_method("exdd", features, dict(options, defects=list(defects.test[:exdd_defects])))
    return {name: methods[name] if name in methods else build_method(name, features, options) for name in names}


def compare_methods(methods: dict[str, Detector], dataset: DefectDataset, progress: bool = False,
                    bootstrap: BootstrapSettings | None = None) -> Comparison:
    """Fit every method on ``dataset.train``, score its test split, tabulate the results and test every pair
    of methods on the same images (:func:`~exdd_lab.evaluation.paired_tests.paired_comparisons`; ``bootstrap``:
    its resamples, default 1,000)."""
    from exdd_lab.evaluation.run import evaluation_sample, method_table, predict_split
    from exdd_lab.evaluation.paired_tests import paired_comparisons
    from exdd_lab.evaluation.results import build_results, method_summary
    from exdd_lab.evaluation.uncertainty import bootstrap_intervals, interval_frame

    bootstrap = bootstrap if bootstrap is not None else BootstrapSettings()
    predictions, normal_scores, timings = predict_split(methods, dataset, progress=progress)
    results = build_results(dataset.test, predictions, normal_scores)
    metrics = method_table(dataset, predictions)
    table = metrics.join(method_summary(results.table).drop(columns="image_auroc"))
    paired = pd.DataFrame()
    if bootstrap.resamples > 0:
        samples = {name: evaluation_sample(dataset, p, p.maps.shape[-1], bootstrap.bins, bootstrap.seed)
                   for name, p in predictions.items()}
        point = metrics.to_dict(orient="index")
        bounds = {name: bootstrap_intervals(sample, bootstrap, point[name]) for name, sample in samples.items()}
        table = table.join(interval_frame(bounds))
        if len(predictions) > 1:
            paired = paired_comparisons(samples, bootstrap, point)
    return Comparison(dataset, methods, predictions, normal_scores, timings, results, table, paired, bootstrap)


def write_comparison(comparison: Comparison, out: str | Path, k: int = 3, seed: int = 0) -> Path:
    """Every file of ``exdd-lab compare`` under ``out`` (each written atomically); returns the gallery folder."""
    import matplotlib.pyplot as plt

    from exdd_lab.evaluation.failures import disagreements, failure_ranking
    from exdd_lab.plots.browser import case_gallery
    from exdd_lab.evaluation.run import finish_evaluation
    from exdd_lab.storage import atomic_write

    out = Path(out)
    c = comparison
    for name, method in c.methods.items():
        finish_evaluation(method, c.dataset, c.predictions[name], c.timings[name]["fit_s"], c.timings[name]["predict_s"],
                          c.normal_scores.get(name), out / name, seed=seed, bootstrap=c.bootstrap)
    c.results.save(out)
    for name, frame in (("methods.csv", c.table), ("failures.csv", failure_ranking(c.results.table, k=k)),
                        ("disagreements.csv", disagreements(c.results.table)), ("paired.csv", c.paired)):
        with atomic_write(out / name, "w") as handle:
            frame.to_csv(handle, index=name == "methods.csv")
    gallery = out / "gallery"
    gallery.mkdir(parents=True, exist_ok=True)
    for i, fig in enumerate(case_gallery(c.results, k=k)):
        title = fig.get_suptitle() or f"figure {i}"
        fig.savefig(gallery / f"{i:02d}_{''.join(ch if ch.isalnum() else '_' for ch in title)[:60]}.png", dpi=90,
                    bbox_inches="tight")
        plt.close(fig)
    return gallery
