"""The three networks of the asymmetric student-teacher: a frozen teacher, a trainable student, a segmentation head.

- :class:`Teacher`: the pretrained backbone (EfficientNet-Lite0 by default), frozen, giving feature
  maps at two scales: timm feature indices 3, 4 (strides 16 and 32, 112 and 320 channels) for the default
  reverse student; 2, 3 (strides 8 and 16, PatchCore's layers) for the image student and ``reverse-fine``.
  Stride 4 (index 1) can be added; on MTD its discrepancy alone scored below chance (pixel AUROC 0.47:
  fine texture is unpredictable).
- :class:`ReverseStudent` (the default): reverse distillation: a one-class bottleneck squeezes the teacher's maps
  and a decoder rebuilds them (the student never sees the image; a training step runs on cached maps). What
  the bottleneck cannot carry, a defect's unusual features, comes back as normal features.
- :class:`Student`: a *different*, lighter network, randomly initialised (a plain convolutional encoder
  tapped at the teacher's strides, or an encoder-decoder without skip connections). It sees the image
  with a synthetic defect and must reproduce the teacher's features of the *clean* image: it learns
  normal patterns only, so its disagreement with the teacher grows on defects.
- :class:`SegmentationHead`: a few convolutions on the teacher-student agreement at every scale
  (the per-channel products of the L2-normalised features, DeSTSeg's input, plus the per-scale
  cosine discrepancy) that predicts the defect mask, supervised by the exact synthetic masks.

Shapes: images ``(N, 3, H, W)`` normalised floats; feature lists ``[(N, C_l, H/s_l, W/s_l)]``;
discrepancy ``(N, L, H/s_0, W/s_0)`` at the finest scale; head logits ``(N, 1, H/s_0, W/s_0)``.
Taught in ``notebooks/05_student_teacher.ipynb``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from exdd_lab.errors import ExddError
from exdd_lab.components.backbones import DEFAULT_BACKBONE
from exdd_lab.components.frontend import FrozenBackbone

#: Teacher scales (timm feature indices): strides 16 and 32 for EfficientNet-Lite0 (112 and 320 channels), the
#: ``reverse`` design's; the ``image-encoder`` and ``reverse-fine`` designs read (2, 3), strides 8 and 16.
DEFAULT_TEACHER_LAYERS = (3, 4)


class Teacher(FrozenBackbone):
    """The frozen pretrained backbone: ``forward(preprocess(images (N, H, W, 3) uint8)) -> [(N, C_l, h_l, w_l)]``.

    Its parameters never receive gradients and it stays in eval mode even inside a ``train()`` call,
    so batch-norm statistics cannot drift either (:class:`~exdd_lab.components.frontend.FrozenBackbone`).
    """

    def __init__(self, backbone: str = DEFAULT_BACKBONE, weights: str = "imagenet",
                 layers: Sequence[int] = DEFAULT_TEACHER_LAYERS) -> None:
        super().__init__(backbone, weights, layers)
        self.backbone_name, self.layers = backbone, tuple(layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps of normalised images ``(N, 3, H, W)``."""
        return self.maps(x)


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def _check_strides(strides: Sequence[int]) -> None:
    if list(strides) != sorted(strides) or any(s < 2 or s & (s - 1) for s in strides):
        raise ExddError(f"teacher strides must be increasing powers of two, got {list(strides)}",
                        "choose teacher layers in increasing order (e.g. 2, 3)")


