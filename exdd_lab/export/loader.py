"""Loading an export folder as a detector: the copied model with the exported graph in the place of its networks.

Registered with the methods' registry as the ``export`` folder format (see :mod:`exdd_lab.export`), so
``load_detector(folder, runtime=...)`` reads export folders without the registry importing this package.
"""
from __future__ import annotations

from pathlib import Path

from exdd_lab.errors import ExportError
from exdd_lab.export.runtime import RUNTIMES, check_unchanged, read_manifest, runtime_networks
from exdd_lab.methods.base import Detector
from exdd_lab.methods.registry import METHODS


def load_exported(folder: Path, runtime: str = "onnx", threads: int | None = None) -> Detector:
    """The detector of an export folder, its front-end run by ``runtime`` (torch: the copied model in PyTorch)."""
    if runtime not in RUNTIMES:
        raise ExportError(f"unknown runtime {runtime!r}", f"use one of {', '.join(RUNTIMES)}")
    folder = Path(folder)
    manifest = read_manifest(folder)
    check_unchanged(folder, manifest)
    entry = METHODS[manifest["method"]]
    if runtime == "torch":
        return entry.load(folder / "model")
    if runtime == "onnx" and manifest["format"] != "onnx":
        raise ExportError(f"{folder} holds an OpenVINO graph, which ONNX Runtime cannot run",
                          "score with --runtime openvino, or export as ONNX (it runs in both)")
    return entry.load(folder / "model", **runtime_networks(folder, manifest, runtime, threads))
