"""Reopen any run: evaluate and compare write the results table and the maps; ResultSet.load reopens them."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from exdd_lab.errors import ExddError
from exdd_lab.evaluation.results import ResultSet, dequantize_maps, quantize_maps


def test_quantized_maps_come_back_within_half_a_step():
    maps = np.random.default_rng(0).gamma(2.0, 3.0, size=(3, 16, 16)).astype(np.float32)
    codes, low, high = quantize_maps(maps)
    assert codes.dtype == np.uint8 and codes.min() == 0 and codes.max() == 255
    back = dequantize_maps(codes, low, high)
    assert np.abs(back - maps).max() <= (high - low) / 510 + 1e-5
    flat, low, high = quantize_maps(np.full((2, 4, 4), 3.0, np.float32))  # a constant map keeps its value
    assert np.allclose(dequantize_maps(flat, low, high), 3.0)


def test_evaluate_writes_a_run_that_reopens_and_browses(tiny_mvtec, tmp_path):
    from exdd_lab.cli import main
    from exdd_lab.plots.browser import FailureBrowser

    out = tmp_path / "ev"
    assert main(["evaluate", "--data", str(tiny_mvtec), "--layout", "mvtec", "--image-size", "64", "--held-out", "2",
                 "--out", str(out)]) == 0
    run = ResultSet.load(out)
    assert run.methods == ["patchcore"] and run.image_size == 64
    scores = pd.read_csv(out / "scores.csv")
    assert np.allclose(run.predictions["patchcore"].scores, scores["score"], rtol=1e-5)
    assert len(run.samples) == len(scores) and run.predictions["patchcore"].maps.shape == (len(scores), 64, 64)
    assert run.has_normal_only  # the held-out normals' threshold is in the table
    assert sum(m is not None for m in run.masks) == len(run.samples)
    browser, drawn = FailureBrowser(run), 0
    for kind in ("TP", "FN", "FP", "TN"):  # the widget draws every case kind from the reloaded maps
        browser.kind.value = kind
        if len(browser.cases):
            assert bytes(browser.picture.value).startswith(b"\x89PNG")
            drawn += 1
    assert drawn >= 2
    with pytest.raises(ExddError, match="no reopenable results"):
        ResultSet.load(tmp_path)


def test_compare_writes_a_run_that_reopens(tiny_mvtec, tmp_path):
    from exdd_lab.cli import main

    out = tmp_path / "cmp"
    assert main(["compare", "--data", str(tiny_mvtec), "--layout", "mvtec", "--methods", "patchcore",
                 "--image-size", "64", "--held-out", "2", "--bootstrap", "0", "--out", str(out)]) == 0
    run = ResultSet.load(out)
    saved = pd.read_parquet(out / "results.parquet")
    pd.testing.assert_frame_equal(run.table, saved)
    low, threshold = run.map_scale("patchcore")
    assert threshold > low
