"""The regression harness's references: tolerances from the measured spread, chance floors that a broken
method cannot clear, and a reference file in which no compared band reaches its chance level."""
import json

import numpy as np
import pytest

from exdd_lab.evaluation.metrics import auroc, average_precision, f1_max
from exdd_lab.lab.references import (build_references, chance_bound, compare_metrics, is_quality_metric, load_measurements,
                                     load_recorded_spreads, load_references, random_score_quantile, reference_entry,
                                     MIN_SEEDS, seed_tolerance, split_path_name, spread_table)
from exdd_lab.lab.notebooks import MEASURED_DIR

TRAINING_NOTEBOOKS = ("03", "04", "05", "06", "07")  # their numbers come out of a training run (DDPM, student-teacher)

SPLIT = {"n_test_defect": 40, "n_test_good": 20}


def test_compare_metrics_tolerances_and_types():
    ref = {k: reference_entry(k, v, {}) for k, v in {"bank": 0.9, "n": 10, "name": "mtd"}.items()}
    assert ref["bank"]["abs_tol"] == 0.001 and "abs_tol" not in ref["n"]  # counts are exact
    assert compare_metrics({"bank": 0.9005, "n": 10, "name": "mtd"}, ref) == []
    problems = compare_metrics({"bank": 0.95, "n": 11, "name": "x"}, ref)
    assert len(problems) == 3 and problems[0].startswith("bank")
    assert compare_metrics({"n": 10, "name": "mtd"}, ref) == ["bank: missing (reference 0.9)"]
    assert "not a finite number" in compare_metrics({"bank": float("nan"), "n": 10, "name": "mtd"}, ref)[0]


def test_tolerance_is_twice_the_measured_spread():
    entry = reference_entry("aupro", 0.8, SPLIT, spread=0.02, n_paths=4)
    assert entry["abs_tol"] == pytest.approx(0.04) and entry["spread"] == 0.02 and entry["spread_paths"] == 4
    assert compare_metrics({"aupro": 0.839}, {"aupro": entry}) == []
    assert compare_metrics({"aupro": 0.842}, {"aupro": entry})[0].startswith("aupro: 0.842 differs")
    assert reference_entry("aupro", 0.8, SPLIT)["abs_tol"] == 0.01  # no spread measured: a quality metric's least
    assert reference_entry("bank_patches_mean", 0.8, SPLIT)["abs_tol"] == 0.001  # a descriptive number's


def test_random_score_levels_match_the_kit_metrics():
    """The vectorised random-score levels compute what exdd_lab.evaluation.metrics computes on the same orders."""
    rng = np.random.default_rng(1)
    labels = np.r_[np.ones(12, bool), np.zeros(8, bool)]
    values = {"image_auroc": [], "image_ap": [], "f1_max": []}
    for _ in range(300):
        scores = rng.random(labels.size)
        values["image_auroc"].append(auroc(labels, scores))
        values["image_ap"].append(average_precision(labels, scores))
        values["f1_max"].append(f1_max(labels, scores)[0])
    for metric, draws in values.items():
        assert random_score_quantile(metric, 12, 8) == pytest.approx(np.quantile(draws, 0.95), abs=0.03), metric
    # flagging every image (one constant score) lands below the F1 floor; 0.5 below the AUROC floor
    assert f1_max(labels, np.ones(labels.size))[0] < random_score_quantile("f1_max", 12, 8)
    assert 0.5 < random_score_quantile("image_auroc", 12, 8) < 0.75


@pytest.mark.parametrize("key,kind,level", [
    ("patchcore_image_auroc", "floor", None), ("ratio_na_f1_max", "floor", None), ("image_ap", "floor", None),
    ("pixel_auroc", "floor", 0.55), ("student-teacher_head_aupro", "floor", 0.2), ("pixel_ap", "floor", 0.02),
    ("exdd_mean_image_pixel_auroc", "floor", 0.55), ("ddpm_final_loss", "ceiling", 0.9),
])
def test_chance_bounds(key, kind, level):
    got_kind, got_level, why = chance_bound(key, SPLIT)
    assert got_kind == kind and why
    if level is not None:
        assert got_level == level
    else:  # image-level: the random-score quantile for this split
        assert 0.6 < got_level < 0.9


def test_descriptive_numbers_have_no_chance_level():
    for key in ("f1_threshold", "bank_patches", "mask_area_median", "normal_patch_nn_mean"):
        assert chance_bound(key, SPLIT) is None and not is_quality_metric(key)
    with pytest.raises(KeyError, match="n_test_defect"):
        chance_bound("image_auroc", {})  # image floors need the split's composition


