"""The frozen front-end on the fastest runtime installed, without the analyst knowing about exports (``--runtime auto``).

``exdd-lab fit`` and ``exdd-lab score`` run PatchCore's and ExDD's feature front-end (backbone, layer taps,
neighbourhood average, projection) in OpenVINO where it is installed, else ONNX Runtime, else PyTorch
(:data:`PREFERENCE`). The graph is traced once per front-end — backbone, weights fingerprint, layers, input size,
neighbourhood, projection, the runtime and its version, torch's version — into the kit's cache
(``<cache>/frontends/<hash>/``, built under a temporary name and renamed in one step), its fidelity checked when it
is built (features within :data:`~exdd_lab.export.writer.FIDELITY_LIMIT` relative of PyTorch's on seeded probe
images at batch 1 and 4, as ``exdd-lab export`` checks; a graph that misses is refused and the next runtime tried)
and reused by every later run. Its ``weights_source`` names the runtime and the graph, so the feature cache keeps its
features apart from PyTorch's. The student–teacher stays in PyTorch here (its graph holds trained weights: export
the model for it). ``evaluate``, ``compare`` and the notebooks keep PyTorch, so their references hold.
"""
from __future__ import annotations

import importlib.util
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from exdd_lab.errors import ExportError
from exdd_lab.export.runtime import MANIFEST, RUNTIME_CHOICES, RuntimeFrontEnd, read_manifest, runtime_versions
from exdd_lab.export.writer import (FIDELITY_LIMIT, FrontEndGraph, _export_onnx, frontend_description, probe_images,
                                    relative_errors)
from exdd_lab.features.patches import PatchFeatureExtractor
from exdd_lab.methods.base import Detector
from exdd_lab.methods.registry import load_detector
from exdd_lab.storage import atomic_directory, atomic_write_json, cache_root, stable_hash

#: ``--runtime auto``: the first of these that is installed and passes the fidelity check runs the front-end.
PREFERENCE = ("openvino", "onnx", "torch")
#: What each runtime needs installed (tracing to ONNX needs onnx and onnxscript for both).
NEEDS = {"onnx": ("onnx", "onnxscript", "onnxruntime"), "openvino": ("onnx", "onnxscript", "openvino")}
GRAPH_FILE = {"onnx": "frontend.onnx", "openvino": "frontend.xml"}


def installed(runtime: str) -> bool:
    """Whether ``runtime`` can run a traced front-end here (``torch`` always can)."""
    return all(importlib.util.find_spec(module) is not None for module in NEEDS.get(runtime, ()))


def frontend_identity(extractor: PatchFeatureExtractor, runtime: str) -> dict:
    """Everything a traced front-end depends on: its cache key."""
    versions = runtime_versions()
    return {"features": extractor.config.key_dict(), "weights": extractor.weights_source.identity, "runtime": runtime,
            "runtime_version": versions.get("openvino" if runtime == "openvino" else "onnxruntime"),
            "torch": versions["torch"]}


def _build(extractor: PatchFeatureExtractor, runtime: str, folder: Path) -> None:
    """Trace, convert and check one front-end into ``folder`` (atomically); raise ExportError if it misses fidelity."""
    from exdd_lab.export.runtime import RuntimeGraph, require

    graph = FrontEndGraph(extractor).eval()
    size = extractor.config.image_size
    with atomic_directory(folder) as tmp:
        onnx_path = tmp / GRAPH_FILE["onnx"]
        _export_onnx(graph, size, ["features"], onnx_path)
        if runtime == "openvino":
            ov = require("openvino")
            ov.save_model(ov.convert_model(str(onnx_path)), str(tmp / GRAPH_FILE["openvino"]), compress_to_fp16=False)
            onnx_path.unlink()
        probes = probe_images(size, 4)
        with torch.no_grad():
            reference = graph(torch.from_numpy(probes)).numpy()
        run = RuntimeGraph(tmp / GRAPH_FILE[runtime], runtime)
        errors = np.concatenate([relative_errors(run(probes[:n])[0], reference[:n]) for n in (1, len(probes))])
        if not np.all(errors <= FIDELITY_LIMIT):
            raise ExportError(f"the {runtime} front-end's features differ from PyTorch's by up to {errors.max():.2e} "
                              f"(limit {FIDELITY_LIMIT:g})", "it is not used; --runtime torch runs PyTorch")
        manifest = {"format": runtime, "graph": GRAPH_FILE[runtime], **frontend_description(extractor)}
        manifest["identity"] = frontend_identity(extractor, runtime)
        manifest["fidelity_at_build"] = {"max_relative_error": float(errors.max()), "limit": FIDELITY_LIMIT}
        atomic_write_json(tmp / MANIFEST, manifest)


