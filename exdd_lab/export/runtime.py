"""Running an exported detector: its folder's manifest, the checks that it is unchanged, and its graph in ONNX
Runtime or OpenVINO (:class:`RuntimeGraph`) in the place of the PyTorch networks: the feature extractor of PatchCore
and ExDD (:class:`RuntimeFrontEnd`), the student–teacher's networks (:class:`RuntimeGrids`).

Making an export is :mod:`exdd_lab.export.writer`; ``load_detector(folder, runtime=...)``
(:mod:`exdd_lab.methods.registry`) loads an export folder through :mod:`exdd_lab.export.loader`, which uses this module.
"""
from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import torch

from exdd_lab.components.backbones import WeightsSource
from exdd_lab.errors import ExportError
from exdd_lab.features.patches import FeatureConfig
from exdd_lab.storage import file_digest

EXPORT_FORMATS = ("onnx", "openvino")
RUNTIMES = ("torch", *EXPORT_FORMATS)  # an export runs in either runtime; torch runs its copied model
#: What ``fit`` and ``score --runtime`` take: ``auto`` picks the fastest installed (exdd_lab.export.accelerate).
RUNTIME_CHOICES = ("auto", *RUNTIMES)
MANIFEST = "export.json"
EXPORT_FORMAT = "exdd_lab-export"
EXPORT_VERSION = 1
EXTRA_HINT = "install the export extra: pip install -e '.[export]' (onnx, onnxscript, onnxruntime, openvino)"


def runtime_versions() -> dict[str, str | None]:
    """Versions of the packages an export depends on (``None``: not installed)."""
    out = {}
    for name in ("torch", "onnx", "onnxscript", "onnxruntime", "openvino"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def require(module: str):
    """Import an optional runtime package, or say which extra installs it."""
    try:
        return __import__(module)
    except ImportError as exc:
        raise ExportError(f"{module} is not installed ({exc})", EXTRA_HINT) from exc


def _as_uint8_batch(images: np.ndarray | torch.Tensor) -> np.ndarray:
    x = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    return np.ascontiguousarray(x[None] if x.ndim == 3 else x, dtype=np.uint8)


class RuntimeGraph:
    """An exported graph in ONNX Runtime or OpenVINO (f32): ``uint8`` images ``(N, S, S, 3)`` in, its outputs
    (``float32`` arrays, in the graph's output order) out."""

    def __init__(self, graph: Path, runtime: str, threads: int | None = None) -> None:
        self.path, self.runtime = Path(graph), runtime
        if runtime == "onnx":
            ort = require("onnxruntime")
            options = ort.SessionOptions()
            if threads:
                options.intra_op_num_threads = int(threads)
            session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
            self._run = lambda x: session.run(None, {"images": x})
        elif runtime == "openvino":
            ov = require("openvino")
            config = {"INFERENCE_PRECISION_HINT": "f32"}  # no bf16/f16 on CPUs that have it: the scores must match
            if threads:
                config["INFERENCE_NUM_THREADS"] = int(threads)
            compiled = ov.Core().compile_model(str(graph), "CPU", config)
            self._run = lambda x: list(compiled(x).values())
        else:
            raise ExportError(f"an exported graph runs in onnx or openvino, not {runtime!r}", "use --runtime onnx or openvino")

    def __call__(self, images: np.ndarray | torch.Tensor) -> list[np.ndarray]:
        return [np.array(out, dtype=np.float32, copy=True) for out in self._run(_as_uint8_batch(images))]


class RuntimeFrontEnd:
    """An exported feature front-end (PatchCore, ExDD) in ONNX Runtime or OpenVINO, in the place of a detector's
    ``extractor``.

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
        self.graph = RuntimeGraph(graph, runtime, threads)

    def metadata(self) -> dict:
        return dict(self._metadata)

    def __call__(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Patch features ``(N, h, w, C)`` of ``uint8`` images ``(N, S, S, 3)``."""
        return torch.from_numpy(self.graph(images)[0])


class RuntimeGrids:
    """An exported student–teacher (teacher, student, head) in ONNX Runtime or OpenVINO: ``uint8`` images in,
    :class:`~exdd_lab.student_teacher.inference.StudentTeacherGrids` out (the per-scale grids are not exported)."""

    def __init__(self, folder: Path, manifest: dict, runtime: str, threads: int | None = None) -> None:
        self.runtime = runtime
        self.graph = RuntimeGraph(folder / manifest["graph"], runtime, threads)
        self.description = (f"{manifest['weights_source']} — exported {manifest['format']} graph run by {runtime} "
                            f"({manifest['graph']})")

    def __call__(self, images: np.ndarray | torch.Tensor):
        from exdd_lab.student_teacher.inference import StudentTeacherGrids

        head, discrepancy = self.graph(images)
        return StudentTeacherGrids(head, discrepancy, [])


def runtime_networks(folder: Path, manifest: dict, runtime: str, threads: int | None = None) -> dict:
    """The keyword a detector's ``load`` takes for an exported graph, with the graph loaded in ``runtime``:
    ``extractor`` (PatchCore, ExDD) or ``grids`` (the student–teacher)."""
    kind = manifest.get("graph_kind", "features")
    if kind == "features":
        return {"extractor": RuntimeFrontEnd(folder, manifest, runtime, threads)}
    if kind == "student-teacher-grids":
        return {"grids": RuntimeGrids(folder, manifest, runtime, threads)}
    raise ExportError(f"{folder} holds a graph of kind {kind!r}, which this version cannot run",
                      f"export the source model again: exdd-lab export --model {manifest['source_model']} --format "
                      f"{manifest['format']} --out NEW_DIR")


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
