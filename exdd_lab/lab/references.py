"""Reference numbers of the notebook regression: how much they may move, and the chance level they must clear.

A reference entry is ``{"value": v, "abs_tol": a, "rel_tol": r}``; a measured number passes when
``|got - v| <= max(a, r * |v|)``. Numbers of trained models also carry

- ``spread``: how far the number moved across the numeric paths measured by
  ``benchmarks/numeric_spread.py`` (instruction-set caps x thread counts, on every CPU measured so far);
- ``seed_sd``: the standard deviation of a trained number over training seeds (the data split fixed), because
  a sound model trained on another CPU lands as far from the reference as a model trained from another seed
  does -- a few hundred steps amplify the last bits of a sum as much as another draw of the initial weights;
- the tolerance covers both (:func:`tolerance_from_spread`);
- ``floor`` (or ``ceiling`` for a loss): a level that a working method clears and a constant or random
  score does not (AUROC 0.5, the AUPRO of a constant map, the F1 of flagging every image). A reference
  band that reaches the floor would let a broken method pass, so it is refused.
"""
from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd


def load_spread_runs(folder: Path) -> dict[str, dict[str, dict[str, dict]]]:
    """``{path name: {notebook: {run: metrics}}}`` from ``folder/<path>/metrics/<notebook>.<run>.json``."""
    runs: dict[str, dict[str, dict[str, dict]]] = {}
    for metrics_dir in sorted(Path(folder).glob("*/metrics")):
        for file in sorted(metrics_dir.glob("*.json")):
            notebook, run = file.stem.rsplit(".", 1)
            runs.setdefault(metrics_dir.parent.name, {}).setdefault(notebook, {})[run] = json.loads(file.read_text())
    return runs


SEED_MARK = "-seed"  # a path folder named "<isa>-t<threads>-seed<k>" holds a run with train_seed=k on that path


def split_path_name(name: str) -> tuple[str, int]:
    """``"avx2-t1-seed3"`` -> ``("avx2-t1", 3)``; a path without the mark is that path's seed-0 run."""
    path, mark, seed = name.rpartition(SEED_MARK)
    return (path, int(seed)) if mark and seed.isdigit() else (name, 0)


def load_measurements(folder: Path) -> dict[str, dict[str, dict[str, dict[str, dict]]]]:
    """``{machine: {path: {notebook: {run: metrics}}}}`` from ``folder/<machine>/<path>/metrics/*.json``: every
    CPU's numeric paths and training seeds that ``benchmarks/numeric_spread.py`` measured (committed, so the next
    CPU adds its folder and the references are rebuilt over all of them)."""
    return {machine.name: runs for machine in sorted(Path(folder).iterdir())
            if machine.is_dir() and (runs := load_spread_runs(machine))} if Path(folder).is_dir() else {}


def load_recorded_spreads(folder: Path) -> dict[str, dict]:
    """``{machine: {"paths": [...], "spread": {notebook: {run: {key: spread}}}}}`` from
    ``folder/<machine>/recorded_spread.json``: the spread of a machine whose per-path numbers were not kept,
    only its range (the first machine's, before the measurements were committed)."""
    if not Path(folder).is_dir():
        return {}
    return {file.parent.name: json.loads(file.read_text()) for file in sorted(Path(folder).glob("*/recorded_spread.json"))}


def spread_table(runs: dict[str, dict[str, dict[str, dict]]]) -> pd.DataFrame:
    """One row per (notebook, run, numeric key): the value on every path and the spread (max - min)."""
    rows: dict[tuple[str, str, str], dict[str, float]] = {}
    for path, notebooks in runs.items():
        for notebook, by_run in notebooks.items():
            for run, metrics in by_run.items():
                for key, value in metrics.items():
                    if isinstance(value, (int, float)) and not isinstance(value, bool) and not key.startswith("timing_"):
                        rows.setdefault((notebook, run, key), {})[path] = float(value)
    if not rows:
        return pd.DataFrame()
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.names = ["notebook", "run", "key"]
    table["spread"] = table.max(axis=1) - table.min(axis=1)
    return table.sort_index()


# --- chance levels -------------------------------------------------------------------------------------
# Pixel-level metrics of a constant map: pixel AUROC 0.5; AUPRO 0.15 (every pixel flagged at once, so the
# PRO curve is the diagonal up to the 0.3 false-positive limit); pixel AP = the defect pixel share (under
# 1% on these data sets). The floors sit a margin above, where a map that ranks nothing cannot reach.
REFERENCE_FILE = Path(__file__).resolve().parents[2] / "tests" / "reference" / "notebook_metrics.json"


