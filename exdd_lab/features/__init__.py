"""Features: backbones, offline weight resolution, patch features and their cache.

Never knows about memory banks, labels or scores: images in, patch feature grids out.

Taught in ``notebooks/01_feature_extraction.ipynb``.
"""
from exdd_lab.components.backbones import (
    DEFAULT_BACKBONE,
    WeightsSource,
    check_backbone_name,
    create_backbone,
    resolve_weights,
    weights_dir,
)
from exdd_lab.features.cache import FeatureCache, extract_features, extract_with_cache
from exdd_lab.features.patches import (
    DEFAULT_LAYERS,
    FeatureConfig,
    PatchFeatureExtractor,
    aggregate_neighbourhood,
    combine_layers,
)

__all__ = [
    "DEFAULT_BACKBONE", "DEFAULT_LAYERS", "FeatureCache", "FeatureConfig", "PatchFeatureExtractor", "WeightsSource",
    "aggregate_neighbourhood", "check_backbone_name", "combine_layers", "create_backbone", "extract_features", "extract_with_cache",
    "resolve_weights", "weights_dir",
]
