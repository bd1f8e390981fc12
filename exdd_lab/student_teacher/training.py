"""Training the student and the segmentation head together on normal images and synthetic defects.

One step draws a batch (``defect_fraction`` of it synthetic defects, the rest training normals, all from
one seeded ``torch.Generator``), and minimises ``feature + seg_weight * (focal + dice)``
(:func:`~exdd_lab.student_teacher.losses.joint_loss`): the student reproduces the teacher's features of
the *clean* image; the head predicts the exact synthetic mask from the teacher-student agreement.
By default the head's loss does not reach the student (its input is detached), so the discrepancy map
stays a pure "what the student could not reproduce" signal; ``head_trains_student=True`` lets it through.

The teacher is frozen and the training images never change, so the teacher's maps of every training
image are computed once (:func:`build_training_data`); a step then costs one student forward/backward
and one head forward/backward. The learning rate follows a cosine from ``learning_rate`` down to 5% of it.

Checkpoints (``checkpoint-<step>.pt``: weights, optimizer, generator state, loss history) are written
atomically every ``checkpoint_every`` steps and at the end; training resumes from the newest one and
takes exactly the steps it would have taken without the interruption.
Taught in ``notebooks/05_student_teacher.ipynb``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from exdd_lab.components.checkpoints import Checkpointer, SavedConfig
from exdd_lab.components.device import pick_device
from exdd_lab.data.imageio import load_image, sample_mask
from exdd_lab.data.records import DefectDataset, Sample
from exdd_lab.errors import DatasetError, ExddError
from exdd_lab.components.backbones import DEFAULT_BACKBONE
from exdd_lab.student_teacher.losses import joint_loss
from exdd_lab.student_teacher.network import (
    DEFAULT_TEACHER_LAYERS, ReverseStudent, SegmentationHead, Student, Teacher, head_channels, head_inputs, student_maps,
)

#: ``StudentTeacherConfig.student``: image students (:class:`Student`) and reverse distillation (:class:`ReverseStudent`).
STUDENTS = (*Student.ARCHITECTURES, "reverse")


@dataclass(frozen=True)
class StudentTeacherConfig(SavedConfig):
    """Networks and training budget. The defaults are the ``reverse`` design (:mod:`~exdd_lab.student_teacher.designs`):
    about 3 minutes on two CPU cores for MTD (256 px: 400 normals + 200 defects)."""

    backbone: str = DEFAULT_BACKBONE
    weights: str = "imagenet"
    teacher_layers: tuple[int, ...] = DEFAULT_TEACHER_LAYERS
    image_size: int = 256
    student: str = "reverse"  # one of STUDENTS: "reverse" (ReverseStudent), "encoder" or "encoder-decoder" (Student)
    student_width: int = 64
    bottleneck: int = 128  # reverse: channels of the one-class bottleneck
    head_width: int = 48
    head_input: str = "agreement"  # or "discrepancy" (see network.head_inputs)
    neighbourhood: int = 3  # the discrepancy map's k x k local average before the cosine (network.cosine_discrepancy)
    epochs: int = 64  # one epoch = ceil(training images / batch_size) steps
    batch_size: int = 16
    defect_fraction: float = 0.5
    flips: bool = True  # random horizontal/vertical flips of image, mask and teacher maps alike
    learning_rate: float = 1e-3
    seg_weight: float = 1.0
    focal_gamma: float = 2.0
    head_trains_student: bool = False
    checkpoint_every: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "teacher_layers", tuple(self.teacher_layers))  # a list from JSON compares equal



@dataclass
class TrainingData:
    """Everything a step draws from, in memory.

    ``images (M, H, W, 3) uint8``: the ``n_normal`` training normals first, then the synthetic defects;
    ``masks (M, H, W) bool``; ``target (M,)``: for each image, the index of the clean image whose teacher
    maps the student must reproduce (itself for a normal, its source for a defect);
    ``teacher_maps [(M, C_l, h_l, w_l)]``: the frozen teacher's maps of every image.
    """

    images: torch.Tensor
    masks: torch.Tensor
    target: torch.Tensor
    n_normal: int
    teacher_maps: list[torch.Tensor]

    @property
    def n_defect(self) -> int:
        return len(self.images) - self.n_normal


def defect_sources(defects: DefectDataset) -> list[str]:
    """The normal image each synthetic defect was made from (recorded by the synthesis set)."""
    records = defects.split_info.get("records")
    if not records or len(records) < len(defects.test):
        raise DatasetError(f"{defects.root} does not record the source image of each defect",
                           "use a set made by exdd_lab.synthesis (cached_defect_set or `exdd-lab synthesize`)")
    return [str(r["source"]) for r in records[: len(defects.test)]]


@torch.no_grad()
def teacher_maps(teacher: Teacher, images: torch.Tensor, batch_size: int = 16, progress: bool = False) -> list[torch.Tensor]:
    """The teacher's maps of ``(M, H, W, 3) uint8`` images, batch by batch, on the CPU."""
    from tqdm.auto import tqdm

    parts: list[list[torch.Tensor]] = []
    for start in tqdm(range(0, len(images), batch_size), desc="teacher features", disable=not progress):
        parts.append([m.cpu() for m in teacher(teacher.preprocess(images[start : start + batch_size]))])
    return [torch.cat(level) for level in zip(*parts)]


