"""Loss arithmetic of the student-teacher on tensors whose answers are known by hand, and its shape errors."""
from __future__ import annotations

import math

import pytest
import torch

from exdd_lab.errors import ExddError
from exdd_lab.bank.scoring import top_k_mean
from exdd_lab.student_teacher import (
    SegmentationHead, Student, cosine_discrepancy, dice_loss, downsample_masks, feature_loss, focal_loss, head_inputs,
    joint_loss,
)


def _maps(*channel_vectors, size=(2, 3)):
    """One feature map per vector: the vector repeated at every position, ``(1, C, h, w)``."""
    return [torch.tensor(v, dtype=torch.float32).view(1, -1, 1, 1).expand(1, len(v), *size).clone() for v in channel_vectors]


def test_feature_loss_is_the_mean_cosine_distance_over_scales():
    teacher = _maps([1.0, 0.0], [0.0, 2.0, 0.0])
    assert feature_loss(_maps([3.0, 0.0], [0.0, 0.5, 0.0]), teacher).item() == pytest.approx(0.0, abs=1e-6)  # same direction
    assert feature_loss(_maps([0.0, 1.0], [0.0, -1.0, 0.0]), teacher).item() == pytest.approx((1 + 2) / 2)  # orthogonal, opposite
    student = _maps([1.0, 1.0], [0.0, 1.0, 0.0])  # 45 degrees at scale 0: 1 - cos = 1 - 1/sqrt(2)
    assert feature_loss(student, teacher).item() == pytest.approx((1 - 1 / math.sqrt(2)) / 2, rel=1e-5)


def test_cosine_discrepancy_is_per_position():
    t = torch.zeros(1, 2, 1, 2)
    t[0, 0] = 1.0
    s = t.clone()
    s[0, :, 0, 1] = torch.tensor([0.0, 1.0])  # second position orthogonal
    (d,) = cosine_discrepancy([s], [t])
    assert torch.allclose(d, torch.tensor([[[0.0, 1.0]]]), atol=1e-6)


def test_focal_loss_known_values():
    logits, target = torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2)
    assert focal_loss(logits, target, gamma=0).item() == pytest.approx(math.log(2), rel=1e-6)  # BCE at p = 0.5
    assert focal_loss(logits, target, gamma=2).item() == pytest.approx(0.25 * math.log(2), rel=1e-6)
    confident = torch.full((1, 1, 2, 2), 4.0)  # p = sigmoid(4) on positives: a small, down-weighted loss
    p = torch.sigmoid(torch.tensor(4.0)).item()
    assert focal_loss(confident, target, gamma=2).item() == pytest.approx((1 - p) ** 2 * -math.log(p), rel=1e-5)
    assert focal_loss(logits, target, gamma=0, alpha=0.25).item() == pytest.approx(0.25 * math.log(2), rel=1e-6)


def test_dice_loss_known_values():
    target = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    half = torch.zeros_like(target)  # p = 0.5 everywhere: 1 - (2 * 1 + 1) / (2 + 2 + 1)
    assert dice_loss(half, target).item() == pytest.approx(1 - 3 / 5, rel=1e-6)
    perfect = (target * 2 - 1) * 50  # p = 1 on the defect, 0 elsewhere
    assert dice_loss(perfect, target).item() == pytest.approx(0.0, abs=1e-6)
    assert dice_loss(torch.full_like(target, -50.0), torch.zeros_like(target)).item() == pytest.approx(0.0, abs=1e-6)


def test_downsample_masks_pools_area_and_joint_loss_adds_the_terms():
    masks = torch.zeros(1, 4, 4, dtype=torch.bool)
    masks[0, :2, :2] = True
    masks[0, 2, 2] = True
    assert torch.equal(downsample_masks(masks, (2, 2))[0, 0], torch.tensor([[1.0, 0.0], [0.0, 0.25]]))
    s, t = _maps([1.0, 0.0], size=(2, 2)), _maps([0.0, 1.0], size=(2, 2))
    logits = torch.zeros(1, 1, 2, 2)
    terms = joint_loss(s, t, logits, masks, seg_weight=0.5, gamma=0)
    assert terms["feature"].item() == pytest.approx(1.0)
    assert terms["total"].item() == pytest.approx(1.0 + 0.5 * (terms["focal"] + terms["dice"]).item())


def test_top_k_mean():
    maps = torch.arange(16, dtype=torch.float32).view(1, 4, 4).numpy()
    assert top_k_mean(maps, 1)[0] == 15 and top_k_mean(maps, 3)[0] == pytest.approx(14.0)
    assert top_k_mean(maps, 100)[0] == pytest.approx(7.5)  # k larger than the map: its mean
    with pytest.raises(ValueError):
        top_k_mean(maps, 0)


def test_shape_errors_say_what_to_do():
    with pytest.raises(ExddError, match="student map .* does not match teacher map"):
        feature_loss(_maps([1.0, 0.0], size=(2, 2)), _maps([1.0, 0.0], size=(3, 3)))
    with pytest.raises(ExddError, match="gives 1 feature maps, the teacher 2"):
        cosine_discrepancy(_maps([1.0]), _maps([1.0], [1.0]))
    with pytest.raises(ExddError, match="logits .* and mask .* differ"):
        focal_loss(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 4, 4))
    with pytest.raises(ExddError, match="masks must have shape"):
        downsample_masks(torch.zeros(4, 4), (2, 2))
    with pytest.raises(ExddError, match="expects \\(N, 5, h, w\\)"):
        SegmentationHead(5)(torch.zeros(1, 4, 8, 8))
    with pytest.raises(ExddError, match="unknown student architecture"):
        Student([8, 16], [4, 8], architecture="transformer")
    with pytest.raises(ExddError, match="increasing powers of two"):
        Student([8, 16], [8, 4])


