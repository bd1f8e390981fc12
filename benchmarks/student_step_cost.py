"""Does EfficientAD's student fit a CPU budget? One training step's cost, next to the kit's two students.

    python benchmarks/student_step_cost.py [--batch 16] [--size 256] [--repeats 5] [--seed 0]

Times one optimisation step (forward, loss, backward, Adam) at batch ``--batch`` and ``--size`` px for:

- ``reverse``: the kit's default student (``ReverseStudent`` on the teacher's strides 16 and 32), which reads
  cached teacher maps, so a step never touches pixels;
- ``image-encoder``: the kit's first student, a CNN over the image (strides 8 and 16);
- ``pdn-s`` / ``pdn-m``: EfficientAD's patch-description networks (Batzner et al., WACV 2024, the small and
  medium PDN as published: four and six convolutions, two average poolings, 384 output channels, no padding in
  the last convolution), trained with the paper's hard-feature loss (the mean of the squared errors at or above
  their 0.999 quantile). Only the student's part is timed: EfficientAD also trains an autoencoder and a second
  student head for logical anomalies, which would add to the cost.

It prints seconds per step (the median of ``--repeats`` after one warm-up), the steps that fit the issue's
15-minute budget, and how long EfficientAD's published schedule (70,000 steps at batch 1) and the kit's default
schedule (2,432 steps at batch 16 on MTD seed 0) would take. Nothing is trained to convergence: the question is
only whether a design can reach its own schedule on 2 cores.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn as nn

from exdd_lab.student_teacher import StudentTeacherConfig, Teacher, build_networks, student_maps
from exdd_lab.student_teacher.losses import feature_loss

BUDGET_S = 15 * 60
EFFICIENTAD_STEPS, EFFICIENTAD_BATCH = 70_000, 1
KIT_STEPS = 2_432  # the default's 64 epochs on MTD seed 0 (400 normals + 200 defects, batch 16)


def pdn(size: str, out_channels: int = 384) -> nn.Sequential:
    """EfficientAD's patch-description network, small (``"s"``) or medium (``"m"``), as published."""
    pool = lambda: nn.AvgPool2d(2, 2, padding=1)  # noqa: E731
    if size == "s":
        return nn.Sequential(nn.Conv2d(3, 128, 4, padding=3), nn.ReLU(), pool(),
                             nn.Conv2d(128, 256, 4, padding=3), nn.ReLU(), pool(),
                             nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
                             nn.Conv2d(256, out_channels, 4))
    return nn.Sequential(nn.Conv2d(3, 256, 4, padding=3), nn.ReLU(), pool(),
                         nn.Conv2d(256, 512, 4, padding=3), nn.ReLU(), pool(),
                         nn.Conv2d(512, 512, 1), nn.ReLU(),
                         nn.Conv2d(512, 512, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(512, out_channels, 4), nn.ReLU(),
                         nn.Conv2d(out_channels, out_channels, 1))


def hard_feature_loss(student: torch.Tensor, target: torch.Tensor, quantile: float = 0.999) -> torch.Tensor:
    """EfficientAD's loss: only the squared errors at or above their ``quantile`` are trained."""
    errors = (student - target) ** 2
    hard = torch.quantile(errors.detach().flatten()[:16_000_000], quantile)
    return errors[errors >= hard].mean()


def median_step_seconds(step, repeats: int) -> float:
    step()  # warm-up (allocations, one-off kernels)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def kit_step(kind: str, teacher: Teacher, images: torch.Tensor):
    layers = (3, 4) if kind == "reverse" else (2, 3)
    teacher = teacher if teacher.layers == layers else Teacher(layers=layers)
    config = StudentTeacherConfig(student="reverse" if kind == "reverse" else "encoder", teacher_layers=layers)
    student, _ = build_networks(teacher, config)
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-3)
    with torch.no_grad():
        pixels = teacher.preprocess((images.permute(0, 2, 3, 1) * 255).to(torch.uint8))
        maps = teacher(pixels)  # computed once, as training caches them

    def step() -> None:
        s_maps = student_maps(student, None if kind == "reverse" else pixels, maps)
        loss = feature_loss(s_maps, maps)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def pdn_step(kind: str, images: torch.Tensor):
    student = pdn(kind[-1])
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-4, weight_decay=1e-5)
    with torch.no_grad():
        target = torch.randn_like(student(images[:1])).expand(len(images), -1, -1, -1).contiguous()

    def step() -> None:
        loss = hard_feature_loss(student(images), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    images = torch.rand(args.batch, 3, args.size, args.size)  # content does not change a step's cost
    teacher = Teacher(layers=(3, 4))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, {args.size} px")
    print(f"{'student':<14} {'s/step':>8} {'steps in 15 min':>16} {'kit schedule (2,432 x 16)':>26} "
          f"{'70,000 images (EfficientAD)':>28}")
    for kind in ("reverse", "image-encoder", "pdn-s", "pdn-m"):
        step = kit_step(kind, teacher, images) if not kind.startswith("pdn") else pdn_step(kind, images)
        seconds = median_step_seconds(step, args.repeats)
        per_image = seconds / args.batch
        print(f"{kind:<14} {seconds:8.3f} {int(BUDGET_S / seconds):16,d} {KIT_STEPS * seconds / 60:23.1f} min "
              f"{EFFICIENTAD_STEPS * EFFICIENTAD_BATCH * per_image / 60:25.1f} min", flush=True)


if __name__ == "__main__":
    main()