def frontend_folder(extractor: PatchFeatureExtractor, runtime: str, root: Path | None = None) -> Path:
    """Where the traced front-end of ``extractor`` for ``runtime`` is cached."""
    return Path(root or cache_root() / "frontends") / stable_hash(frontend_identity(extractor, runtime))


def traced_frontend(extractor: PatchFeatureExtractor, runtime: str, threads: int | None = None,
                    root: Path | None = None) -> RuntimeFrontEnd:
    """``extractor``'s front-end in ``runtime`` (onnx | openvino), from the cache or traced and checked now."""
    folder = frontend_folder(extractor, runtime, root)
    if not (folder / MANIFEST).is_file():
        _build(extractor, runtime, folder)  # a process that loses the race to build it uses the winner's
    return RuntimeFrontEnd(folder, json.loads((folder / MANIFEST).read_text()), runtime, threads)


@dataclass
class Acceleration:
    """Which runtime runs the front-end, and why (printed by fit and score, written to their records)."""

    runtime: str
    note: str


def fastest_frontend(extractor: PatchFeatureExtractor, runtime: str = "auto", threads: int | None = None,
                     root: Path | None = None) -> tuple[PatchFeatureExtractor | RuntimeFrontEnd, Acceleration]:
    """The front-end to use for ``runtime`` (auto: the first of :data:`PREFERENCE` installed and faithful)."""
    if runtime not in RUNTIME_CHOICES:
        raise ExportError(f"unknown runtime {runtime!r}", f"use one of {', '.join(RUNTIME_CHOICES)}")
    if runtime == "torch":
        return extractor, Acceleration("torch", "PyTorch (as asked)")
    wanted = [r for r in PREFERENCE if r != "torch"] if runtime == "auto" else [runtime]
    skipped = []
    for name in wanted:
        if not installed(name):
            skipped.append(f"{name} is not installed")
            continue
        try:
            frontend = traced_frontend(extractor, name, threads, root)
        except ExportError as exc:
            skipped.append(f"{name} refused: {exc}")
            continue
        return frontend, Acceleration(name, f"{name} (front-end graph cached in {frontend.graph.path.parent})")
    if runtime != "auto":
        raise ExportError(f"--runtime {runtime}: " + "; ".join(skipped), "install the export extra "
                          "(pip install -e '.[export]') or use --runtime auto / torch")
    return extractor, Acceleration("torch", "PyTorch, because " + "; ".join(skipped) +
                                   " (pip install -e '.[export]' for a faster front-end)")


def accelerate(detector: Detector, runtime: str = "auto", threads: int | None = None,
               root: Path | None = None) -> Acceleration:
    """Run ``detector``'s front-end on the fastest runtime (in place); the student–teacher stays in PyTorch."""
    extractor = getattr(detector, "extractor", None)
    if not isinstance(extractor, PatchFeatureExtractor):
        if runtime in ("auto", "torch"):
            return Acceleration("torch", f"PyTorch ({detector.name} has no shared front-end to trace; "
                                         "exdd-lab export makes a graph of its networks)")
        raise ExportError(f"--runtime {runtime} on a saved {detector.name} detector needs an export",
                          f"exdd-lab export --model MODEL --format {runtime} --out DIR, then score DIR")
    frontend, acceleration = fastest_frontend(extractor, runtime, threads, root)
    detector.extractor = frontend
    return acceleration


def load_for_scoring(model: str | Path, runtime: str = "auto", threads: int | None = None,
                     root: Path | None = None) -> tuple[Detector, Acceleration]:
    """A saved detector or export folder, its front-end on ``runtime``: an export folder runs its own graph under
    ``auto`` (and keeps today's meaning of torch / onnx / openvino); a saved detector is accelerated here."""
    model = Path(model)
    if (model / MANIFEST).is_file():
        chosen = read_manifest(model)["format"] if runtime == "auto" else runtime
        return load_detector(model, chosen, threads), Acceleration(chosen, f"{chosen} (the export's own graph)")
    detector = load_detector(model)
    return detector, accelerate(detector, runtime, threads, root)


def clear_frontends(root: Path | None = None) -> None:
    """Delete every cached front-end graph (they are rebuilt when next needed)."""
    shutil.rmtree(Path(root or cache_root() / "frontends"), ignore_errors=True)
