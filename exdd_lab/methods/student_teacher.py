"""The asymmetric student-teacher as a detector: ``fit(train)`` trains on diffusion-made defects, ``predict`` maps.

fit: synthetic defects on the training normals (the DDPM generator by default, made once and cached)
-> the teacher's maps of every training image -> the seeded training loop of
:mod:`exdd_lab.student_teacher.training`. A finished training is cached under
``<cache>/student_teacher/<key>`` (key: config, normal images, defect set) and an interrupted one resumes.

predict: for each image the head grid and the discrepancy grid, each upsampled and smoothed like every
other method's map; ``map_source`` picks which one is *the* map; the image score is the mean of the
map's top-k pixels. Both grids and both scores stay in ``prediction.extra`` so one run compares them.
Taught in ``notebooks/05_student_teacher.ipynb``.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from exdd_lab.components.registry import Registry
from exdd_lab.data.imageio import load_image
from exdd_lab.data.records import DefectDataset, Sample
from exdd_lab.errors import DatasetError, ExddError
from exdd_lab.methods.base import Prediction
from exdd_lab.methods.persistence import format_header, new_detector_folder, read_saved_blob, settings_from_saved
from exdd_lab.bank.scoring import anomaly_maps, top_k_mean
from exdd_lab.storage import atomic_write, cache_root, file_digest, stable_hash
from exdd_lab.student_teacher.inference import StudentTeacherGrids, anomaly_grids
from exdd_lab.student_teacher.network import Teacher
from exdd_lab.student_teacher.training import (
    StudentTeacherConfig, StudentTeacherModel, build_networks, build_training_data, load_checkpoint, total_steps,
    train_student_teacher, training_image_count,
)

#: Which student-teacher output is *the* map (``StudentTeacherSettings.map_source``); both are always kept.
MAP_SOURCES: Registry[Callable[[StudentTeacherGrids], np.ndarray]] = Registry("student-teacher map source")


@MAP_SOURCES.register("head")
def head_map(grids: StudentTeacherGrids) -> np.ndarray:
    """DeSTSeg's segmentation head: the predicted defect probability, trained on the synthetic masks."""
    return grids.head


@MAP_SOURCES.register("discrepancy")
def discrepancy_map(grids: StudentTeacherGrids) -> np.ndarray:
    """The label-free ``1 - cos`` between student and teacher, averaged over the scales (the default)."""
    return grids.discrepancy


@dataclass
class StudentTeacherSettings:
    """Where the training defects come from and how maps become scores."""

    generator: str = "ddpm"  # perlin | ddpm | ldm, or a mix such as "ddpm+perlin": the defects it trains on
    n_synthetic: int = 200
    ddpm_steps: int = 2500  # DDPM training steps when generator == "ddpm"
    model_dir: str | None = None  # ldm only: local inpainting pipeline folder
    # the headline map: the label-free discrepancy; "head" (DeSTSeg's output) ranked real defect pixels below
    # the discrepancy on every data set measured in full mode, with both students (reverse distillation: MTD 0.62
    # vs 0.81, MPDD 0.93 vs 0.97, procedural 0.978 vs 0.985; the image student: MTD 0.51 vs 0.67, a reviewer's set
    # 0.42 vs 0.90 pixel AUROC), and on every real one also when trained on Perlin or DDPM + Perlin defects (paired,
    # benchmarks/README.md): the head learns the generator's defects, not the factory's (notebook 05)
    map_source: str = "discrepancy"
    top_k: int = 100
    sigma: float = 4.0
    batch_size: int = 16
    cache: bool = True


