"""A fitted detector outside PyTorch: one ONNX or OpenVINO graph, the saved detector beside it.

For PatchCore and ExDD, everything before the bank search — ``uint8`` images in, normalisation, the backbone's
layer taps, the 3x3 neighbourhood average, resizing to the finest grid, concatenation (and a projection, if any)
— is traced into one graph with a dynamic batch size (:class:`FrontEndGraph`, the same arithmetic as
:class:`~exdd_lab.features.PatchFeatureExtractor`); the bank search stays in faiss, as in PyTorch. For the
student–teacher, the teacher, student and segmentation head up to the two anomaly grids are one graph
(:class:`StudentTeacherGraph`); smoothing and the top-k image score stay in numpy, as in PyTorch. An export
folder holds::

    export.json        the manifest: kit version, the source model's path and fingerprint, runtime versions,
                       the graph's input and outputs, and the fidelity measured at export
    frontend.onnx      (--format onnx) or frontend.xml + frontend.bin (--format openvino)
    model/             the saved detector, copied unchanged (banks or weights in safetensors, settings in JSON)

``load_detector(folder, runtime="onnx")`` (:mod:`exdd_lab.methods.registry`) loads such a folder with the graph
in the place of the PyTorch networks (:mod:`exdd_lab.export.runtime`); ``runtime="torch"`` scores the copied model
in PyTorch. ONNX Runtime and OpenVINO are the ``export`` extra (``pip install -e '.[export]'``).
"""
from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from exdd_lab.errors import ExportError
from exdd_lab.export.runtime import (EXPORT_FORMAT, EXPORT_FORMATS, EXPORT_VERSION, MANIFEST, RuntimeGraph, require,
                                     runtime_versions)
from exdd_lab.features.patches import PatchFeatureExtractor, combine_layers
from exdd_lab.methods.persistence import kit_version, model_fingerprint
from exdd_lab.methods.registry import load_detector
from exdd_lab.storage import atomic_directory, atomic_write_json, file_digest
from exdd_lab.student_teacher.inference import grid_tensors

#: Largest relative difference ``||exported - torch|| / ||torch||`` of one image's patch features accepted at export.
FIDELITY_LIMIT = 1e-4
EXPORTABLE = ("patchcore", "exdd", "student-teacher")


class FrontEndGraph(nn.Module):
    """``images (N, S, S, 3) uint8 -> patch features (N, h, w, C) float32``: the extractor's arithmetic as one graph."""

    def __init__(self, extractor: PatchFeatureExtractor) -> None:
        super().__init__()
        self.extractor = extractor

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        ex = self.extractor
        x = images.permute(0, 3, 1, 2).float() / 255.0
        maps = list(ex.backbone((x - ex.mean) / ex.std))
        feats = combine_layers(maps, ex.config.neighbourhood, ex.config.neighbourhood_padding)
        return feats @ ex.projection if ex.projection is not None else feats


class StudentTeacherGraph(nn.Module):
    """``images (N, S, S, 3) uint8 -> (head probability, mean discrepancy)``, each ``(N, h_0, w_0)``: teacher,
    student and segmentation head as one graph (:func:`~exdd_lab.student_teacher.inference.grid_tensors`)."""

    def __init__(self, detector) -> None:
        super().__init__()
        self.teacher, self.student, self.head = detector.teacher, detector.model.student.eval(), detector.model.head.eval()
        self.head_input, self.neighbourhood = detector.config.head_input, detector.config.neighbourhood

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        prob, mean, _ = grid_tensors(self.teacher, self.student, self.head, self.teacher.preprocess(images), self.head_input,
                                    self.neighbourhood)
        return prob, mean


def frontend_description(ex: PatchFeatureExtractor) -> dict:
    """What a manifest says of a traced feature front-end (what :class:`~exdd_lab.export.runtime.RuntimeFrontEnd` reads)."""
    return {"graph_kind": "features",
            "output": {"name": "features", "dtype": "float32", "grid": ex.grid_size, "dim": ex.feature_dim,
                       "layer_channels": list(ex.layer_channels)},
            "features": {**asdict(ex.config), "layers": list(ex.config.resolved_layers)},
            "feature_metadata": ex.metadata(), "weights_source": ex.weights_source.description}


def graph_of(detector) -> tuple[nn.Module, int, list[str], dict]:
    """What ``export`` traces for a detector: the module, its input size, its output names and the manifest's
    ``graph_kind`` / output description. PatchCore and ExDD: the feature front-end (the banks stay in faiss);
    the student–teacher: teacher, student and head up to its two anomaly grids."""
    if detector.name in ("patchcore", "exdd"):
        ex: PatchFeatureExtractor = detector.extractor
        return FrontEndGraph(ex).eval(), ex.config.image_size, ["features"], frontend_description(ex)
    if detector.name == "student-teacher":
        return StudentTeacherGraph(detector).eval(), detector.config.image_size, ["head", "discrepancy"], {
            "graph_kind": "student-teacher-grids",
            "output": {"names": ["head", "discrepancy"], "dtype": "float32",
                       "meaning": "head: sigmoid of the segmentation head; discrepancy: mean over scales of 1 - cos"},
            "weights_source": detector.teacher.weights_source.description}
    raise ExportError(f"a {detector.name} detector has no export", f"export one of {', '.join(EXPORTABLE)}")


