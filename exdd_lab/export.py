"""A fitted detector's front-end outside PyTorch: one ONNX or OpenVINO graph, the banks beside it.

Everything before the bank search — ``uint8`` images in, normalisation, the backbone's layer taps, the 3x3
neighbourhood average, resizing to the finest grid, concatenation (and a projection, if any) — is traced into
one graph with a dynamic batch size (:class:`FrontEndGraph`, the same arithmetic as
:class:`~exdd_lab.features.PatchFeatureExtractor`). The bank search stays in faiss, as in PyTorch. An export
folder holds::

    export.json        the manifest: kit version, the source model's path and fingerprint, runtime versions,
                       the graph's input and output, and the fidelity measured at export
    frontend.onnx      (--format onnx) or frontend.xml + frontend.bin (--format openvino)
    model/             the saved detector, copied unchanged (banks in safetensors, settings in JSON)

``load_detector(folder, runtime="onnx")`` (:mod:`exdd_lab.methods.registry`) loads such a folder with the graph
as the detector's front-end (:class:`RuntimeFrontEnd`); ``runtime="torch"`` scores the copied model in PyTorch.
ONNX Runtime and OpenVINO are the ``export`` extra (``pip install -e '.[export]'``).
"""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import torch
from torch import nn

from exdd_lab.components.backbones import WeightsSource
from exdd_lab.errors import ExddError
from exdd_lab.features.patches import FeatureConfig, PatchFeatureExtractor, combine_layers
from exdd_lab.storage import atomic_directory, atomic_write_json, file_digest

EXPORT_FORMATS = ("onnx", "openvino")
RUNTIMES = ("torch", "onnx", "openvino")
MANIFEST = "export.json"
EXPORT_FORMAT = "exdd_lab-export"
EXPORT_VERSION = 1
#: Largest relative difference ``||exported - torch|| / ||torch||`` of one image's patch features accepted at export.
FIDELITY_LIMIT = 1e-4
EXPORTABLE = ("patchcore", "exdd")
EXTRA_HINT = "install the export extra: pip install -e '.[export]' (onnx, onnxscript, onnxruntime, openvino)"


class ExportError(ExddError):
    """An export that cannot be made or loaded: a missing runtime, an old or changed folder."""


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