@pytest.mark.parametrize("architecture", Student.ARCHITECTURES)
def test_student_matches_the_teacher_shapes(architecture):
    student = Student([24, 40, 112], [4, 8, 16], width=8, architecture=architecture)
    maps = student(torch.zeros(2, 3, 64, 64))
    assert [tuple(m.shape) for m in maps] == [(2, 24, 16, 16), (2, 40, 8, 8), (2, 112, 4, 4)]
    teacher = [torch.randn_like(m) for m in maps]
    assert head_inputs(maps, teacher).shape == (2, 24 + 40 + 112 + 3, 16, 16)
    only = head_inputs(maps, teacher, "discrepancy")
    assert only.shape == (2, 3, 16, 16) and torch.allclose(only[:, 0], cosine_discrepancy(maps, teacher)[0], atol=1e-5)
    with pytest.raises(ExddError, match="unknown head input"):
        head_inputs(maps, teacher, "features")


def test_reverse_student_rebuilds_the_teacher_maps_through_a_small_bottleneck():
    """Reverse distillation: teacher maps in, the same shapes out, and everything passes through an embedding at half
    the coarsest resolution (no path around it: changing one input cell moves outputs far from it)."""
    from exdd_lab.student_teacher.network import ReverseStudent, student_maps

    torch.manual_seed(0)
    student = ReverseStudent([24, 40, 112], [4, 8, 16], width=8, bottleneck=6).eval()
    teacher = [torch.randn(2, 24, 32, 32), torch.randn(2, 40, 16, 16), torch.randn(2, 112, 8, 8)]
    maps = student_maps(student, torch.zeros(2, 3, 128, 128), teacher)  # the image is not read
    assert [tuple(m.shape) for m in maps] == [(2, 24, 32, 32), (2, 40, 16, 16), (2, 112, 8, 8)]
    assert tuple(student.embed(teacher).shape) == (2, 6, 4, 4)
    with torch.no_grad():
        moved = [t.clone() for t in teacher]
        moved[0][:, :, 0, 0] += 10.0  # one cell in the top-left corner of the finest map
        delta = (student(moved)[0] - student(teacher)[0]).abs().sum((0, 1))
    assert delta[24:, 24:].sum() > 0  # the bottleneck spreads it: the far corner changes too
    with pytest.raises(ExddError, match="increasing powers of two"):
        ReverseStudent([8, 16], [8, 4])


def test_the_config_picks_the_student():
    from exdd_lab.student_teacher import StudentTeacherConfig, Teacher, build_networks
    from exdd_lab.student_teacher.network import ReverseStudent

    teacher = Teacher()
    student, _ = build_networks(teacher, StudentTeacherConfig(student="reverse", student_width=8, bottleneck=16))
    assert isinstance(student, ReverseStudent) and student.embed([torch.zeros(1, c, 256 // s, 256 // s) for c, s in
                                                                  zip(teacher.channels, teacher.strides)]).shape[1] == 16
    assert isinstance(build_networks(teacher, StudentTeacherConfig(student="encoder"))[0], Student)
    with pytest.raises(ExddError, match="unknown student 'vit'"):
        build_networks(teacher, StudentTeacherConfig(student="vit"))
    from exdd_lab.student_teacher.designs import design_fields

    assert StudentTeacherConfig(**design_fields(None)) == StudentTeacherConfig()  # the default design is the default config
    assert StudentTeacherConfig(**design_fields("reverse")) == StudentTeacherConfig()  # and it is reverse distillation
    assert StudentTeacherConfig().student == "reverse" and Teacher().layers == StudentTeacherConfig().teacher_layers
    fine = StudentTeacherConfig(**design_fields("reverse-fine"))
    assert fine.teacher_layers == (2, 3) and fine.student == "reverse" and fine.neighbourhood == 3
    assert StudentTeacherConfig(**design_fields("image-encoder")).student == "encoder"
    with pytest.raises(ExddError, match="unknown student-teacher design 'vit'"):
        design_fields("vit")


def test_the_discrepancy_neighbourhood_averages_both_maps_before_the_cosine():
    torch.manual_seed(0)
    student, teacher = [torch.randn(1, 4, 6, 6)], [torch.randn(1, 4, 6, 6)]
    plain, local = cosine_discrepancy(student, teacher)[0], cosine_discrepancy(student, teacher, neighbourhood=3)[0]
    mean = lambda m: m[:, :, 1:4, 1:4].mean((2, 3))  # noqa: E731  the 3x3 around cell (2, 2)
    expected = 1 - torch.nn.functional.cosine_similarity(mean(student[0]), mean(teacher[0]), dim=1)
    assert local[0, 2, 2].item() == pytest.approx(expected.item(), abs=1e-5)
    assert not torch.allclose(plain, local)
    assert torch.equal(cosine_discrepancy(student, teacher, neighbourhood=1)[0], plain)