def probe_images(size: int, n: int = 4, seed: int = 0) -> np.ndarray:
    """Seeded smooth-noise images ``(n, size, size, 3) uint8`` for the export's fidelity check (no data needed)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (n, 3, 8, 8)).astype(np.float32)
    smooth = torch.nn.functional.interpolate(torch.from_numpy(coarse), size=(size, size), mode="bicubic", align_corners=False)
    noise = torch.from_numpy(rng.normal(0, 12, (n, 3, size, size)).astype(np.float32))
    return (smooth + noise).clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def relative_errors(exported: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per image ``||exported - reference|| / ||reference||`` over its patch features."""
    a = np.asarray(exported, np.float64).reshape(len(exported), -1)
    b = np.asarray(reference, np.float64).reshape(len(reference), -1)
    return np.linalg.norm(a - b, axis=1) / np.maximum(np.linalg.norm(b, axis=1), 1e-12)


def _export_onnx(graph: nn.Module, size: int, outputs: list[str], path: Path) -> None:
    require("onnx")
    require("onnxscript")
    example = torch.from_numpy(probe_images(size, 2))
    batch = torch.export.Dim("batch", min=1, max=4096)
    torch.onnx.export(graph, (example,), str(path), dynamo=True, dynamic_shapes={"images": {0: batch}},
                      input_names=["images"], output_names=outputs, external_data=False, verbose=False)


def _outputs_of(graph: nn.Module, images: np.ndarray) -> list[np.ndarray]:
    with torch.no_grad():
        out = graph(torch.from_numpy(images))
    return [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]


def export_detector(model: str | Path, fmt: str, out: str | Path) -> Path:
    """Export the detector saved in ``model`` as ``fmt`` (onnx | openvino) into the new folder ``out``: PatchCore's
    and ExDD's feature front-end, or the student–teacher's networks up to its anomaly grids (:func:`graph_of`).

    The exported graph is run on seeded probe images at batch 1 and 4 in its runtime and compared with PyTorch;
    an export whose outputs differ by more than :data:`FIDELITY_LIMIT` (relative, per image) is refused."""
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {fmt!r}", f"use one of {', '.join(EXPORT_FORMATS)}")
    model, out = Path(model), Path(out)
    if (model / MANIFEST).is_file():
        raise ExportError(f"{model} is already an exported folder", "export the saved detector it was made from "
                          "(its path is in export.json: source_model)")
    if out.exists():
        raise ExportError(f"{out} already exists", "export to a new folder (exports are never overwritten in place)")
    detector = load_detector(model)
    graph, size, outputs, described = graph_of(detector)
    fingerprint = model_fingerprint(model)
    with atomic_directory(out) as tmp:
        shutil.copytree(model, tmp / "model")
        onnx_path = tmp / "frontend.onnx"
        _export_onnx(graph, size, outputs, onnx_path)
        name = onnx_path.name
        if fmt == "openvino":
            ov = require("openvino")
            ov.save_model(ov.convert_model(str(onnx_path)), str(tmp / "frontend.xml"), compress_to_fp16=False)
            onnx_path.unlink()
            name = "frontend.xml"
        manifest = {
            "format": fmt, "export_format": EXPORT_FORMAT, "export_version": EXPORT_VERSION,
            "kit_version": kit_version(),
            "method": detector.name, "source_model": str(model.resolve()), "source_fingerprint": fingerprint,
            "graph": name, "graph_sha256": file_digest(tmp / name),
            "input": {"name": "images", "dtype": "uint8", "shape": ["batch", size, size, 3], "layout": "NHWC, RGB"},
            **described, "runtime_versions": runtime_versions(),
        }
        runtime = RuntimeGraph(tmp / name, fmt)
        probes = probe_images(size, 4)
        reference = _outputs_of(graph, probes)
        errors = np.concatenate([relative_errors(got, want[:n]) for n in (1, len(probes))
                                 for got, want in zip(runtime(probes[:n]), reference)])
        if not np.all(errors <= FIDELITY_LIMIT):
            raise ExportError(f"the exported {fmt} graph's outputs differ from PyTorch's by up to {errors.max():.2e} "
                              f"(relative, per image; limit {FIDELITY_LIMIT:g})",
                              f"report it with the runtime versions {runtime_versions()}; score with --runtime torch meanwhile")
        manifest["fidelity_at_export"] = {"probe_images": len(probes), "batches": [1, len(probes)],
                                          "max_relative_error": float(errors.max()), "limit": FIDELITY_LIMIT}
        atomic_write_json(tmp / MANIFEST, manifest)
    return out