class Student(nn.Module):
    """Randomly initialised network that predicts the teacher's maps: ``(N, 3, H, W) -> [(N, C_l, h_l, w_l)]``.

    A plain convolutional encoder halves the resolution ``log2(max stride)`` times (widths
    ``width * (1, 2, 3, 4, 4, ...)``, two 3x3 convolutions per stage, batch norm).

    - ``architecture="encoder"`` (default): a 1x1 convolution at each teacher stride reads the encoder's
      stage there (STPM's pyramid, but a different and lighter network than the teacher: asymmetric).
    - ``architecture="encoder-decoder"``: the encoder runs to the coarsest stride, then a decoder **without
      skip connections** doubles the resolution back, emitting a map at each stride, coarsest first:
      everything passes through the bottleneck, so defect pixels cannot be copied through (slower to train).
    """

    ARCHITECTURES = ("encoder", "encoder-decoder")

    def __init__(self, channels: Sequence[int], strides: Sequence[int], width: int = 32,
                 architecture: str = "encoder") -> None:
        super().__init__()
        _check_strides(strides)
        if architecture not in self.ARCHITECTURES:
            raise ExddError(f"unknown student architecture {architecture!r}", f"choose one of {', '.join(self.ARCHITECTURES)}")
        self.channels, self.strides, self.architecture = list(channels), list(strides), architecture
        depth = int(np.log2(strides[-1]))
        widths = [width * min(i + 1, 4) for i in range(depth)]
        self.stages = nn.ModuleList()
        c = 3
        for w in widths:
            self.stages.append(nn.Sequential(_conv(c, w, stride=2), _conv(w, w)))
            c = w
        self.outputs = nn.ModuleDict()
        self.decoder = nn.ModuleList()
        if architecture == "encoder":
            for stride, out in zip(self.strides, self.channels):
                self.outputs[str(stride)] = nn.Conv2d(widths[int(np.log2(stride)) - 1], out, 1)
            return
        for level in range(depth, 0, -1):  # resolution 1/2^level, coarsest first
            stride = 2**level
            if stride in self.strides:
                self.outputs[str(stride)] = nn.Conv2d(c, self.channels[self.strides.index(stride)], 1)
            if stride > self.strides[0]:
                w = widths[level - 2]
                self.decoder.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                                  _conv(c, w)))
                c = w

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out: dict[int, torch.Tensor] = {}
        h, stride = x, 1
        for stage in self.stages:
            h, stride = stage(h), stride * 2
            if self.architecture == "encoder" and stride in self.strides:
                out[stride] = self.outputs[str(stride)](h)
        if self.architecture == "encoder-decoder":
            ups = iter(self.decoder)
            while True:
                if stride in self.strides:
                    out[stride] = self.outputs[str(stride)](h)
                if stride == self.strides[0]:
                    break
                h, stride = next(ups)(h), stride // 2
        return [out[s] for s in self.strides]