def runtime_versions() -> dict[str, str | None]:
    """Versions of the packages an export depends on (``None``: not installed)."""
    out = {}
    for name in ("torch", "onnx", "onnxscript", "onnxruntime", "openvino"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _require(module: str):
    try:
        return __import__(module)
    except ImportError as exc:
        raise ExportError(f"{module} is not installed ({exc})", EXTRA_HINT) from exc


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


class RuntimeFrontEnd:
    """An exported front-end graph in ONNX Runtime or OpenVINO, in the place of a detector's ``extractor``.

    It answers what the detectors ask of an extractor (``config``, ``grid_size``, ``feature_dim``, ``metadata()``,
    ``weights_source``, ``extractor(images)``); its ``weights_source`` names the graph, so the feature cache never
    mixes its features with PyTorch's."""

    def __init__(self, folder: Path, manifest: dict, runtime: str, threads: int | None = None) -> None:
        self.runtime = runtime
        self.config = FeatureConfig(**{**manifest["features"], "layers": tuple(manifest["features"]["layers"])})
        self.grid_size = int(manifest["output"]["grid"])
        self.feature_dim = int(manifest["output"]["dim"])
        self.layer_channels = list(manifest["output"]["layer_channels"])
        self._metadata = dict(manifest["feature_metadata"])
        graph = folder / manifest["graph"]
        self.weights_source = WeightsSource(f"exported-{runtime}", str(graph),
                                            f"{manifest['weights_source']} — exported {manifest['format']} graph run "
                                            f"by {runtime} ({graph.name})")
        self.device = torch.device("cpu")
        if runtime == "onnx":
            ort = _require("onnxruntime")
            options = ort.SessionOptions()
            if threads:
                options.intra_op_num_threads = int(threads)
            self._session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
            self._run = lambda x: self._session.run(None, {"images": x})[0]
        else:
            ov = _require("openvino")
            core = ov.Core()
            config = {"INFERENCE_PRECISION_HINT": "f32"}  # no bf16/f16 on CPUs that have it: the scores must match
            if threads:
                config["INFERENCE_NUM_THREADS"] = int(threads)
            compiled = core.compile_model(str(graph), "CPU", config)
            self._run = lambda x: compiled(x)[0]

    def metadata(self) -> dict:
        return dict(self._metadata)

    def __call__(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Patch features ``(N, h, w, C)`` of ``uint8`` images ``(N, S, S, 3)``."""
        x = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
        x = np.ascontiguousarray(x[None] if x.ndim == 3 else x, dtype=np.uint8)
        return torch.from_numpy(np.array(self._run(x), dtype=np.float32, copy=True))


def _export_onnx(graph: FrontEndGraph, size: int, path: Path) -> None:
    _require("onnx")
    _require("onnxscript")
    example = torch.from_numpy(probe_images(size, 2))
    batch = torch.export.Dim("batch", min=1, max=4096)
    torch.onnx.export(graph, (example,), str(path), dynamo=True, dynamic_shapes={"images": {0: batch}},
                      input_names=["images"], output_names=["features"], external_data=False, verbose=False)


def export_detector(model: str | Path, fmt: str, out: str | Path) -> Path:
    """Export the front-end of the detector saved in ``model`` as ``fmt`` (onnx | openvino) into the new folder ``out``.

    The exported graph is run on seeded probe images at batch 1 and 4 in its runtime and compared with PyTorch;
    an export whose features differ by more than :data:`FIDELITY_LIMIT` (relative, per image) is refused."""
    from exdd_lab.methods.persistence import _package_version, model_fingerprint
    from exdd_lab.methods.registry import load_detector

    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {fmt!r}", f"use one of {', '.join(EXPORT_FORMATS)}")
    model, out = Path(model), Path(out)
    if (model / MANIFEST).is_file():
        raise ExportError(f"{model} is already an exported folder", "export the saved detector it was made from "
                          "(its path is in export.json: source_model)")
    if out.exists():
        raise ExportError(f"{out} already exists", "export to a new folder (exports are never overwritten in place)")
    detector = load_detector(model)
    if detector.name not in EXPORTABLE:
        raise ExportError(f"{model} holds a {detector.name} detector; export covers {', '.join(EXPORTABLE)}",
                          "its student network is trained per model: score it with --runtime torch")
    extractor: PatchFeatureExtractor = detector.extractor
    graph = FrontEndGraph(extractor).eval()
    size = extractor.config.image_size
    fingerprint = model_fingerprint(model)
    with atomic_directory(out) as tmp:
        shutil.copytree(model, tmp / "model")
        onnx_path = tmp / "frontend.onnx"
        _export_onnx(graph, size, onnx_path)
        name = onnx_path.name
        if fmt == "openvino":
            ov = _require("openvino")
            ov.save_model(ov.convert_model(str(onnx_path)), str(tmp / "frontend.xml"), compress_to_fp16=False)
            onnx_path.unlink()
            name = "frontend.xml"
        manifest = {
            "format": fmt, "export_format": EXPORT_FORMAT, "export_version": EXPORT_VERSION,
            "kit_version": _package_version(),
            "method": detector.name, "source_model": str(model.resolve()), "source_fingerprint": fingerprint,
            "graph": name, "graph_sha256": file_digest(tmp / name),
            "input": {"name": "images", "dtype": "uint8", "shape": ["batch", size, size, 3], "layout": "NHWC, RGB"},
            "output": {"name": "features", "dtype": "float32", "grid": extractor.grid_size, "dim": extractor.feature_dim,
                       "layer_channels": list(extractor.layer_channels)},
            "features": {**asdict(extractor.config), "layers": list(extractor.config.resolved_layers)},
            "feature_metadata": extractor.metadata(), "weights_source": extractor.weights_source.description,
            "runtime_versions": runtime_versions(),
        }
        runtime = RuntimeFrontEnd(tmp, manifest, fmt)
        probes = probe_images(size, 4)
        with torch.no_grad():
            reference = extractor(probes).numpy()
        errors = np.concatenate([relative_errors(runtime(probes[:1]).numpy(), reference[:1]),
                                 relative_errors(runtime(probes).numpy(), reference)])
        if not np.all(errors <= FIDELITY_LIMIT):
            raise ExportError(f"the exported {fmt} graph's features differ from PyTorch's by up to {errors.max():.2e} "
                              f"(relative, per image; limit {FIDELITY_LIMIT:g})",
                              f"report it with the runtime versions {runtime_versions()}; score with --runtime torch meanwhile")
        manifest["fidelity_at_export"] = {"probe_images": len(probes), "batches": [1, len(probes)],
                                          "max_relative_error": float(errors.max()), "limit": FIDELITY_LIMIT}
        atomic_write_json(tmp / MANIFEST, manifest)
    return out


def read_manifest(folder: Path) -> dict:
    """The manifest of an export folder; refuses another export format version."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ExportError(f"cannot read {folder / MANIFEST} ({exc})", "export the detector again into a new folder") from exc
    if manifest.get("export_format") != EXPORT_FORMAT or manifest.get("export_version") != EXPORT_VERSION:
        raise ExportError(f"{folder} was exported in format version {manifest.get('export_version')!r}; this version "
                          f"reads {EXPORT_VERSION}", f"export the source model again: exdd-lab export --model "
                          f"{manifest.get('source_model', 'MODEL')} --format {manifest.get('format', 'onnx')} --out NEW_DIR")
    return manifest


def check_unchanged(folder: Path, manifest: dict) -> None:
    """Refuse an export whose copied model or graph changed, or whose source model was changed since it was made."""
    from exdd_lab.methods.persistence import model_fingerprint

    again = (f"export it again: exdd-lab export --model {manifest['source_model']} --format {manifest['format']} "
             f"--out NEW_DIR")
    if model_fingerprint(folder / "model") != manifest["source_fingerprint"]:
        raise ExportError(f"the detector copied into {folder / 'model'} is not the one that was exported "
                          "(its files changed)", again)
    graph = folder / manifest["graph"]
    if not graph.is_file() or file_digest(graph) != manifest["graph_sha256"]:
        raise ExportError(f"the exported graph {graph} is missing or changed since export", again)
    source = Path(manifest["source_model"])
    if source.is_dir() and model_fingerprint(source) != manifest["source_fingerprint"]:
        raise ExportError(f"the source model {source} changed since {folder} was exported (fitted or saved again), "
                          "so the export would score differently from it", again)


def load_exported(folder: str | Path, runtime: str = "onnx", threads: int | None = None):
    """The detector of an export folder, its front-end run by ``runtime`` (torch: the copied model in PyTorch)."""
    from exdd_lab.methods.registry import METHODS

    folder = Path(folder)
    if runtime not in RUNTIMES:
        raise ExportError(f"unknown runtime {runtime!r}", f"use one of {', '.join(RUNTIMES)}")
    manifest = read_manifest(folder)
    check_unchanged(folder, manifest)
    entry = METHODS[manifest["method"]]
    if runtime == "torch":
        return entry.load(folder / "model")
    if runtime == "onnx" and manifest["format"] != "onnx":
        raise ExportError(f"{folder} holds an OpenVINO graph, which ONNX Runtime cannot run",
                          f"score with --runtime openvino, or export as ONNX (it runs in both)")
    return entry.load(folder / "model", extractor=RuntimeFrontEnd(folder, manifest, runtime, threads))