def load_references(path: Path = REFERENCE_FILE) -> dict:
    """The stored notebook references (empty when the file is absent, e.g. an installed package)."""
    return json.loads(path.read_text()) if path.is_file() else {}


PIXEL_FLOORS = {"pixel_auroc": 0.55, "aupro": 0.20, "pixel_ap": 0.02}
RANDOM_QUANTILE = 0.95   # image-level floors: what random image scores reach in 1 of 20 draws
RANDOM_DRAWS = 4000


@lru_cache(maxsize=64)
def random_score_quantile(metric: str, n_defect: int, n_good: int, quantile: float = RANDOM_QUANTILE) -> float:
    """The ``quantile`` of an image-level metric (``image_auroc``, ``image_ap``, ``f1_max``) under random
    scores, for a test set of ``n_defect`` defect and ``n_good`` normal images (seeded, so fixed).

    Flagging every image, or scoring every image alike, lands below it; a working method lands above.
    Random scores rank the images in a random order, so each draw is a shuffled label sequence read from
    the top: the same counts that :mod:`exdd_lab.evaluation.metrics` turns into AUROC, AP and F1 (a test checks that)."""
    labels = np.r_[np.ones(n_defect), np.zeros(n_good)]
    order = np.random.default_rng(0).permuted(np.tile(labels, (RANDOM_DRAWS, 1)), axis=1)
    tp, fp = np.cumsum(order, axis=1), np.cumsum(1 - order, axis=1)
    if metric == "image_auroc":  # each normal image counts the defects ranked above it
        values = ((1 - order) * tp).sum(axis=1) / (n_defect * n_good)
    elif metric == "image_ap":   # mean precision at the rank of each defect
        values = (order * tp / (tp + fp)).sum(axis=1) / n_defect
    elif metric == "f1_max":
        values = (2 * tp / (tp + fp + n_defect)).max(axis=1)
    else:
        raise KeyError(f"no random-score level for {metric!r}")
    return float(np.quantile(values, quantile))


def chance_bound(key: str, metrics: dict) -> tuple[str, float, str] | None:
    """``("floor" | "ceiling", level, why)`` for a quality metric of a notebook, ``None`` for a descriptive
    number (a count, a threshold, a distance) that has no chance level.

    Image-level floors need the test split's class counts, which notebooks record as ``n_test_defect`` and
    ``n_test_good`` (``save_notebook_metrics(..., dataset=ds)``)."""
    counts = (metrics.get("n_test_defect"), metrics.get("n_test_good"))
    for suffix, metric in (("image_auroc", "image_auroc"), ("image_ap", "image_ap"), ("f1_max", "f1_max")):
        if key.endswith(suffix) and not key.endswith("mean_image_pixel_auroc"):
            if not all(isinstance(c, int) and c > 0 for c in counts):
                raise KeyError(f"{key}: the notebook's metrics lack n_test_defect / n_test_good "
                               "(pass dataset=ds to save_notebook_metrics)")
            level = random_score_quantile(metric, *counts)
            return "floor", round(level, 4), f"{RANDOM_QUANTILE:.0%} of random scores on {counts[0]} defect / {counts[1]} normal images"
    for suffix, level in PIXEL_FLOORS.items():
        if key.endswith(suffix):
            return "floor", level, "a constant map gives 0.5 (pixel AUROC), 0.15 (AUPRO), the defect pixel share (AP)"
    if key == "patch_auroc_nn_distance":
        return "floor", PIXEL_FLOORS["pixel_auroc"], "patches ranked at random give 0.5"
    if key == "defect_to_normal_distance_ratio":
        return "floor", 1.1, "features blind to defects put defect patches as near to normal ones as normal patches (1.0)"
    if key.endswith("closer_to_defect") and not key.startswith(YARDSTICKS):
        level = metrics.get("normal (held out)_closer_to_defect")
        if isinstance(level, (int, float)):
            return "floor", round(float(level) + 0.02, 4), "held-out normal patches (a generator that changes nothing)"
    if key == "ddpm_final_loss":
        return "ceiling", 0.9, "a denoiser that predicts no noise has a loss of 1 (the noise variance)"
    return None