def build_training_data(normals: Sequence[Sample], defects: DefectDataset | None, teacher: Teacher,
                        image_size: int, progress: bool = False) -> TrainingData:
    """Load the normals and the synthetic defects (with their exact masks) and the teacher's maps of all of them.

    A defect whose source image is not among ``normals`` brings its source in as one more normal.
    """
    if not normals:
        raise DatasetError("no normal training images for the student-teacher", "pass the training split's normal images")
    paths = [str(s.image_path) for s in normals]
    defect_list = list(defects.test) if defects is not None else []
    sources = defect_sources(defects) if defect_list else []
    for src in sources:
        if src not in paths:
            paths.append(src)
    index = {p: i for i, p in enumerate(paths)}
    images = [load_image(p, size=image_size) for p in paths]
    masks = [np.zeros((image_size, image_size), bool) for _ in paths]
    for s in defect_list:
        image = load_image(s.image_path, size=image_size)
        if s.mask_path is None:
            raise DatasetError(f"synthetic defect {s.image_path} has no mask", "re-create the synthetic set")
        images.append(image)
        masks.append(sample_mask(s, image_size))
    target = list(range(len(paths))) + [index[src] for src in sources]
    stacked = torch.from_numpy(np.stack(images))
    return TrainingData(stacked, torch.from_numpy(np.stack(masks)), torch.tensor(target), len(paths),
                        teacher_maps(teacher, stacked, progress=progress))


@dataclass
class StudentTeacherModel:
    """A trained (or training) student and head with their history. ``history``: one dict of loss terms per step."""

    student: Student
    head: SegmentationHead
    config: StudentTeacherConfig
    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    path: Path | None = None

    def losses(self, term: str = "total") -> np.ndarray:
        return np.array([h[term] for h in self.history])


def build_networks(teacher: Teacher, config: StudentTeacherConfig) -> tuple[Student, SegmentationHead]:
    """Student and head for this teacher, initialised from ``config.seed``."""
    if config.student not in STUDENTS:
        raise ExddError(f"unknown student {config.student!r}", f"choose one of {', '.join(STUDENTS)}")
    torch.manual_seed(config.seed)
    student = (ReverseStudent(teacher.channels, teacher.strides, config.student_width, config.bottleneck)
               if config.student == "reverse" else
               Student(teacher.channels, teacher.strides, config.student_width, config.student))
    head = SegmentationHead(head_channels(teacher.channels, config.head_input), config.head_width)
    return student, head


def steps_per_epoch(n_images: int, batch_size: int) -> int:
    return max(1, math.ceil(n_images / batch_size))


def learning_rate(step: int, total: int, base: float) -> float:
    """Cosine decay from ``base`` to ``0.05 * base`` over ``total`` steps."""
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(step, total) / max(total, 1))))


def draw_batch(data: TrainingData, config: StudentTeacherConfig, gen: torch.Generator) -> torch.Tensor:
    """Indices of one batch: ``round(batch_size * defect_fraction)`` defects (if any), the rest normals."""
    n_def = round(config.batch_size * config.defect_fraction) if data.n_defect else 0
    normal = torch.randint(data.n_normal, (config.batch_size - n_def,), generator=gen)
    defect = data.n_normal + torch.randint(max(data.n_defect, 1), (n_def,), generator=gen)
    return torch.cat([normal, defect])


def flip_batch(flips: torch.Tensor, tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Flip each item of every tensor (last two axes are H, W) where ``flips (B, 2)`` says: vertical, horizontal.

    The teacher's maps of a flipped image are close to its flipped maps (the backbone is convolutional;
    only padding breaks the symmetry), so flipping precomputed maps is a cheap, near-exact augmentation.
    """
    out = []
    for t in tensors:
        t = t.clone()
        for i, (fv, fh) in enumerate(flips.tolist()):
            dims = [d for d, on in ((-2, fv), (-1, fh)) if on]
            if dims:
                t[i] = t[i].flip(dims)
        out.append(t)
    return out


def checkpointer(folder: str | Path) -> Checkpointer:
    """The student-teacher's checkpoints in ``folder``: ``checkpoint-<step>.pt`` files."""
    return Checkpointer(Path(folder))


def save_checkpoint(folder: Path, model: StudentTeacherModel, optimizer: torch.optim.Optimizer,
                    gen: torch.Generator) -> Path:
    """Write ``checkpoint-<step>.pt`` atomically, then remove older ones."""
    return checkpointer(folder).save(
        model.step, {"history": model.history, "seconds": model.seconds, "student": model.student.state_dict(),
                     "head": model.head.state_dict(), "config": model.config.to_dict()}, optimizer, gen)


