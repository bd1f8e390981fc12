"""`exdd-lab compare`: several methods on one split, with the analyst's files."""
import json

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from exdd_lab.cli import main
from exdd_lab.data import load_dataset
from exdd_lab.features import FeatureConfig
from exdd_lab.methods import PatchCore, PatchCoreSettings


def test_compare_writes_every_methods_outputs_and_the_results_table(tiny_mvtec, tmp_path, capsys):
    out = tmp_path / "cmp"
    code = main(["compare", "--data", str(tiny_mvtec), "--layout", "mvtec", "--generator", "perlin",
                 "--n-synthetic", "8", "--exdd-synthetic", "8", "--epochs", "1", "--image-size", "64",
                 "--held-out", "2", "--min-mask-fraction", "0.3", "--k", "2", "--out", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    methods = ["patchcore", "exdd", "student-teacher"]
    for name in methods:  # the same standard outputs as `evaluate`, one folder per method
        metrics = json.loads((out / name / "metrics.json").read_text())
        assert metrics["method"] == name and metrics["n_test"] == 10 and metrics["n_train"] == 6
        assert metrics["normal_only_threshold"] is not None  # from the 2 held-out normals
        scores = pd.read_csv(out / name / "scores.csv")
        assert len(scores) == 10
        assert metrics["image_auroc"] == pytest.approx(roc_auc_score(scores["label"], scores["score"]))
    # PatchCore's numbers are those of PatchCore fitted on the same split (the held-out normals moved out)
    ds = load_dataset(tiny_mvtec, "mvtec").with_held_out_normals(2, seed=0)
    direct = PatchCore(FeatureConfig(image_size=64), PatchCoreSettings(seed=0)).fit(ds.train).predict(ds.test).scores
    written = pd.read_csv(out / "patchcore" / "scores.csv").set_index("image_path")["score"]
    assert [written[str(s.image_path)] for s in ds.test] == pytest.approx(direct, rel=1e-5)
    from exdd_lab.lab.references import random_score_quantile  # above what random scores reach on 6 / 4 images

    assert json.loads((out / "patchcore" / "metrics.json").read_text())["image_auroc"] > random_score_quantile("image_auroc", 6, 4)
    results = pd.read_parquet(out / "results.parquet")
    assert len(results) == 30 and list(results["method"].unique()) == methods
    assert set(results["outcome_f1"]) <= {"TP", "FP", "TN", "FN"}
    scores = pd.read_csv(out / "exdd" / "scores.csv")["score"].to_numpy()
    assert results[results["method"] == "exdd"]["score"].to_numpy() == pytest.approx(scores, rel=1e-5)
    table = pd.read_csv(out / "methods.csv", index_col=0)
    assert list(table.index) == methods and {"image_auroc", "FN_f1", "FP_normal_only"} <= set(table.columns)
    assert (out / "failures.csv").is_file() and (out / "disagreements.csv").is_file()
    assert list((out / "gallery").glob("*.png")), "the gallery has the failure cases as figures"
    assert "results.csv/.parquet" in printed.out
    # every metric carries its interval; every pair of methods its paired test, DeLong's from the scores
    from exdd_lab.evaluation.paired_tests import delong_test

    metrics = json.loads((out / "exdd" / "metrics.json").read_text())
    low, high = metrics["intervals"]["image_auroc"]
    assert low <= metrics["image_auroc"] <= high and metrics["interval_settings"]["resamples"] == 1000
    paired = pd.read_csv(out / "paired.csv")
    assert len(paired) == 3 * 6 and set(paired["correction"]) == {"Holm"}
    row = paired[(paired.metric == "image_auroc") & (paired.method_a == "patchcore") & (paired.method_b == "exdd")].iloc[0]
    a, b = (pd.read_csv(out / n / "scores.csv") for n in ("patchcore", "exdd"))
    expected = delong_test(a["label"].to_numpy() == 1, a["score"].to_numpy(), b["score"].to_numpy())
    assert row.p_value == pytest.approx(expected["p_value"]) and row.difference == pytest.approx(expected["difference"])
    assert "paired differences" in printed.out and "DeLong" in printed.out


def test_compare_names_unknown_methods(tiny_mvtec, tmp_path, capsys):
    code = main(["compare", "--data", str(tiny_mvtec), "--layout", "mvtec", "--methods", "patchcore,padim",
                 "--out", str(tmp_path / "x")])
    assert code == 2
    assert "unknown method(s) padim" in capsys.readouterr().err
