"""An experiment that failed, kept so it can be rerun: choose the teacher's scales without test labels, by short
trainings judged on held-out synthetic defects (``student_teacher_designs.py judge``).

Which scales a reverse-distillation student should rebuild depends on the data: strides 16+32 on MTD, 8+16 on
MPDD and the procedural default (benchmarks/README.md, "Student–teacher designs"). A test split cannot choose,
so the synthetic defects, which come with exact masks, were tried as the judge: a seeded share of the normals is
held out with every defect made from them, each candidate set of scales trains a short run on the rest, and the
candidate whose discrepancy map ranks the held-out images' pixels best (pixel AUROC over the held-out normals and
defects) wins. Holding out the normals matters: the surroundings of a defect made from a training normal are an
image the student has learned by heart.

Measured: every judge (held-out DDPM defects, Perlin blends on the held-out normals, the synthetic image AUROC,
the normals' generalisation gap) prefers strides 8+16 on all four data sets, which is right on MPDD and the
procedural default and wrong on both MTD splits (-0.09 to -0.10 pixel AUROC). Not in the package for that reason.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
import torch

from exdd_lab.bank.scoring import anomaly_maps
from exdd_lab.data.imageio import load_image, sample_mask
from exdd_lab.data.records import DefectDataset, Sample
from exdd_lab.errors import DatasetError
from exdd_lab.evaluation.metrics import auroc
from exdd_lab.student_teacher.inference import mean_over_scales
from exdd_lab.student_teacher.network import Teacher, cosine_discrepancy
from exdd_lab.student_teacher.training import (
    StudentTeacherConfig, StudentTeacherModel, build_training_data, teacher_maps, train_student_teacher,
)


@dataclass
class ScaleChoice:
    """The winner (``layers``), each candidate's pixel AUROC on the held-out defects, and what the choice cost."""

    layers: tuple[int, ...]
    judged: dict[tuple[int, ...], float]
    held_out: int
    steps: int
    seconds: float
    models: dict[tuple[int, ...], StudentTeacherModel] = field(default_factory=dict, repr=False)


@dataclass
class JudgeSplit:
    """Normals and synthetic defects to train on, and the unseen ones to judge by (defects made from held-out
    normals only, so neither the judged defects nor their surroundings were ever shown to the student)."""

    train: list[Sample]
    defects: DefectDataset
    judge_normals: list[Sample]
    judge_defects: list[Sample]


def judge_split(train: Sequence[Sample], defects: DefectDataset, held_out: float, seed: int) -> JudgeSplit:
    """Hold out a seeded ``held_out`` share of the normals and every synthetic defect made from one of them."""
    from exdd_lab.student_teacher.training import defect_sources

    n_out = int(round(len(train) * held_out))
    order = np.random.default_rng(seed).permutation(len(train))
    out_paths = {str(train[i].image_path) for i in order[:n_out]}
    sources = defect_sources(defects)
    keep = [i for i, src in enumerate(sources) if src not in out_paths]
    judged = [i for i, src in enumerate(sources) if src in out_paths]
    if not out_paths or len(out_paths) == len(train) or not keep or not judged:
        raise DatasetError(f"cannot hold out {held_out:.0%} of {len(train)} normals and the defects made from them to "
                           f"choose the teacher's scales ({len(judged)} of {len(sources)} defects would be judged)",
                           "use more normals or synthetic defects (--n-synthetic), or choose the scales yourself "
                           "(teacher_layers)")
    records = defects.split_info.get("records", [])[: len(defects.test)]
    fit_defects = replace(defects, test=[defects.test[i] for i in keep],
                          split_info=dict(defects.split_info, records=[records[i] for i in keep], n=len(keep)))
    return JudgeSplit([s for s in train if str(s.image_path) not in out_paths], fit_defects,
                      [s for s in train if str(s.image_path) in out_paths], [defects.test[i] for i in judged])


def load_judged(samples: Sequence[Sample], image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, S, S, 3) uint8`` and exact masks ``(N, S, S) bool`` (all false for a sample without a mask)."""
    images = np.stack([load_image(s.image_path, size=image_size) for s in samples])
    masks = np.stack([sample_mask(s, image_size) if s.mask_path is not None else np.zeros((image_size,) * 2, bool)
                      for s in samples])
    return images, masks


@torch.no_grad()
def discrepancy_grids(model: StudentTeacherModel, teacher: Teacher, images: np.ndarray) -> np.ndarray:
    """The discrepancy grid ``(N, h_0, w_0)`` of ``(N, S, S, 3) uint8`` images, as the detector computes it."""
    t_maps = teacher_maps(teacher, torch.from_numpy(images))
    model.student.eval()
    s_maps = [torch.cat(level) for level in zip(*[model.student([m[i : i + 32] for m in t_maps])
                                                   for i in range(0, len(images), 32)])]
    return mean_over_scales(cosine_discrepancy(s_maps, t_maps, model.config.neighbourhood)).numpy()


def pixel_auroc_of(model: StudentTeacherModel, teacher: Teacher, images: np.ndarray, masks: np.ndarray,
                   sigma: float = 4.0) -> float:
    """Pixel AUROC of the discrepancy map (upsampled and smoothed as the detector does) against exact masks."""
    return auroc(masks, anomaly_maps(discrepancy_grids(model, teacher, images), images.shape[1], sigma))


def choose_teacher_layers(train: Sequence[Sample], defects: DefectDataset, config: StudentTeacherConfig,
                          candidates: Sequence[Sequence[int]], held_out: float = 0.25, steps: int = 600,
                          progress: bool = False) -> ScaleChoice:
    """Train ``config`` on each candidate's scales for ``steps`` steps without the held-out normals and their defects
    (:func:`judge_split`); keep the candidate with the best pixel AUROC over the held-out images."""
    start = time.perf_counter()
    split = judge_split(train, defects, held_out, config.seed)
    images, masks = load_judged(split.judge_normals + split.judge_defects, config.image_size)
    judged, models = {}, {}
    for layers in map(tuple, candidates):
        teacher = Teacher(config.backbone, config.weights, layers)
        candidate = replace(config, teacher_layers=layers)
        data = build_training_data(split.train, split.defects, teacher, config.image_size)
        model = train_student_teacher(data, teacher, candidate, progress=False, stop_after=steps)
        judged[layers] = pixel_auroc_of(model, teacher, images, masks)
        models[layers] = model
        if progress:
            print(f"teacher scales {list(layers)}: held-out synthetic pixel AUROC {judged[layers]:.4f}", flush=True)
    best = max(judged, key=judged.get)
    return ScaleChoice(best, judged, len(split.judge_defects), steps, time.perf_counter() - start, models)