def load_checkpoint(folder: str | Path, teacher: Teacher) -> tuple[StudentTeacherModel, dict]:
    """The newest checkpoint in ``folder`` as a model (eval mode) and its raw state (optimizer, generator)."""
    path = checkpointer(folder).latest()
    if path is None:
        raise ExddError(f"no student-teacher checkpoint in {folder}",
                        "train one with train_student_teacher(..., folder=...) or `exdd-lab evaluate --method student-teacher`")
    state = Checkpointer.load_state(path, as_folder=False)
    config = StudentTeacherConfig.from_dict(state["config"])
    student, head = build_networks(teacher, config)
    student.load_state_dict(state["student"])
    head.load_state_dict(state["head"])
    model = StudentTeacherModel(student.eval(), head.eval(), config, state["step"], list(state["history"]),
                                state["seconds"], path)
    return model, state


def total_steps(config: StudentTeacherConfig, n_images: int) -> int:
    return config.epochs * steps_per_epoch(n_images, config.batch_size)


def training_image_count(normals: Sequence[Sample], defects: DefectDataset | None) -> int:
    """How many images one epoch covers: the normals (and the sources of the defects) plus the defects."""
    sources = set(defect_sources(defects)) if defects is not None and defects.test else set()
    return len({str(s.image_path) for s in normals} | sources) + (len(defects.test) if defects is not None else 0)


def train_student_teacher(
    data: TrainingData,
    teacher: Teacher,
    config: StudentTeacherConfig | None = None,
    folder: str | Path | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    stop_after: int | None = None,
) -> StudentTeacherModel:
    """Train (or resume) the student and head for ``config.epochs`` epochs over ``data``.

    With ``folder``, checkpoints are written there and an existing one is resumed (its config must match).
    ``stop_after`` ends this call after that many steps in total (with a checkpoint), as an interruption would.
    """
    from tqdm.auto import tqdm

    config = config or StudentTeacherConfig()
    if not 0 <= config.defect_fraction <= 1:
        raise ExddError(f"defect_fraction must be in [0, 1], got {config.defect_fraction}", "e.g. 0.5: half of each batch")
    device = pick_device(device)
    teacher.to(device)
    gen = torch.Generator().manual_seed(config.seed)
    student, head = build_networks(teacher, config)
    model = StudentTeacherModel(student.to(device), head.to(device), config, path=Path(folder) if folder else None)
    params = list(student.parameters()) + list(head.parameters())
    optimizer = torch.optim.Adam(params, lr=config.learning_rate)
    folder = Path(folder) if folder else None
    if folder is not None and checkpointer(folder).latest() is not None:
        loaded, state = load_checkpoint(folder, teacher)
        if loaded.config != config:
            raise ExddError(f"the checkpoint in {folder} was trained with another configuration",
                            "use another folder for this configuration, or delete the old checkpoints")
        student.load_state_dict(loaded.student.state_dict())
        head.load_state_dict(loaded.head.state_dict())
        Checkpointer.restore(state, optimizer, gen)
        model.step, model.history, model.seconds = loaded.step, loaded.history, loaded.seconds
    total = total_steps(config, len(data.images))
    end = min(total, stop_after if stop_after is not None else total)
    student.train()
    head.train()
    bar = tqdm(total=end, initial=model.step, desc="student-teacher training", disable=not progress)
    while model.step < end:
        start = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(model.step, total, config.learning_rate)
        idx = draw_batch(data, config, gen)
        flips = torch.rand(len(idx), 2, generator=gen) < (0.5 if config.flips else 0.0)
        images, masks, *t_maps = flip_batch(flips, [data.images[idx].permute(0, 3, 1, 2), data.masks[idx]]
                                            + [m[idx] for m in data.teacher_maps]
                                            + [m[data.target[idx]] for m in data.teacher_maps])
        t_seen = [m.to(device) for m in t_maps[: len(t_maps) // 2]]
        t_clean = [m.to(device) for m in t_maps[len(t_maps) // 2 :]]
        pixels = None if getattr(student, "reads_features", False) else teacher.preprocess(images.permute(0, 2, 3, 1)).to(device)
        s_maps = student_maps(student, pixels, t_seen)
        logits = head(head_inputs(s_maps if config.head_trains_student else [m.detach() for m in s_maps], t_seen,
                                   config.head_input))
        terms = joint_loss(s_maps, t_clean, logits, masks.to(device), config.seg_weight, config.focal_gamma)
        optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        optimizer.step()
        model.step += 1
        model.history.append({k: float(v.detach()) for k, v in terms.items()})
        model.seconds += time.perf_counter() - start
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean([h['total'] for h in model.history[-25:]]):.4f}")
        if folder is not None and (model.step % config.checkpoint_every == 0 or model.step == end):
            model.path = save_checkpoint(folder, model, optimizer, gen)
    bar.close()
    student.eval()
    head.eval()
    return model