# --- reference entries ------------------------------------------------------------------------------------
DEFAULT_ABS_TOL = 1e-3
DEFAULT_REL_TOL = 1e-3
SPREAD_FACTOR = 2.0   # tolerance = twice the spread measured over the numeric paths (a few paths sample it)
# A run on another CPU is treated as another draw of the training: its difference to the reference (itself one
# draw) has standard deviation sqrt(2) x sigma, and sigma is estimated from a few seeds, hence Student's t.
SEED_CONFIDENCE = 0.99  # two-sided: a sound method on a new CPU fails a trained key in about 1 run of 100
MIN_SEEDS = 3           # a seed spread from fewer runs is not a spread
# A quality metric on a few dozen test images moves in steps (one swapped pair of 40 x 20 images: 0.00125
# AUROC; one image across the threshold: about 0.01 F1); no quality tolerance is finer than this.
MIN_QUALITY_TOL = 0.01
QUALITY_SUFFIXES = ("auroc", "aupro", "_ap", "f1_max", "closer_to_defect", "final_loss", "distance_ratio", "auroc_nn_distance")
# Numbers kept in the reference file for the record but not compared, and why (the notebooks say so too).
NOT_REFERENCED = {
    "best_count": "the count with the highest mean AUROC: two counts within noise of each other swap places "
                  "from one CPU to another; the AUROCs behind it are compared instead",
    "ddpm_frechet_to_defect": "no chance level exists for it (on MTD plain normal patches lie closer to the "
                              "real defects than either generator's output), so it cannot tell a broken generator",
}


# Notebook 03's yardsticks: real held-out defects (the ceiling) and held-out normals (the floor) measured
# with the pretrained backbone. They are compared like any number, but they are the chance level, not a method.
YARDSTICKS = ("real (held out)_", "normal (held out)_")


def is_quality_metric(key: str) -> bool:
    """Whether a notebook number measures detection or synthesis quality (and so needs a chance level)."""
    return key.endswith(QUALITY_SUFFIXES) and not key.startswith(YARDSTICKS)


def seed_tolerance(seed_sd: float, n_seeds: int, confidence: float = SEED_CONFIDENCE) -> float:
    """How far a sound run may land from the reference, given the standard deviation ``seed_sd`` of that number
    over ``n_seeds`` training seeds: ``t_{n-1}((1 + confidence) / 2) * sqrt(2) * seed_sd`` (a prediction bound
    for the difference of two draws, sigma estimated from the seeds). Zero without at least ``MIN_SEEDS`` seeds."""
    if n_seeds < MIN_SEEDS or not seed_sd:
        return 0.0
    from scipy.stats import t

    return float(t.ppf((1 + confidence) / 2, n_seeds - 1) * math.sqrt(2) * seed_sd)


def tolerance_from_spread(key: str, spread: float | None, seed_sd: float | None = None, n_seeds: int = 0) -> float:
    """The absolute tolerance of a number: the largest of a floor (0.01 for a quality metric, 0.001 otherwise),
    twice the numeric-path spread, and the seed bound :func:`seed_tolerance`."""
    floor = MIN_QUALITY_TOL if is_quality_metric(key) else DEFAULT_ABS_TOL
    return max(floor, SPREAD_FACTOR * (spread or 0.0), seed_tolerance(seed_sd or 0.0, n_seeds))


def _tolerance(entry: dict) -> float:
    return max(entry.get("abs_tol", DEFAULT_ABS_TOL), entry.get("rel_tol", DEFAULT_REL_TOL) * abs(entry["value"]))


