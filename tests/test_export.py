"""Exported detectors (exdd_lab.export.writer): the ONNX / OpenVINO front-end gives PyTorch's features and scores at any
batch size, through the library, `exdd-lab export` and `exdd-lab score --runtime`; and a changed, old or
mismatched export is refused with the fix."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import timm
import torch
from safetensors.torch import save_file

from exdd_lab.archive import compare_results
from exdd_lab.cli import main
from exdd_lab.data import load_dataset
from exdd_lab.data.imageio import load_image
from exdd_lab.errors import ExddError, ExportError
from exdd_lab.evaluation.run import evaluate_prediction
from exdd_lab.export.writer import MANIFEST, export_detector, relative_errors
from exdd_lab.features import FeatureConfig
from exdd_lab.methods.exdd.detector import ExDD, ExddSettings
from exdd_lab.methods.patchcore import PatchCore, PatchCoreSettings
from exdd_lab.methods.registry import load_detector

pytest.importorskip("onnxruntime", reason="the export extra is not installed: pip install -e '.[export]'")
pytest.importorskip("openvino", reason="the export extra is not installed: pip install -e '.[export]'")


@pytest.fixture(scope="module")
def tiny(tiny_mvtec):
    return load_dataset(tiny_mvtec, "mvtec")


@pytest.fixture(scope="module")
def saved(tiny, tmp_path_factory) -> Path:
    """PatchCore on the default backbone (its real packaged ImageNet weights), 64 px."""
    folder = tmp_path_factory.mktemp("export") / "patchcore"
    PatchCore(FeatureConfig(image_size=64)).fit(tiny.train).save(folder)
    return folder


@pytest.fixture(scope="module")
def exports(saved, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("exported")
    return {fmt: export_detector(saved, fmt, root / fmt) for fmt in ("onnx", "openvino")}


def images_of(samples, size: int) -> np.ndarray:
    return np.stack([load_image(s.image_path, size) for s in samples])


@pytest.mark.parametrize("fmt,runtime", [("onnx", "onnx"), ("onnx", "openvino"), ("openvino", "openvino")])
def test_exported_front_end_gives_pytorchs_features_scores_and_auroc(tiny, saved, exports, fmt, runtime):
    torch_model = load_detector(saved)
    exported = load_detector(exports[fmt], runtime=runtime)
    assert exported.extractor.weights_source.kind == f"exported-{runtime}"
    images = images_of(tiny.test, 64)
    with torch.no_grad():
        reference = torch_model.extractor(images).numpy()
    one_by_one = np.concatenate([exported.extractor(images[i : i + 1]).numpy() for i in range(len(images))])
    batched = exported.extractor(images).numpy()
    assert relative_errors(one_by_one, reference).max() < 1e-4
    assert relative_errors(batched, reference).max() < 1e-4
    ref_pred, exp_pred = torch_model.predict(tiny.test), exported.predict(tiny.test)
    assert np.max(np.abs(exp_pred.scores - ref_pred.scores) / np.abs(ref_pred.scores)) < 1e-4
    ref_metrics, _ = evaluate_prediction(tiny, ref_pred, 64)
    exp_metrics, _ = evaluate_prediction(tiny, exp_pred, 64)
    for key in ("image_auroc", "pixel_auroc"):
        assert round(exp_metrics[key], 3) == round(ref_metrics[key], 3)
    assert ref_metrics["image_auroc"] > 0.6  # a detector that works, so matching it means something


def test_dynamic_batch_gives_the_same_scores_at_batch_1_and_32(tiny, exports):
    detector = load_detector(exports["onnx"], runtime="onnx")
    images = images_of(tiny.test, 64)
    stacked = np.concatenate([images] * (32 // len(images) + 1))[:32]
    single = np.concatenate([detector.predict_images(stacked[i : i + 1], keep_maps=False).scores for i in range(32)])
    detector.settings.batch_size = 32
    whole = detector.predict_images(stacked, keep_maps=False).scores
    np.testing.assert_allclose(whole, single, rtol=1e-5)


def test_manifest_names_source_runtimes_and_measured_fidelity(saved, exports):
    from exdd_lab.methods.persistence import model_fingerprint

    manifest = json.loads((exports["openvino"] / MANIFEST).read_text())
    assert manifest["source_fingerprint"] == model_fingerprint(saved)
    assert manifest["source_model"] == str(saved.resolve())
    assert manifest["graph"] == "frontend.xml" and (exports["openvino"] / "frontend.bin").is_file()
    assert manifest["runtime_versions"]["openvino"] and manifest["runtime_versions"]["torch"]
    assert 0 <= manifest["fidelity_at_export"]["max_relative_error"] < 1e-4
    assert manifest["output"]["grid"] == 8 and manifest["output"]["dim"] == 152


def test_a_tiny_backbone_built_here_exports_for_exdd(tiny, tmp_path):
    """ExDD on a tiny timm network whose weights the test writes itself (the real weights-file loading path)."""
    net = timm.create_model("test_efficientnet", pretrained=False)
    torch.manual_seed(0)
    weights = tmp_path / "test_efficientnet.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, weights)
    config = FeatureConfig(backbone="test_efficientnet", weights=str(weights), image_size=64)
    defects = [s for s in tiny.test if s.is_defect]
    ExDD(config, ExddSettings(min_mask_fraction=0.5), defects=defects).fit(tiny.train).save(tmp_path / "exdd")
    export_detector(tmp_path / "exdd", "onnx", tmp_path / "exported")
    reference = load_detector(tmp_path / "exdd").predict(tiny.test).scores
    for runtime in ("onnx", "openvino"):
        scores = load_detector(tmp_path / "exported", runtime=runtime).predict(tiny.test).scores
        assert np.max(np.abs(scores - reference) / np.maximum(np.abs(reference), 1e-12)) < 1e-4


@pytest.mark.parametrize("student, neighbourhood", [("encoder", 1), ("reverse", 3)])
def test_a_student_teacher_exports_whole_and_scores_like_pytorch(tiny, tmp_path, student, neighbourhood):
    """Teacher, student and head as one graph: both grids, the maps and the scores of the exported detector equal
    PyTorch's in ONNX Runtime and OpenVINO (a tiny student trained here on Perlin defects), for an image student
    and for reverse distillation (the student reads the teacher's maps inside the graph) with a 3 x 3 discrepancy."""
    from exdd_lab.methods.student_teacher import StudentTeacher, StudentTeacherSettings
    from exdd_lab.student_teacher import StudentTeacherConfig
    from exdd_lab.synthesis import PerlinBlendGenerator, load_defect_set, synthesize, write_defect_set

    made = synthesize(tiny.train, PerlinBlendGenerator([s.image_path for s in tiny.train]), n=6, seed=0, image_size=64)
    defects = load_defect_set(write_defect_set(made, tmp_path / "defects"))
    config = StudentTeacherConfig(image_size=64, student=student, student_width=8, bottleneck=16, head_width=8,
                                  batch_size=4, epochs=1, neighbourhood=neighbourhood)
    StudentTeacher(config, StudentTeacherSettings(top_k=10), defects=defects).fit(tiny.train).save(tmp_path / "st")
    reference = load_detector(tmp_path / "st").predict(tiny.test)
    for fmt, runtime in (("onnx", "onnx"), ("openvino", "openvino")):
        exported = load_detector(export_detector(tmp_path / "st", fmt, tmp_path / fmt), runtime=runtime)
        assert exported.grids is not None and exported.grids.runtime == runtime
        pred = exported.predict(tiny.test)
        for grid in ("head_grid", "discrepancy_grid"):
            assert relative_errors(pred.extra[grid], reference.extra[grid]).max() < 1e-4, (runtime, grid)
        assert np.max(np.abs(pred.scores - reference.scores) / np.abs(reference.scores)) < 1e-4
        metrics, _ = evaluate_prediction(tiny, pred, 64)
        ref_metrics, _ = evaluate_prediction(tiny, reference, 64)
        assert round(metrics["image_auroc"], 3) == round(ref_metrics["image_auroc"], 3)
        assert round(metrics["pixel_auroc"], 3) == round(ref_metrics["pixel_auroc"], 3)
    manifest = json.loads((tmp_path / "onnx" / MANIFEST).read_text())
    assert manifest["graph_kind"] == "student-teacher-grids" and manifest["output"]["names"] == ["head", "discrepancy"]


def test_cli_export_then_score_with_onnx_matches_torch(tiny_mvtec, saved, tmp_path, capsys):
    assert main(["export", "--model", str(saved), "--format", "onnx", "--out", str(tmp_path / "e")]) == 0
    assert "max relative difference" in capsys.readouterr().out
    images = str(Path(tiny_mvtec) / "test")
    for runtime in ("torch", "onnx"):
        assert main(["score", "--model", str(tmp_path / "e"), "--images", images, "--out", str(tmp_path / runtime),
                     "--runtime", runtime, "--quiet"]) == 0
    a = pd.read_csv(tmp_path / "torch" / "scores.csv").sort_values("image_path")
    b = pd.read_csv(tmp_path / "onnx" / "scores.csv").sort_values("image_path")
    assert len(a) == len(b) > 0 and list(a.image_path) == list(b.image_path)
    np.testing.assert_allclose(b.score.to_numpy(), a.score.to_numpy(), rtol=1e-4)
    agreement = compare_results(tmp_path / "torch", tmp_path / "onnx")
    assert agreement["n_scored"] == len(a) and agreement["max_relative_score_difference"] < 1e-4
    assert agreement["same_statuses"] and agreement["same_decisions"]
    # another detector (fitted on half the normals) over the same images: compare_results sees the difference
    other = PatchCore(FeatureConfig(image_size=64)).fit(load_dataset(tiny_mvtec, "mvtec").train[::2]).save(tmp_path / "half")
    assert main(["score", "--model", str(other), "--images", images, "--out", str(tmp_path / "half-scores"), "--quiet"]) == 0
    assert compare_results(tmp_path / "torch", tmp_path / "half-scores")["max_relative_score_difference"] > 1e-3


@pytest.mark.realdata
def test_onnx_export_scores_mtds_test_split_like_pytorch(mtd_root, tmp_path):
    """The issue's fidelity targets on real data: all 592 MTD test images (seed-0 split) at the default 256 px,
    the default backbone with its real weights; 40 training normals (the front-end does not depend on the bank)."""
    ds = load_dataset(mtd_root, "mtd", seed=0)
    saved = PatchCore(FeatureConfig(), PatchCoreSettings(seed=0)).fit(ds.train[::10]).save(tmp_path / "model")
    assert main(["export", "--model", str(saved), "--format", "onnx", "--out", str(tmp_path / "onnx")]) == 0
    reference, exported = load_detector(saved), load_detector(tmp_path / "onnx", runtime="onnx")
    for i in range(0, len(ds.test), 32):
        images = images_of(ds.test[i : i + 32], 256)
        with torch.no_grad():
            want = reference.extractor(images).numpy()
        assert relative_errors(exported.extractor(images).numpy(), want).max() < 1e-4, ds.test[i].image_path
    ref_pred, exp_pred = reference.predict(ds.test, keep_maps=True), exported.predict(ds.test, keep_maps=True)
    assert np.max(np.abs(exp_pred.scores - ref_pred.scores) / np.abs(ref_pred.scores)) < 1e-4
    ref_metrics, _ = evaluate_prediction(ds, ref_pred, 256)
    exp_metrics, _ = evaluate_prediction(ds, exp_pred, 256)
    assert ref_metrics["image_auroc"] > 0.75  # a detector that works on MTD, so matching it means something
    for key in ("image_auroc", "pixel_auroc", "aupro"):
        assert round(exp_metrics[key], 3) == round(ref_metrics[key], 3), key


def test_changed_old_or_mismatched_exports_are_refused(saved, exports, tmp_path):
    # a saved detector of an older format version is not exported: re-fit and save it first
    older = tmp_path / "older"
    shutil.copytree(saved, older)
    blob = json.loads((older / "patchcore.json").read_text())
    (older / "patchcore.json").write_text(json.dumps({**blob, "format_version": 0}))
    with pytest.raises(ExddError, match="(?s)format version 0.*re-fit and save"):
        export_detector(older, "onnx", tmp_path / "of-older")
    assert not (tmp_path / "of-older").exists()
    # --runtime onnx on a PyTorch model: says to export first
    with pytest.raises(ExportError, match="export it first"):
        load_detector(saved, runtime="onnx")
    # ONNX Runtime cannot run an OpenVINO graph
    with pytest.raises(ExportError, match="--runtime openvino"):
        load_detector(exports["openvino"], runtime="onnx")
    # an export of an older format version
    old = tmp_path / "old"
    shutil.copytree(exports["onnx"], old)
    manifest = json.loads((old / MANIFEST).read_text())
    (old / MANIFEST).write_text(json.dumps({**manifest, "export_version": 0}))
    with pytest.raises(ExportError, match="(?s)format version 0.*export the source model again"):
        load_detector(old, runtime="onnx")
    # the source model fitted and saved again since the export
    source = tmp_path / "source"
    shutil.copytree(saved, source)
    export_detector(source, "onnx", tmp_path / "of-source")
    blob = json.loads((source / "patchcore.json").read_text())
    (source / "patchcore.json").write_text(json.dumps({**blob, "train_paths": blob["train_paths"][:-1]}))
    with pytest.raises(ExportError, match="changed since .* was exported"):
        load_detector(tmp_path / "of-source", runtime="onnx")
    # the copied model edited inside the export
    tampered = tmp_path / "tampered"
    shutil.copytree(exports["onnx"], tampered)
    (tampered / "model" / "patchcore.json").write_text((tampered / "model" / "patchcore.json").read_text() + " ")
    with pytest.raises(ExportError, match="not the one that was exported"):
        load_detector(tampered, runtime="torch")
    # an export is not exported again, and an existing folder is not overwritten
    with pytest.raises(ExportError, match="already an exported folder"):
        export_detector(exports["onnx"], "onnx", tmp_path / "twice")
    with pytest.raises(ExportError, match="already exists"):
        export_detector(saved, "onnx", exports["onnx"])


def test_missing_runtime_names_the_extra(saved, exports, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_onnxruntime(name, *args, **kwargs):
        if name == "onnxruntime":
            raise ImportError("No module named 'onnxruntime'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnxruntime)
    with pytest.raises(ExddError, match=r"\.\[export\]"):
        load_detector(exports["onnx"], runtime="onnx")
