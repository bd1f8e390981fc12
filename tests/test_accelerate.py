"""--runtime auto: the front-end on the fastest installed runtime, traced once into the cache, checked, reused."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="the export extra is not installed: pip install -e '.[export]'")
pytest.importorskip("openvino", reason="the export extra is not installed: pip install -e '.[export]'")

from exdd_lab.cli import main  # noqa: E402
from exdd_lab.data import load_dataset  # noqa: E402
from exdd_lab.errors import ExportError  # noqa: E402
from exdd_lab.export import accelerate as acc  # noqa: E402
from exdd_lab.features import FeatureConfig, PatchFeatureExtractor  # noqa: E402
from exdd_lab.features.cache import FeatureCache  # noqa: E402
from exdd_lab.methods.patchcore import PatchCore  # noqa: E402

SMALL = FeatureConfig(image_size=64)


@pytest.fixture(scope="module")
def extractor():
    return PatchFeatureExtractor(SMALL)


@pytest.fixture()
def images():
    return (np.random.default_rng(0).random((3, 64, 64, 3)) * 255).astype(np.uint8)


def test_auto_takes_openvino_first_and_builds_the_graph_once(extractor, images, tmp_path, monkeypatch):
    builds = []
    real_build = acc._build
    monkeypatch.setattr(acc, "_build", lambda *a: builds.append(a[1]) or real_build(*a))
    frontend, chosen = acc.fastest_frontend(extractor, "auto", root=tmp_path)
    assert chosen.runtime == "openvino" and builds == ["openvino"]
    got, want = frontend(images), extractor(images)
    assert (torch.linalg.norm(got - want) / torch.linalg.norm(want)) < 1e-4
    again, _ = acc.fastest_frontend(extractor, "auto", root=tmp_path)
    assert builds == ["openvino"] and torch.equal(again(images), got)  # reused from the cache, not traced again
    manifest = json.loads((acc.frontend_folder(extractor, "openvino", tmp_path) / "export.json").read_text())
    assert manifest["identity"]["runtime"] == "openvino" and manifest["fidelity_at_build"]["max_relative_error"] < 1e-4
    # the feature cache keeps each runtime's features apart
    assert FeatureCache(frontend.config, frontend.weights_source).folder != FeatureCache(extractor.config, extractor.weights_source).folder
    assert not list(tmp_path.glob(".*"))  # nothing half-built left behind


def test_a_missing_runtime_falls_back_and_says_so(extractor, tmp_path, monkeypatch):
    monkeypatch.setattr(acc, "installed", lambda runtime: runtime == "onnx")
    frontend, chosen = acc.fastest_frontend(extractor, "auto", root=tmp_path)
    assert chosen.runtime == "onnx" and frontend.runtime == "onnx"
    monkeypatch.setattr(acc, "installed", lambda runtime: False)
    frontend, chosen = acc.fastest_frontend(extractor, "auto", root=tmp_path)
    assert frontend is extractor and chosen.runtime == "torch"
    assert "openvino is not installed" in chosen.note and "onnx is not installed" in chosen.note
    with pytest.raises(ExportError, match="--runtime onnx: onnx is not installed"):
        acc.fastest_frontend(extractor, "onnx", root=tmp_path)


def test_a_graph_that_misses_fidelity_is_refused_and_not_cached(extractor, tmp_path, monkeypatch):
    monkeypatch.setattr(acc, "FIDELITY_LIMIT", 0.0)
    frontend, chosen = acc.fastest_frontend(extractor, "auto", root=tmp_path)
    assert frontend is extractor and "openvino refused" in chosen.note and "onnx refused" in chosen.note
    assert not any(tmp_path.iterdir())  # the refused graphs left nothing in the cache
    with pytest.raises(ExportError, match="differ from PyTorch"):
        acc.fastest_frontend(extractor, "openvino", root=tmp_path)


def test_fit_and_score_default_to_auto_and_agree_with_torch(tiny_mvtec, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EXDD_LAB_CACHE", str(tmp_path / "cache"))
    normals = tiny_mvtec / "train" / "good"
    args = ["fit", "--normals", str(normals), "--image-size", "64", "--held-out", "3", "--quiet"]
    assert main(args + ["--out", str(tmp_path / "auto")]) == 0
    assert "front-end: openvino" in capsys.readouterr().out
    assert main(args + ["--out", str(tmp_path / "torch"), "--runtime", "torch"]) == 0
    reports = [json.loads((tmp_path / name / "fit_report.json").read_text()) for name in ("auto", "torch")]
    assert reports[0]["threshold"] == pytest.approx(reports[1]["threshold"], rel=1e-4)
    assert "PyTorch" in reports[1]["runtime"]
    images = str(tiny_mvtec / "test")
    for runtime in ("auto", "torch"):
        extra = [] if runtime == "auto" else ["--runtime", "torch"]
        assert main(["score", "--model", str(tmp_path / "auto"), "--images", images, "--out", str(tmp_path / f"s-{runtime}"),
                     "--quiet", *extra]) == 0
    manifest = json.loads((tmp_path / "s-auto" / "manifest.json").read_text())
    assert manifest["last_run"]["runtime"] == "openvino"

    def scores(name):
        with (tmp_path / name / "scores.csv").open() as handle:
            return {r["image_path"]: float(r["score"]) for r in csv.DictReader(handle)}

    fast, slow = scores("s-auto"), scores("s-torch")
    assert fast.keys() == slow.keys() and len(fast) == 10
    assert max(abs(fast[k] - slow[k]) / abs(slow[k]) for k in fast) < 1e-4


def test_the_student_teacher_stays_in_pytorch(tiny_mvtec):
    class NoFrontEnd:
        name = "student-teacher"

    chosen = acc.accelerate(NoFrontEnd(), "auto")
    assert chosen.runtime == "torch" and "exdd-lab export" in chosen.note
    with pytest.raises(ExportError, match="needs an export"):
        acc.accelerate(NoFrontEnd(), "onnx")
    detector = PatchCore(SMALL).fit(load_dataset(tiny_mvtec, "mvtec").train)
    assert acc.accelerate(detector, "torch").runtime == "torch" and isinstance(detector.extractor, PatchFeatureExtractor)
