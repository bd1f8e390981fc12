"""The joint objective: the student's cosine loss plus the head's focal + Dice segmentation loss.

- :func:`feature_loss`: mean over scales of the mean ``1 - cos`` between the student's maps (of the
  defective image) and the teacher's maps (of the clean image): the student learns to reproduce
  normal features, defects included.
- :func:`focal_loss` (Lin et al., 2017): binary cross-entropy scaled by ``(1 - p_t)^gamma``, so the
  many easy normal pixels do not drown the few defect pixels.
- :func:`dice_loss`: ``1 - 2|P∩Y| / (|P| + |Y|)`` on probabilities over the whole batch: an overlap term
  that does not care how small the defect is; the batch sum keeps it defined when a batch has no defect.

Pure functions on tensors; taught in ``notebooks/05_student_teacher.ipynb``.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from exdd_lab.errors import ExddError
from exdd_lab.student_teacher.network import cosine_discrepancy


def feature_loss(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor]) -> torch.Tensor:
    """``mean_l mean_{n,y,x} (1 - cos(S_l, T_l))`` over scales ``l``: 0 when the maps point the same way."""
    return torch.stack([d.mean() for d in cosine_discrepancy(student, teacher)]).mean()


def _check_target(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if logits.shape != target.shape:
        raise ExddError(f"segmentation logits {tuple(logits.shape)} and mask {tuple(target.shape)} differ in shape",
                        "resize the masks to the head's output grid (downsample_masks) before the loss")
    return target.to(logits.dtype)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, alpha: float | None = None) -> torch.Tensor:
    """Mean focal loss of logits against a {0, 1} (or soft) target of the same shape; ``gamma=0`` is BCE."""
    target = _check_target(logits, target)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * target + (1 - p) * (1 - target)
    loss = (1 - p_t) ** gamma * bce
    if alpha is not None:
        loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return loss.mean()


def dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Soft Dice loss over the whole batch: ``1 - (2 sum(p y) + s) / (sum p + sum y + s)``."""
    target = _check_target(logits, target)
    p = torch.sigmoid(logits)
    return 1 - (2 * (p * target).sum() + smooth) / (p.sum() + target.sum() + smooth)


def downsample_masks(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(N, H, W)`` {0,1} masks -> ``(N, 1, h, w)`` soft targets: the masked share of each cell (area pooling)."""
    if masks.ndim != 3:
        raise ExddError(f"masks must have shape (N, H, W), got {tuple(masks.shape)}", "stack one 2-D mask per image")
    return F.adaptive_avg_pool2d(masks[:, None].float(), size)


def joint_loss(student: Sequence[torch.Tensor], teacher_clean: Sequence[torch.Tensor], logits: torch.Tensor,
               masks: torch.Tensor, seg_weight: float = 1.0, gamma: float = 2.0) -> dict[str, torch.Tensor]:
    """All terms of one training step: ``total = feature + seg_weight * (focal + dice)``.

    ``masks (N, H, W)`` at image size are pooled to the logits' grid first.
    """
    target = downsample_masks(masks, tuple(logits.shape[-2:]))
    terms = {"feature": feature_loss(student, teacher_clean), "focal": focal_loss(logits, target, gamma),
             "dice": dice_loss(logits, target)}
    terms["total"] = terms["feature"] + seg_weight * (terms["focal"] + terms["dice"])
    return terms
