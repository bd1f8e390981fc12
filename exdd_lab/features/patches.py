"""Patch features: a frozen backbone's multi-scale maps turned into one feature vector per patch.

PatchCore's recipe (Roth et al., 2022, Sec. 3.1): take intermediate layers, average each over
its 3x3 neighbourhood ("locally aware" features, so a patch knows a little of its context; border
cells average with zero padding, as the reference code does: see ``aggregate_neighbourhood``),
resize deeper (coarser) maps to the finest grid used, and concatenate along channels. An
optional seeded random projection shrinks the feature dimension (Johnson-Lindenstrauss keeps
distances roughly intact).

Shapes: images ``(N, H, W, 3) uint8`` in, patch features ``(N, h, w, C) float32`` out, where
``h = w = image_size / stride`` of the finest layer (32x32 for 256 px and layer 2 of
EfficientNet-Lite0, stride 8) and ``C`` the summed channels (40 + 112 = 152) or the projection size.

Taught in ``notebooks/01_feature_extraction.ipynb``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from exdd_lab.errors import SettingsError
from exdd_lab.components.backbones import DEFAULT_BACKBONE
from exdd_lab.components.frontend import FrozenBackbone
from exdd_lab.components.projection import gaussian_projection

#: Default layers per backbone (timm feature indices): mid-level layers, as PatchCore uses.
DEFAULT_LAYERS: dict[str, tuple[int, ...]] = {
    "tf_efficientnet_lite0": (2, 3),
    "wide_resnet50_2": (2, 3),
    "resnet18": (2, 3),
}
#: Bump when the extraction arithmetic changes, so feature caches made before are not reused.
#: 2: the neighbourhood average pads with zeros by default (the reference code's choice).
FEATURE_VERSION = 2
#: How the neighbourhood average treats the border: ``"zeros"`` (reference code, default) or ``"exclude"``.
NEIGHBOURHOOD_PADDINGS = ("zeros", "exclude")
#: Input normalisation: the statistics the backbone's weights were trained with (default), or ImageNet's
#: mean/std whatever the backbone (anomalib's pre-processing; wrong for EfficientNet-Lite's 0.5/0.5).
NORMALISATIONS = {"backbone": None, "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))}


@dataclass(frozen=True)
class FeatureConfig:
    """Everything that determines a patch feature; also the feature cache's key."""

    backbone: str = DEFAULT_BACKBONE
    weights: str = "imagenet"
    layers: tuple[int, ...] | None = None
    image_size: int = 256
    neighbourhood: int = 3
    neighbourhood_padding: str = "zeros"
    normalisation: str = "backbone"
    projection_dim: int | None = None
    projection_seed: int = 0

    def __post_init__(self) -> None:
        if self.neighbourhood_padding not in NEIGHBOURHOOD_PADDINGS:
            raise SettingsError(f"unknown neighbourhood padding {self.neighbourhood_padding!r}",
                                f"use one of {', '.join(NEIGHBOURHOOD_PADDINGS)} ('zeros' is the reference code's)")
        if self.normalisation not in NORMALISATIONS:
            raise SettingsError(f"unknown normalisation {self.normalisation!r}",
                                f"use one of {', '.join(NORMALISATIONS)} ('backbone': the weights' own statistics)")

    @property
    def resolved_layers(self) -> tuple[int, ...]:
        return tuple(self.layers) if self.layers is not None else DEFAULT_LAYERS.get(self.backbone, (2, 3))

    def key_dict(self) -> dict:
        d = asdict(self)
        d["layers"] = list(self.resolved_layers)
        d["feature_version"] = FEATURE_VERSION
        return d


def aggregate_neighbourhood(fmap: torch.Tensor, size: int = 3, padding: str = "zeros") -> torch.Tensor:
    """Average each position over its ``size x size`` neighbourhood. ``(N, C, H, W) -> (N, C, H, W)``.

    ``padding="zeros"`` (default) divides by ``size**2`` everywhere, so border cells are pulled towards
    zero: what PatchCore's reference code (patchcore-inspection's unfold with zero padding, anomalib's
    ``AvgPool2d(3, 1, 1)``) computes. ``"exclude"`` averages only the neighbours that exist; it looks
    cleaner but lost 0.06-0.11 image AUROC on held-out data sets (benchmarks/README.md, fidelity table):
    the darkened border is part of what the memory bank learns as "normal at the edge".
    """
    if padding not in NEIGHBOURHOOD_PADDINGS:
        raise ValueError(f"neighbourhood padding must be one of {NEIGHBOURHOOD_PADDINGS}, not {padding!r}")
    if size <= 1:
        return fmap
    return F.avg_pool2d(fmap, size, stride=1, padding=size // 2, count_include_pad=padding == "zeros")


def combine_layers(maps: Sequence[torch.Tensor], neighbourhood: int = 3, padding: str = "zeros") -> torch.Tensor:
    """Aggregate, resize to the finest grid and concatenate. ``[(N, C_l, H_l, W_l)] -> (N, H, W, sum C_l)``."""
    target = max(m.shape[-2] for m in maps), max(m.shape[-1] for m in maps)
    parts = []
    for m in maps:
        m = aggregate_neighbourhood(m, neighbourhood, padding)
        if tuple(m.shape[-2:]) != target:
            m = F.interpolate(m, size=target, mode="bilinear", align_corners=False)
        parts.append(m)
    return torch.cat(parts, dim=1).permute(0, 2, 3, 1).contiguous()


class PatchFeatureExtractor(FrozenBackbone):
    """A frozen backbone plus PatchCore aggregation: ``images -> (N, h, w, C)`` patch features.

    ``extractor.weights_source`` says plainly which weights are in use. Features of image files, with
    the on-disk cache, come from :func:`exdd_lab.features.cache.extract_features`.
    """

    def __init__(self, config: FeatureConfig | None = None, device: str | torch.device = "cpu") -> None:
        config = config or FeatureConfig()
        super().__init__(config.backbone, config.weights, config.resolved_layers, NORMALISATIONS[config.normalisation])
        self.config = config
        proj = None
        if config.projection_dim:
            proj = gaussian_projection(sum(self.channels), config.projection_dim, config.projection_seed)
        self.register_buffer("projection", proj)
        self.device = torch.device(device)
        self.to(self.device)

    @property
    def feature_dim(self) -> int:
        return self.config.projection_dim or sum(self.channels)

    @property
    def grid_size(self) -> int:
        return int(np.ceil(self.config.image_size / min(self.strides)))

    @property
    def layer_channels(self) -> list[int]:
        return self.channels

    def metadata(self) -> dict:
        """What a memory bank of these features records, so a bank is never searched with other features."""
        cfg = self.config
        return {"backbone": cfg.backbone, "layers": list(cfg.resolved_layers), "image_size": cfg.image_size,
                "projection_dim": cfg.projection_dim, "weights": self.weights_source.kind}

    @torch.no_grad()
    def forward(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Patch features ``(N, h, w, C)`` for a batch of images at ``image_size``."""
        maps = self.layer_maps(images)
        feats = combine_layers(maps, self.config.neighbourhood, self.config.neighbourhood_padding)
        if self.projection is not None:
            feats = feats @ self.projection
        return feats.cpu()