class ReverseStudent(nn.Module):
    """Reverse distillation (Deng & Li, CVPR 2022): the teacher's maps -> a one-class bottleneck -> a decoder that
    rebuilds the teacher's maps, ``[(N, C_l, h_l, w_l)] -> [(N, C_l, h_l, w_l)]``.

    The student never sees the image. Every teacher scale is brought down to half the coarsest resolution by strided
    convolutions and fused into one small embedding (``bottleneck`` channels at stride ``2 * max stride``: the
    *one-class bottleneck*, OCBE); a decoder without skip connections doubles the resolution back and emits each
    scale's map. Everything passes through the embedding, so what it was never trained to represent (a defect) cannot
    be copied through, and the rebuilt map disagrees with the teacher's there. The cost of a training step is this
    small network on cached teacher maps, not a CNN over the image.
    """

    reads_features = True

    def __init__(self, channels: Sequence[int], strides: Sequence[int], width: int = 64, bottleneck: int = 128) -> None:
        super().__init__()
        _check_strides(strides)
        self.channels, self.strides = list(channels), list(strides)
        top = 2 * self.strides[-1]
        self.squeeze = nn.ModuleList(
            nn.Sequential(*[_conv(c if i == 0 else width, width, stride=2) for i in range(int(np.log2(top // s)))])
            for c, s in zip(self.channels, self.strides))
        self.fuse = nn.Sequential(_conv(width * len(self.channels), bottleneck), _conv(bottleneck, bottleneck))
        self.up = nn.ModuleList()
        self.outputs = nn.ModuleList()
        c = bottleneck
        for stride, out in zip(reversed(self.strides), reversed(self.channels)):  # coarsest first
            w = max(width, out)
            self.up.append(nn.Sequential(_conv(c, w), _conv(w, w)))  # after a bilinear 2x upsampling (forward)
            self.outputs.append(nn.Conv2d(w, out, 1))
            c = w

    def embed(self, teacher_maps: Sequence[torch.Tensor]) -> torch.Tensor:
        """The bottleneck embedding ``(N, bottleneck, h_L / 2, w_L / 2)`` of the teacher's maps."""
        return self.fuse(torch.cat([squeeze(m) for squeeze, m in zip(self.squeeze, teacher_maps)], dim=1))

    def forward(self, teacher_maps: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        h = self.embed(teacher_maps)
        out = []
        for block, head in zip(self.up, self.outputs):
            h = block(F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False))
            out.append(head(h))
        return out[::-1]


def student_maps(student: nn.Module, images: torch.Tensor, teacher_maps: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The student's maps: from the image (an image student) or from the teacher's maps (reverse distillation)."""
    return student(list(teacher_maps)) if getattr(student, "reads_features", False) else student(images)


def check_feature_lists(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor]) -> None:
    """Raise a clear error when student and teacher maps do not pair up scale by scale."""
    if len(student) != len(teacher):
        raise ExddError(f"the student gives {len(student)} feature maps, the teacher {len(teacher)}",
                        "build the student from the teacher's channels and strides (Student(teacher.channels, teacher.strides))")
    for level, (s, t) in enumerate(zip(student, teacher)):
        if s.shape != t.shape:
            raise ExddError(f"scale {level}: student map {tuple(s.shape)} does not match teacher map {tuple(t.shape)}",
                            "use images whose side is a multiple of the coarsest stride, and the same size for both")


def cosine_discrepancy(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor],
                       neighbourhood: int = 1) -> list[torch.Tensor]:
    """Per scale, ``1 - cos(student, teacher)`` over channels: ``[(N, h_l, w_l)]`` in [0, 2].

    ``neighbourhood`` > 1 first averages both maps over each position's k x k neighbourhood (PatchCore's local
    aggregation, :func:`~exdd_lab.features.patches.aggregate_neighbourhood`), so one cell's disagreement is judged
    with its neighbours': steadier on texture, the same on a defect that covers the neighbourhood.
    """
    check_feature_lists(student, teacher)
    if neighbourhood > 1:
        from exdd_lab.features.patches import aggregate_neighbourhood

        student = [aggregate_neighbourhood(s, neighbourhood) for s in student]
        teacher = [aggregate_neighbourhood(t, neighbourhood) for t in teacher]
    return [1 - F.cosine_similarity(s, t, dim=1, eps=1e-6) for s, t in zip(student, teacher)]


HEAD_INPUTS = ("agreement", "discrepancy")


def head_inputs(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor], kind: str = "agreement") -> torch.Tensor:
    """The head's input at the finest scale, upsampled and stacked.

    ``"agreement"`` (DeSTSeg's input): per scale the products of the L2-normalised features (their channel
    sum is the cosine similarity) plus the discrepancy: ``(N, sum C_l + L, h_0, w_0)``. ``"discrepancy"``: only
    the per-scale ``1 - cos`` maps, ``(N, L, h_0, w_0)``: the head can weigh and shape the student's failures
    but cannot learn what the synthetic defects look like in feature space.
    """
    check_feature_lists(student, teacher)
    if kind not in HEAD_INPUTS:
        raise ExddError(f"unknown head input {kind!r}", f"choose one of {', '.join(HEAD_INPUTS)}")
    size = teacher[0].shape[-2:]
    parts, discrepancies = [], []
    for s, t in zip(student, teacher):
        product = F.normalize(s, dim=1, eps=1e-6) * F.normalize(t, dim=1, eps=1e-6)
        discrepancies.append(1 - product.sum(1, keepdim=True))
        if kind == "agreement":
            parts.append(product)
    parts += discrepancies
    return torch.cat([p if p.shape[-2:] == size else F.interpolate(p, size=size, mode="bilinear", align_corners=False)
                      for p in parts], dim=1)


def head_channels(teacher_channels: Sequence[int], kind: str = "agreement") -> int:
    """Input channels of the head for a teacher with these channels per scale."""
    return (sum(teacher_channels) if kind == "agreement" else 0) + len(teacher_channels)


class SegmentationHead(nn.Module):
    """``(N, C_in, h, w) -> (N, 1, h, w)`` defect logits: 1x1 squeeze, two 3x3 convolutions, 1x1 out."""

    def __init__(self, in_channels: int, width: int = 48) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            _conv(width, width), _conv(width, width), nn.Conv2d(width, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ExddError(f"the segmentation head expects (N, {self.in_channels}, h, w), got {tuple(x.shape)}",
                            "feed it head_inputs(student_maps, teacher_maps) of the same teacher")
        return self.net(x)


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
