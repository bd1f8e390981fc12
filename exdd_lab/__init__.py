"""exdd_lab: a teaching and analysis kit for industrial surface defect detection.

Modules (data flows top to bottom):

- :mod:`exdd_lab.data` — sample records, dataset layouts, the procedural default
- :mod:`exdd_lab.features` — backbones, offline weights, patch features, the feature cache
- :mod:`exdd_lab.neighbours` — exact nearest-neighbour search (faiss)
- :mod:`exdd_lab.synthesis` — Perlin masks, classical blend, DDPM, latent-diffusion inpainting
- :mod:`exdd_lab.methods` — PatchCore, ExDD and the student-teacher behind ``fit``/``predict``
- :mod:`exdd_lab.student_teacher` — the student-teacher's networks, losses and training loop
- :mod:`exdd_lab.plots` — figures for the notebooks
- :mod:`exdd_lab.notebooks`, :mod:`exdd_lab.runner` — the headless harness and the main job
"""
from exdd_lab.data import DefectDataset, Sample, load_dataset, validate_dataset
from exdd_lab.errors import BackboneError, DatasetError, ExddError, ImageError, WeightsNotFoundError
from exdd_lab.features import FeatureConfig, PatchFeatureExtractor, create_backbone, resolve_weights
from exdd_lab.notebooks import save_notebook_metrics
from exdd_lab.seeding import seed_everything

__version__ = "0.1.0"

__all__ = [
    "BackboneError", "DatasetError", "DefectDataset", "ExddError", "FeatureConfig", "ImageError",
    "PatchFeatureExtractor", "Sample", "WeightsNotFoundError", "create_backbone", "load_dataset",
    "resolve_weights", "save_notebook_metrics", "seed_everything", "validate_dataset",
]