class StudentTeacher:
    """``StudentTeacher(StudentTeacherConfig(...), StudentTeacherSettings(...)).fit(train).predict(test)``.

    ``defects`` (a synthetic set, e.g. from :func:`~exdd_lab.synthesis.cached_defect_set`) replaces the
    generator when given.
    """

    name = "student-teacher"

    def __init__(self, config: StudentTeacherConfig | None = None, settings: StudentTeacherSettings | None = None,
                 defects: DefectDataset | None = None, teacher: Teacher | None = None) -> None:
        self.config = config or StudentTeacherConfig()
        self.settings = settings or StudentTeacherSettings()
        MAP_SOURCES.check(self.settings.map_source)
        self.teacher = teacher or Teacher(self.config.backbone, self.config.weights, self.config.teacher_layers)
        self.defects = defects
        self.model: StudentTeacherModel | None = None
        self.synthesis_info: dict = {}
        self.threshold: dict | None = None  # the decision threshold saved with the model (persistence.threshold_record)
        self.grids = None  # an exported graph (exdd_lab.export.runtime.RuntimeGrids) that replaces the networks when set

    # -- training -------------------------------------------------------------------------------
    def training_defects(self, train: Sequence[Sample], progress: bool = False) -> DefectDataset:
        """The synthetic set to train on: the one given, or the generator's (made once, cached)."""
        if self.defects is None:
            from exdd_lab.synthesis import DdpmConfig, cached_defect_set, combine_defect_sets

            st, cfg = self.settings, self.config
            generators = st.generator.split("+")  # "ddpm+perlin": an equal share of each generator's defects
            shares = [st.n_synthetic // len(generators) + (i < st.n_synthetic % len(generators))
                      for i in range(len(generators))]
            sets = [cached_defect_set(
                train, generator, n, seed=cfg.seed, image_size=cfg.image_size, model_dir=st.model_dir,
                ddpm_config=DdpmConfig(train_steps=st.ddpm_steps, image_size=cfg.image_size, seed=cfg.seed),
                progress=progress) for generator, n in zip(generators, shares)]
            self.defects = sets[0] if len(sets) == 1 else combine_defect_sets(sets)
            self.synthesis_info = {"generator": st.generator}
        self.synthesis_info = {"generator": "given set", **self.synthesis_info,
                               "n_synthetic": len(self.defects.test), "set": str(self.defects.root)}
        return self.defects

    def cache_folder(self, train: Sequence[Sample], defects: DefectDataset) -> Path:
        """Checkpoints of this training: keyed by the config, the normal images and the defect set."""
        key = stable_hash({"config": self.config.to_dict(), "weights": self.teacher.weights_source.identity,
                           "normals": sorted(file_digest(s.image_path) for s in train),
                           "defects": [str(s.image_path) for s in defects.test], "root": str(defects.root)})
        return cache_root() / "student_teacher" / key

    def fit(self, train: Sequence[Sample], progress: bool = False) -> StudentTeacher:
        if not train:
            raise DatasetError("the student-teacher has no training images to fit on (the train split is empty)",
                               "check the dataset's train split with `exdd-lab datasets --data DIR --layout LAYOUT`")
        defects = self.training_defects(train, progress)
        folder = self.cache_folder(train, defects) if self.settings.cache else None
        n_images = training_image_count(train, defects)
        if folder is not None and folder.is_dir():
            try:
                model, _ = load_checkpoint(folder, self.teacher)
                if model.step >= total_steps(self.config, n_images) and model.config == self.config:
                    self.model = model
                    if progress:
                        print(f"student-teacher: reusing the finished training in {folder}")
                    return self
            except ExddError:
                pass
        data = build_training_data(train, defects, self.teacher, self.config.image_size, progress)
        self.model = train_student_teacher(data, self.teacher, self.config, folder, progress=progress)
        return self

    # -- inference ------------------------------------------------------------------------------
    @property
    def input_size(self) -> int:
        """The side of the square RGB images :meth:`predict_images` takes."""
        return self.config.image_size

    def predict(self, samples: Sequence[Sample], progress: bool = False, keep_maps: bool = True) -> Prediction:
        """Maps from ``map_source``; ``extra`` holds ``head_grid``, ``discrepancy_grid`` and both top-k scores."""
        from tqdm.auto import tqdm

        size, bs = self.config.image_size, self.settings.batch_size
        starts = tqdm(range(0, len(samples), bs), desc="predict", disable=not progress)
        return self._predict_batches((np.stack([load_image(s.image_path, size=size) for s in samples[i : i + bs]])
                                      for i in starts), keep_maps)

    def predict_images(self, images: np.ndarray, keep_maps: bool = True) -> Prediction:
        """The same as :meth:`predict` for decoded images ``(N, S, S, 3) uint8`` at :attr:`input_size`."""
        bs = self.settings.batch_size
        return self._predict_batches((images[i : i + bs] for i in range(0, len(images), bs)), keep_maps)

    def _predict_batches(self, batches: Iterable[np.ndarray], keep_maps: bool) -> Prediction:
        if self.model is None:
            raise RuntimeError("call fit() before predict()")
        size = self.config.image_size
        grids: dict[str, list[np.ndarray]] = {source: [] for source in MAP_SOURCES}
        for images in batches:
            g = (self.grids(images) if self.grids is not None else
                 anomaly_grids(self.teacher, self.model.student, self.model.head, images, self.config.head_input,
                               self.config.neighbourhood))
            for source, pick in MAP_SOURCES.items():
                grids[source].append(pick(g))
        extra: dict[str, np.ndarray] = {}
        chosen_maps = None
        for source in MAP_SOURCES:
            grid = np.concatenate(grids[source]) if grids[source] else np.zeros((0, 1, 1), np.float32)
            extra[f"{source}_grid"] = grid
            maps = anomaly_maps(grid, size, self.settings.sigma) if len(grid) else np.zeros((0, size, size), np.float32)
            extra[f"{source}_scores"] = top_k_mean(maps, self.settings.top_k) if len(maps) else np.zeros(0)
            if source == self.settings.map_source:
                chosen_maps = maps
        scores = extra[f"{self.settings.map_source}_scores"]
        maps = chosen_maps if keep_maps else np.zeros((0, size, size), np.float32)
        return Prediction(maps, scores, extra[f"{self.settings.map_source}_grid"], extra)

    def alternative_predictions(self, prediction: Prediction) -> dict[str, Prediction]:
        """The head's and the discrepancy's maps and scores as two predictions (``run_evaluation`` reports both)."""
        size, out = self.config.image_size, {}
        for source in MAP_SOURCES:
            maps = anomaly_maps(prediction.extra[f"{source}_grid"], size, self.settings.sigma)
            out[source] = Prediction(maps, prediction.extra[f"{source}_scores"], prediction.extra[f"{source}_grid"])
        return out

    # -- persistence ----------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Student and head weights (safetensors), config and settings (JSON), written as one folder atomically."""
        from safetensors.torch import save

        folder = Path(folder)
        if self.model is None:
            raise RuntimeError("call fit() before save()")
        tensors = {f"student.{k}": v.contiguous() for k, v in self.model.student.state_dict().items()}
        tensors |= {f"head.{k}": v.contiguous() for k, v in self.model.head.state_dict().items()}
        with new_detector_folder(folder, fitted=True) as tmp:
            with atomic_write(tmp / "weights.safetensors") as handle:
                handle.write(save(tensors))
            (tmp / "student_teacher.json").write_text(json.dumps({
                **format_header(self.name, self.threshold), "config": self.config.to_dict(), "settings": asdict(self.settings),
                "step": self.model.step, "seconds": self.model.seconds, "synthesis": self.synthesis_info,
                "teacher_weights": self.teacher.weights_source.description}, indent=2, default=str))
        return folder

    @classmethod
    def load(cls, folder: str | Path, grids=None) -> StudentTeacher:
        """A detector saved by :meth:`save` (the teacher is rebuilt from its backbone and weights). ``grids``: an
        exported graph of the same networks that runs them instead (``load_detector(folder, runtime=...)``)."""
        from safetensors.torch import load_file

        folder = Path(folder)
        blob = read_saved_blob(folder, "student_teacher.json", cls.name, "student-teacher")
        config = dict(blob["config"], teacher_layers=tuple(blob["config"].get("teacher_layers", ())))
        detector = cls(settings_from_saved(StudentTeacherConfig, config, folder, "student-teacher config", blob),
                       settings_from_saved(StudentTeacherSettings, blob["settings"], folder, "student-teacher settings", blob))
        student, head = build_networks(detector.teacher, detector.config)
        tensors = load_file(folder / "weights.safetensors")
        student.load_state_dict({k[len("student."):]: v for k, v in tensors.items() if k.startswith("student.")})
        head.load_state_dict({k[len("head."):]: v for k, v in tensors.items() if k.startswith("head.")})
        detector.model = StudentTeacherModel(student.eval(), head.eval(), detector.config, blob["step"], [], blob["seconds"], folder)
        detector.synthesis_info = blob.get("synthesis", {})
        detector.threshold = blob.get("threshold")
        detector.grids = grids
        return detector

    def describe(self) -> dict:
        cfg = self.config
        return {"method": self.name, "backbone": cfg.backbone, "teacher_layers": list(cfg.teacher_layers),
                "image_size": cfg.image_size, "weights": self.teacher.weights_source.kind,
                "weights_source": self.teacher.weights_source.description,
                **{f"config.{k}": v for k, v in cfg.to_dict().items()},
                **{f"settings.{k}": v for k, v in asdict(self.settings).items()},
                **{f"synthesis.{k}": v for k, v in self.synthesis_info.items()},
                "train_steps": self.model.step if self.model else 0,
                "train_s": round(self.model.seconds, 1) if self.model else 0}