def reference_entry(key: str, value, metrics: dict, spread: float | None = None, n_paths: int = 0,
                    seed_sd: float | None = None, n_seeds: int = 0) -> dict:
    """One key's reference: its value, a tolerance from the measured spreads (numeric paths, training seeds),
    its chance level, and ``referenced: false`` with the reason where a comparison could not tell a broken method."""
    entry: dict = {"value": value}
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if numeric and (isinstance(value, float) or spread or seed_sd):
        entry["abs_tol"] = round(tolerance_from_spread(key, spread, seed_sd, n_seeds), 6)
        entry["rel_tol"] = DEFAULT_REL_TOL
    if spread is not None:
        entry["spread"] = round(spread, 6)
        entry["spread_paths"] = n_paths
    if n_seeds >= MIN_SEEDS and seed_sd is not None:
        entry["seed_sd"] = round(seed_sd, 9)
        entry["seeds"] = n_seeds
    skip = next((why for pattern, why in NOT_REFERENCED.items() if key.endswith(pattern)), None)
    seed_band = seed_tolerance(seed_sd or 0.0, n_seeds)
    bound = chance_bound(key, metrics) if numeric and is_quality_metric(key) else None
    if numeric and is_quality_metric(key) and bound is None and skip is None:
        raise KeyError(f"{key}: a quality metric without a chance level; add it to chance_bound or NOT_REFERENCED")
    if bound:
        kind, level, why = bound
        entry[kind], entry[f"{kind}_why"] = level, why
        reaches = (value - _tolerance(entry) <= level) if kind == "floor" else (value + _tolerance(entry) >= level)
        if reaches and skip is None:
            wide = " (its spread over training seeds)" if seed_band >= _tolerance(entry) else ""
            skip = (f"chance level: the band {value:.3f} ± {_tolerance(entry):.3f}{wide} reaches the {kind} {level} "
                    f"({why}), so a broken method would pass")
    if skip is None and numeric and bound is None and seed_band > 0 and seed_band >= abs(value):
        skip = (f"its spread over training seeds (± {seed_band:.3g}) is as wide as the number itself ({value:.4g}): "
                "no run, broken or sound, could fail it")
    if skip:
        entry["referenced"], entry["why"] = False, skip
    return entry


def key_spreads(measurements: dict[str, dict[str, dict]], recorded: dict[str, dict] | None = None
                ) -> dict[tuple[str, str, str], dict]:
    """Per ``(notebook, run, key)``: ``spread`` (max - min over every machine's numeric paths, seed 0, and at
    least any recorded spread), ``n_paths`` (how many paths that covers), ``seed_sd`` and ``n_seeds`` (the widest
    standard deviation over training seeds of one machine's path, seed 0 included)."""
    values: dict[tuple, list[float]] = {}
    seeds: dict[tuple, dict[tuple[str, str], list[float]]] = {}
    path_names: dict[tuple, set[tuple[str, str]]] = {}
    for machine, paths in measurements.items():
        for name, notebooks in paths.items():
            path, seed = split_path_name(name)
            for notebook, by_run in notebooks.items():
                for run, metrics in by_run.items():
                    for key, value in metrics.items():
                        if isinstance(value, bool) or not isinstance(value, (int, float)) or key.startswith("timing_"):
                            continue
                        where = (notebook, run, key)
                        if seed == 0:
                            values.setdefault(where, []).append(float(value))
                            path_names.setdefault(where, set()).add((machine, path))
                        seeds.setdefault(where, {}).setdefault((machine, path), []).append(float(value))
    recorded = recorded or {}
    out: dict[tuple[str, str, str], dict] = {}
    for where in set(values) | {(nb, run, key) for record in recorded.values()
                                for nb, runs in record.get("spread", {}).items() for run, keys in runs.items() for key in keys}:
        measured = values.get(where, [])
        spread = max(measured) - min(measured) if measured else 0.0
        covered = set(path_names.get(where, set()))
        for machine, record in recorded.items():
            kept = record.get("spread", {}).get(where[0], {}).get(where[1], {})
            if where[2] in kept:
                spread = max(spread, float(kept[where[2]]))
                covered.update((machine, path) for path in record.get("paths", []))
        groups = [g for g in seeds.get(where, {}).values() if len(g) >= MIN_SEEDS]
        sd, n_seeds = 0.0, 0
        for group in groups:  # the widest machine's seed spread (a seed run without its seed 0 is not a group)
            group_sd = float(np.std(group, ddof=1))
            if group_sd >= sd:
                sd, n_seeds = group_sd, len(group)
        out[where] = {"spread": spread, "n_paths": len(covered), "seed_sd": sd if groups else None, "n_seeds": n_seeds}
    return out


