"""Exports: a fitted detector outside PyTorch (ONNX / OpenVINO), and running one.

- :mod:`~exdd_lab.export.writer`: ``exdd-lab export`` — trace the front-end (or the student–teacher's networks)
  into one graph, copy the saved detector beside it, measure fidelity, write the manifest;
- :mod:`~exdd_lab.export.runtime`: the manifest, the "unchanged" checks, and the graph in ONNX Runtime or OpenVINO;
- :mod:`~exdd_lab.export.loader`: an export folder as a detector, registered here as the methods' ``export``
  folder format, so ``load_detector`` reads exports while the methods never import this package.

Never fits or evaluates a detector: it copies and runs what :mod:`exdd_lab.methods` saved.
Taught in ``notebooks/08_scoring_an_archive.ipynb``.
"""
from exdd_lab.export.loader import load_exported
from exdd_lab.export.runtime import EXPORT_FORMATS, MANIFEST, RUNTIMES
from exdd_lab.export.writer import export_detector
from exdd_lab.methods.registry import FOLDER_FORMATS, FolderFormat

if "export" not in FOLDER_FORMATS:
    FOLDER_FORMATS.register("export")(FolderFormat(MANIFEST, load_exported, RUNTIMES))

__all__ = ["EXPORT_FORMATS", "MANIFEST", "RUNTIMES", "export_detector", "load_exported"]
