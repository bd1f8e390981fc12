"""The frozen-backbone front-end: a pretrained timm network that only ever reads images.

PatchCore and ExDD take their patch features from it (:class:`~exdd_lab.features.PatchFeatureExtractor`)
and the student-teacher uses it as the teacher (:class:`~exdd_lab.student_teacher.Teacher`). It builds the
backbone from offline weights (``weights_source`` says which), freezes every parameter, stays in eval mode
even inside ``train()`` (so batch-norm statistics cannot drift) and normalises ``uint8`` images with the
statistics the weights were trained with (or others that are asked for).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from exdd_lab.errors import ImageError
from exdd_lab.components.backbones import create_backbone

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FrozenBackbone(nn.Module):
    """``layer_maps(images (N, H, W, 3) uint8)`` -> ``[(N, C_l, H/s_l, W/s_l)]``: ``preprocess`` then ``maps``; never trained.

    ``normalisation``: ``(mean, std)`` to use instead of the backbone's own (e.g. ImageNet's for anomalib's
    pre-processing); ``None`` keeps the weights' statistics (timm's ``pretrained_cfg``).
    """

    def __init__(self, backbone: str, weights: str, layers: Sequence[int],
                 normalisation: tuple[Sequence[float], Sequence[float]] | None = None) -> None:
        super().__init__()
        self.backbone, self.weights_source = create_backbone(backbone, weights, out_indices=tuple(layers))
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        cfg = self.backbone.pretrained_cfg
        mean, std = normalisation or (cfg.get("mean", IMAGENET_MEAN), cfg.get("std", IMAGENET_STD))
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))
        self.eval()

    @property
    def channels(self) -> list[int]:
        """Channels of each chosen layer."""
        return list(self.backbone.feature_info.channels())

    @property
    def strides(self) -> list[int]:
        """Downsampling factor of each chosen layer (8 and 16 for EfficientNet-Lite0's layers 2 and 3)."""
        return list(self.backbone.feature_info.reduction())

    def train(self, mode: bool = True) -> FrozenBackbone:
        """Always eval: the front-end is frozen."""
        return super().train(False)

    def preprocess(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``(N, H, W, 3)`` (or one ``(H, W, 3)``) ``uint8`` -> normalised ``(N, 3, H, W)`` float on this device."""
        x = images if isinstance(images, torch.Tensor) else torch.as_tensor(np.asarray(images))
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ImageError(f"expected images of shape (N, H, W, 3), got {tuple(x.shape)}",
                             "pass RGB uint8 images stacked along a first axis")
        x = x.to(self.mean.device).permute(0, 3, 1, 2).float() / 255.0
        return (x - self.mean) / self.std

    @torch.no_grad()
    def maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The chosen layers' maps of normalised images ``(N, 3, H, W)``."""
        return list(self.backbone(x))

    def layer_maps(self, images: np.ndarray | torch.Tensor) -> list[torch.Tensor]:
        """The chosen layers' raw maps of ``uint8`` images ``(N, H, W, 3)`` (for visualising)."""
        return self.maps(self.preprocess(images))