def test_a_band_reaching_chance_is_not_referenced_and_says_why():
    weak = reference_entry("head_pixel_auroc", 0.56, SPLIT, spread=0.01, n_paths=3)
    assert weak["referenced"] is False and "chance level" in weak["why"]
    assert compare_metrics({}, {"head_pixel_auroc": weak}) == []  # skipped, not failed
    strong = reference_entry("head_pixel_auroc", 0.9, SPLIT, spread=0.01, n_paths=3)
    assert strong.get("referenced", True) and strong["floor"] == 0.55
    assert compare_metrics({"head_pixel_auroc": 0.5}, {"head_pixel_auroc": dict(strong, abs_tol=0.5)})[-1].startswith(
        "head_pixel_auroc: 0.5 does not clear its chance floor")


def test_quality_metric_without_a_chance_level_is_refused():
    with pytest.raises(KeyError, match="without a chance level"):
        reference_entry("head_separation_auroc", 0.9, {})
    assert reference_entry("ddpm_best_count", 4, {})["referenced"] is False


def write_run(root, machine, path, values, notebook="05_student_teacher", run="mtd"):
    folder = root / machine / path / "metrics"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{notebook}.{run}.json").write_text(json.dumps({"notebook": notebook, **SPLIT, **values}))


def test_build_references_from_measured_paths(tmp_path):
    write_run(tmp_path, "cpu-a", "avx2-t2", {"image_auroc": 0.90, "aupro": 0.23, "train_steps": 21, "timing_fit_s": 3.0})
    write_run(tmp_path, "cpu-a", "avx2-t1", {"image_auroc": 0.88, "aupro": 0.24, "train_steps": 21, "timing_fit_s": 5.0})
    write_run(tmp_path, "cpu-a", "avx-t1", {"image_auroc": 0.91, "aupro": 0.22, "train_steps": 21, "timing_fit_s": 6.0})
    measurements = load_measurements(tmp_path)
    assert set(measurements["cpu-a"]) == {"avx2-t2", "avx2-t1", "avx-t1"}
    assert spread_table(measurements["cpu-a"]).loc[("05_student_teacher", "mtd", "image_auroc"), "spread"] == pytest.approx(0.03)
    refs = build_references(measurements, ("cpu-a", "avx2-t2"))
    entries = refs["05_student_teacher"]["mtd"]
    assert "timing_fit_s" not in entries
    assert entries["image_auroc"]["value"] == 0.90 and entries["image_auroc"]["abs_tol"] == pytest.approx(0.06)
    assert entries["image_auroc"]["spread_paths"] == 3 and entries["train_steps"]["spread"] == 0
    assert "seed_sd" not in entries["image_auroc"]  # no seed runs: no seed spread claimed
    assert entries["aupro"]["referenced"] is False  # 0.23 - 2 x 0.02 reaches the AUPRO floor 0.2
    with pytest.raises(KeyError, match="pinned path"):
        build_references(measurements, ("cpu-a", "avx512-t2"))


def test_seed_tolerance_is_a_prediction_bound_over_training_seeds():
    assert seed_tolerance(0.01, 5) == pytest.approx(4.604 * np.sqrt(2) * 0.01, rel=1e-3)  # t_4(0.995)
    assert seed_tolerance(0.01, 10) < seed_tolerance(0.01, 5)  # more seeds, a tighter bound for the same sd
    assert seed_tolerance(0.01, 2) == 0.0 and seed_tolerance(0.0, 5) == 0.0  # two runs are not a spread
    assert split_path_name("avx2-t1-seed3") == ("avx2-t1", 3) and split_path_name("avx2-t2") == ("avx2-t2", 0)


def test_references_cover_another_cpu_and_the_training_seeds(tmp_path):
    """A second CPU's paths widen the numeric spread; training seeds on one path set the seed spread; a number
    whose seed band reaches chance is recorded, not compared, and says the seeds are why."""
    write_run(tmp_path, "cpu-a", "avx2-t2", {"head_image_auroc": 0.92, "head_aupro": 0.60, "disc_pixel_auroc": 0.78})
    write_run(tmp_path, "cpu-b", "avx2-t2", {"head_image_auroc": 0.91, "head_aupro": 0.58, "disc_pixel_auroc": 0.781})
    for seed, (image, aupro, pixel) in enumerate([(0.90, 0.45, 0.7805), (0.93, 0.70, 0.7812), (0.92, 0.31, 0.7808)], 1):
        write_run(tmp_path, "cpu-b", f"avx2-t2-seed{seed}", {"head_image_auroc": image, "head_aupro": aupro, "disc_pixel_auroc": pixel})
    entries = build_references(load_measurements(tmp_path), ("cpu-a", "avx2-t2"))["05_student_teacher"]["mtd"]
    image = entries["head_image_auroc"]
    assert image["spread"] == pytest.approx(0.01) and image["spread_paths"] == 2  # cpu-a against cpu-b
    assert image["seeds"] == 4 and image["seed_sd"] == pytest.approx(np.std([0.91, 0.90, 0.93, 0.92], ddof=1), abs=1e-6)
    assert image["abs_tol"] == pytest.approx(seed_tolerance(image["seed_sd"], 4), abs=1e-6)
    assert compare_metrics({"head_image_auroc": 0.95}, {"head_image_auroc": image}) == []  # inside the seed band
    assert compare_metrics({"head_image_auroc": 0.70}, {"head_image_auroc": image})  # a broken head is still caught
    aupro = entries["head_aupro"]
    assert aupro["referenced"] is False and "training seeds" in aupro["why"] and "chance level" in aupro["why"]
    pixel = entries["disc_pixel_auroc"]  # a number that hardly moves keeps the quality floor 0.01
    assert pixel.get("referenced", True) and pixel["abs_tol"] == pytest.approx(0.01)


