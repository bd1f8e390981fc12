"""From a trained student-teacher to anomaly grids: one from the segmentation head, one from the raw discrepancy.

- head grid: ``sigmoid(head logits)``, the predicted probability that a cell is defective;
- discrepancy grid: the mean over scales of ``1 - cos(student, teacher)``, upsampled to the finest grid.

Both are ``(N, h_0, w_0)`` (16 x 16 for 256 px and the default finest stride 16); :mod:`exdd_lab.bank.scoring` turns them into
smoothed maps at image size, and the image score is the mean of the map's top-k pixels.
Taught in ``notebooks/05_student_teacher.ipynb``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from exdd_lab.student_teacher.network import (
    SegmentationHead, Student, Teacher, cosine_discrepancy, head_inputs, student_maps,
)


@dataclass
class StudentTeacherGrids:
    """``head``, ``discrepancy`` ``(N, h_0, w_0)``; ``per_scale`` ``[(N, h_l, w_l)]`` (each scale's 1 - cos)."""

    head: np.ndarray
    discrepancy: np.ndarray
    per_scale: list[np.ndarray]


def mean_over_scales(per_scale: list[torch.Tensor]) -> torch.Tensor:
    """The discrepancy map ``(N, h_0, w_0)``: each scale's ``(N, h_l, w_l)`` map upsampled (bilinear) to the finest
    grid, then averaged over scales, so every scale counts the same whatever its resolution."""
    size = per_scale[0].shape[-2:]
    return torch.stack([d if d.shape[-2:] == size else
                        F.interpolate(d[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
                        for d in per_scale]).mean(0)


def grid_tensors(teacher: Teacher, student: Student, head: SegmentationHead, x: torch.Tensor,
                 head_input: str = "agreement", neighbourhood: int = 1) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Head probability ``(N, h_0, w_0)``, mean discrepancy ``(N, h_0, w_0)`` and each scale's discrepancy of
    normalised images ``x`` ``(N, 3, H, W)``: the arithmetic :func:`anomaly_grids` runs and ``exdd-lab export`` traces.
    ``neighbourhood``: the discrepancy's local average (:func:`~exdd_lab.student_teacher.network.cosine_discrepancy`)."""
    device = next(student.parameters()).device
    t_maps = [m.to(device) for m in teacher(x)]
    s_maps = student_maps(student, x.to(device), t_maps)
    per_scale = cosine_discrepancy(s_maps, t_maps, neighbourhood)
    mean = mean_over_scales(per_scale)
    prob = torch.sigmoid(head(head_inputs(s_maps, t_maps, head_input)))[:, 0]
    return prob, mean, per_scale


@torch.no_grad()
def anomaly_grids(teacher: Teacher, student: Student, head: SegmentationHead, images: np.ndarray | torch.Tensor,
                  head_input: str = "agreement", neighbourhood: int = 1) -> StudentTeacherGrids:
    """Grids of one batch of ``(N, H, W, 3) uint8`` images (student and head in eval mode)."""
    student.eval()
    head.eval()
    prob, mean, per_scale = grid_tensors(teacher, student, head, teacher.preprocess(images), head_input,
                                         neighbourhood)
    return StudentTeacherGrids(prob.cpu().numpy(), mean.cpu().numpy(), [d.cpu().numpy() for d in per_scale])