def build_references(measurements: dict[str, dict[str, dict]], pinned: tuple[str, str],
                     recorded: dict[str, dict] | None = None) -> dict:
    """Reference entries for every notebook and run: values from the ``pinned`` ``(machine, path)``, tolerances
    from the spread over every machine's numeric paths and training seeds (``{machine: {path: {notebook: {run:
    metrics}}}}``, as :func:`load_measurements` reads them) and any ``recorded`` spread (:func:`load_recorded_spreads`)."""
    machine, path = pinned
    if path not in measurements.get(machine, {}):
        have = [f"{m}/{p}" for m, paths in measurements.items() for p in paths]
        raise KeyError(f"the pinned path {machine}/{path} was not measured (have: {', '.join(have) or 'none'})")
    spreads = key_spreads(measurements, recorded)
    refs: dict = {}
    for notebook, by_run in sorted(measurements[machine][path].items()):
        for run, metrics in sorted(by_run.items()):
            entries = {}
            for key, value in metrics.items():
                if key == "notebook" or key.startswith("timing_"):  # timings are reported, never compared
                    continue
                found = spreads.get((notebook, run, key))
                entries[key] = (reference_entry(key, value, metrics, found["spread"], found["n_paths"], found["seed_sd"],
                                                found["n_seeds"]) if found else reference_entry(key, value, metrics))
            refs.setdefault(notebook, {})[run] = entries
    measured = sorted({f"{m}/{split_path_name(p)[0]}" for m, paths in measurements.items() for p in paths}
                      | {f"{m}/{p}" for m, record in (recorded or {}).items() for p in record.get("paths", [])})
    seeds = sorted({f"{m}/{p}" for m, paths in measurements.items() for p in paths if split_path_name(p)[1]})
    refs["_numeric_paths"] = {"pinned": f"{machine}/{path}", "measured": measured, "seed_runs": seeds,
                              "how": "benchmarks/numeric_spread.py; tolerance = max(floor, 2 x spread, "
                                     f"t_(n-1)({(1 + SEED_CONFIDENCE) / 2:.3f}) x sqrt(2) x seed_sd), floor 0.01 for "
                                     "quality metrics and 0.001 otherwise (benchmarks/README.md: Numeric spread)"}
    return refs


def compare_metrics(actual: dict, reference: dict) -> list[str]:
    """Differences between a notebook's metrics and its reference, one readable line each.

    Numbers pass when ``|actual - v| <= max(abs_tol, rel_tol * |v|)`` and they clear their chance floor
    (stay under their ceiling); strings and lists must be equal; missing metrics fail. Entries with
    ``referenced: false`` are skipped (their reason is in the entry)."""
    problems = []
    for key, ref in sorted(reference.items()):
        if not ref.get("referenced", True):
            continue
        if key not in actual:
            problems.append(f"{key}: missing (reference {ref['value']!r})")
            continue
        got, want = actual[key], ref["value"]
        if isinstance(want, (int, float)) and not isinstance(want, bool):
            if not isinstance(got, (int, float)) or isinstance(got, bool) or not math.isfinite(float(got)):
                problems.append(f"{key}: {got!r} is not a finite number (reference {want})")
                continue
            tol = _tolerance(ref) if ("abs_tol" in ref or isinstance(want, float)) else 0.0
            if abs(float(got) - float(want)) > tol:
                problems.append(f"{key}: {got} differs from reference {want} by more than {tol:.3g}")
            if "floor" in ref and float(got) <= ref["floor"]:
                problems.append(f"{key}: {got} does not clear its chance floor {ref['floor']} ({ref.get('floor_why', '')})")
            if "ceiling" in ref and float(got) >= ref["ceiling"]:
                problems.append(f"{key}: {got} is not under its chance ceiling {ref['ceiling']} ({ref.get('ceiling_why', '')})")
        elif got != want:
            problems.append(f"{key}: {got!r} != reference {want!r}")
    return problems


def unreferenced(notebook: str, references: dict | None = None) -> pd.DataFrame:
    """The numbers of ``notebook`` that the regression does not compare, per run, with the reason: what a
    notebook shows its reader so that a number at chance level is never mistaken for a checked result."""
    if references is None:
        references = load_references()
    rows = [(run, key, entry["value"], entry["why"]) for run, entries in references.get(notebook, {}).items()
            for key, entry in entries.items() if not entry.get("referenced", True)]
    return pd.DataFrame(rows, columns=["run", "metric", "value", "why not compared"])


def sensitive_notebooks(references: dict | None = None, threshold: float = 1e-3) -> list[str]:
    """Notebooks with a compared number that moved more than ``threshold`` across the measured numeric paths:
    the ones CI re-runs on a second path (``make test-numerics``)."""
    if references is None:
        references = load_references()
    return sorted(nb for nb, runs in references.items() if not nb.startswith("_") and any(
        entry.get("spread", 0) > threshold and entry.get("referenced", True)
        for entries in runs.values() for entry in entries.values()))