def test_recorded_spread_of_an_earlier_machine_still_counts(tmp_path):
    write_run(tmp_path, "old-cpu", "avx2-t2", {"head_image_auroc": 0.92})
    write_run(tmp_path, "new-cpu", "avx2-t2", {"head_image_auroc": 0.921})
    (tmp_path / "old-cpu" / "recorded_spread.json").write_text(json.dumps(
        {"paths": ["avx2-t2", "avx2-t1", "avx-t1"], "spread": {"05_student_teacher": {"mtd": {"head_image_auroc": 0.02}}}}))
    recorded = load_recorded_spreads(tmp_path)
    entry = build_references(load_measurements(tmp_path), ("old-cpu", "avx2-t2"), recorded)["05_student_teacher"]["mtd"]["head_image_auroc"]
    assert entry["spread"] == 0.02 and entry["spread_paths"] == 4 and entry["abs_tol"] == pytest.approx(0.04)


def test_committed_references_never_sit_in_a_chance_window():
    """Every compared quality number has a chance level, and its band lies wholly on the right side of it;
    every number of a trained model records the spread measured over numeric paths."""
    refs = load_references()
    assert refs, "tests/reference/notebook_metrics.json is missing"
    checked = 0
    for notebook, runs in refs.items():
        if notebook.startswith("_"):
            continue
        for run, entries in runs.items():
            for key, entry in entries.items():
                where = f"{notebook}/{run}/{key}"
                if not entry.get("referenced", True):
                    assert entry.get("why"), f"{where} is not referenced but says not why"
                    continue
                if not is_quality_metric(key):
                    continue
                tol = max(entry["abs_tol"], entry["rel_tol"] * abs(entry["value"]))
                if "floor" in entry:
                    assert entry["value"] - tol > entry["floor"], f"{where}: band reaches the floor"
                else:
                    assert "ceiling" in entry, f"{where}: a quality metric without a chance level"
                    assert entry["value"] + tol < entry["ceiling"], f"{where}: band reaches the ceiling"
                assert entry.get("spread_paths", 0) >= 3, f"{where}: no spread measured over numeric paths"
                if notebook[:2] in TRAINING_NOTEBOOKS:
                    assert entry.get("seeds", 0) >= MIN_SEEDS, f"{where}: a trained number without its spread over training seeds"
                    assert entry["abs_tol"] >= seed_tolerance(entry["seed_sd"], entry["seeds"]) * (1 - 1e-4), f"{where}: tolerance below the seed bound"
                checked += 1
    assert checked > 50


def test_committed_references_hold_on_every_measured_cpu_path_and_seed():
    """The committed measurements (every CPU's numeric paths and training seeds, tests/reference/measured) all pass
    the committed references: a tolerance that a sound run on a measured CPU breaks is too tight. This is where the
    Intel AVX-512 numbers that failed CI (issue 46: 0.91125 and 0.664923 on notebook 05, MTD) are held."""
    refs = load_references()
    measurements = load_measurements(MEASURED_DIR)
    machines = {machine for machine in measurements}
    assert len(machines) >= 2, f"expected the measurements of at least two CPUs, found {sorted(machines)}"
    checked = 0
    for machine, paths in measurements.items():
        for path, notebooks in paths.items():
            for notebook, by_run in notebooks.items():
                for run, metrics in by_run.items():
                    reference = refs.get(notebook, {}).get(run)
                    if reference is None or run == "results":
                        continue
                    if split_path_name(path)[1]:  # a seed run: the exact counts and names of seed 0 need not hold
                        reference = {k: e for k, e in reference.items() if isinstance(e.get("value"), float)}
                    problems = compare_metrics(metrics, reference)
                    assert not problems, f"{machine}/{path}: {notebook} on {run}:\n" + "\n".join(problems)
                    checked += 1
    assert checked >= 20


def test_a_descriptive_number_as_wide_as_its_seed_spread_is_recorded_not_compared():
    wide = reference_entry("perlin_frechet_to_defect", 1000.0, SPLIT, spread=0.0, n_paths=3, seed_sd=400.0, n_seeds=5)
    assert wide["referenced"] is False and "spread over training seeds" in wide["why"]
    narrow = reference_entry("perlin_frechet_to_defect", 1000.0, SPLIT, spread=0.0, n_paths=3, seed_sd=5.0, n_seeds=5)
    assert narrow.get("referenced", True) and narrow["abs_tol"] == pytest.approx(seed_tolerance(5.0, 5), abs=1e-6)
