"""exdd_lab: a teaching and analysis kit for industrial surface defect detection.

Subpackages, lowest floor first; each imports only from the floors below it:

- :mod:`exdd_lab.components`, :mod:`exdd_lab.data` — shared pieces (front-end, checkpoints, registries,
  nearest neighbours) · sample records, dataset layouts, the procedural default
- :mod:`exdd_lab.features` — backbones, offline weights, patch features, the feature cache
- :mod:`exdd_lab.bank` — memory banks: coreset, search strategies, anomaly maps and image scores
- :mod:`exdd_lab.synthesis` — Perlin masks, classical blend, DDPM, latent-diffusion inpainting
- :mod:`exdd_lab.student_teacher` — the student-teacher's networks, losses and training loop
- :mod:`exdd_lab.methods` — PatchCore, ExDD (and its positive side), the student-teacher behind ``fit``/``predict``
- :mod:`exdd_lab.export` — ONNX / OpenVINO exports, made and run (registers its loader with the methods)
- :mod:`exdd_lab.evaluation` — metrics, intervals, paired tests, the evaluation run, results, failures
- :mod:`exdd_lab.archive` — scoring an archive of any size (local or Ray)
- :mod:`exdd_lab.plots` — every figure and the failure browser
- :mod:`exdd_lab.experiments` — method comparison, count sweep, learning curve
- :mod:`exdd_lab.lab` — the headless notebook harness, the main job, the run report, references
- :mod:`exdd_lab.cli` — ``exdd-lab``; beside it only the cross-cutting ``errors``, ``seeding``, ``storage``, ``numerics``
"""
import exdd_lab.export  # noqa: F401  registers the export folder format with the methods' registry
from exdd_lab.data import DefectDataset, Sample, load_dataset, validate_dataset
from exdd_lab.errors import BackboneError, DatasetError, ExddError, ImageError, WeightsNotFoundError
from exdd_lab.features import FeatureConfig, PatchFeatureExtractor, create_backbone, resolve_weights
from exdd_lab.lab.notebooks import save_notebook_metrics
from exdd_lab.seeding import seed_everything

__version__ = "0.1.0"

__all__ = [
    "BackboneError", "DatasetError", "DefectDataset", "ExddError", "FeatureConfig", "ImageError",
    "PatchFeatureExtractor", "Sample", "WeightsNotFoundError", "create_backbone", "load_dataset",
    "resolve_weights", "save_notebook_metrics", "seed_everything", "validate_dataset",
]
