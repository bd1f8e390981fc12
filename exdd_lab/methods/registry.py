"""Methods by name: ``--method NAME`` builds a detector from common options, and ``load_detector`` reads a saved one.

Adding a method: a module in ``exdd_lab/methods/`` with a class that satisfies
:class:`~exdd_lab.methods.base.Detector`, and one ``@METHODS.register`` entry here (its builder from
command-line options and, when it can be saved, the file its folder holds and its loader). The command
line's ``--method`` and ``--methods`` choices follow from this registry.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from exdd_lab.components.registry import Registry
from exdd_lab.errors import ExddError, ExportError
from exdd_lab.features import FeatureConfig
from exdd_lab.methods.base import Detector
from exdd_lab.methods.patchcore import PatchCore, PatchCoreSettings


@dataclass(frozen=True)
class MethodEntry:
    """How to build a method from options, and how to read it back when it can be saved."""

    build: Callable[[FeatureConfig, dict], Detector]
    saved_as: str | None = None  # the file that marks a saved detector's folder
    load: Callable[..., Detector] | None = None  # load(folder, **exported networks): see export.runtime.runtime_networks


METHODS: Registry[MethodEntry] = Registry("method")


def build_patchcore(features: FeatureConfig, options: dict) -> Detector:
    return PatchCore(features, PatchCoreSettings(
        coreset_ratio=options.get("coreset", 0.01), seed=options.get("seed", 0),
        image_score=options.get("image_score") or PatchCoreSettings.image_score, sigma=options.get("sigma", 4.0),
        coreset_method=options.get("coreset_method", "two-stage"), bank_index=options.get("bank_index", "auto")))


def build_exdd(features: FeatureConfig, options: dict) -> Detector:
    from exdd_lab.methods.exdd.detector import ExDD, ExddSettings

    settings = ExddSettings(seed=options.get("seed", 0), sigma=options.get("sigma", 4.0),
                            negative_ratio=options.get("coreset", 0.01),
                            image_score=options.get("exdd_image_score", ExddSettings.image_score),
                            score=options.get("exdd_score", ExddSettings.score),
                            positive_patches=options.get("positive_patches", "masked"),
                            min_mask_fraction=options.get("min_mask_fraction", 0.9),
                            bank_index=options.get("bank_index", "auto"))
    detector = ExDD(features, settings, defects=options.get("defects", ()))
    detector.synthesis_info = options.get("synthesis_info", {})
    return detector


def load_patchcore(folder: Path, extractor=None) -> Detector:
    return PatchCore.load(folder, extractor)


def load_exdd(folder: Path, extractor=None) -> Detector:
    from exdd_lab.methods.exdd.detector import ExDD

    return ExDD.load(folder, extractor)


def training_seed(options: dict) -> int:
    """The seed of what a method trains or draws (the student-teacher, its DDPM and synthetic defects):
    ``options["train_seed"]`` when given, else ``options["seed"]``, so a trained model can be re-drawn while
    the rest of the run (coresets, splits) stays as it was -- how the notebook references measure the
    spread over trainings."""
    value = options.get("train_seed")
    return options.get("seed", 0) if value is None else value


def build_student_teacher(features: FeatureConfig, options: dict) -> Detector:
    from exdd_lab.methods.student_teacher import StudentTeacher, StudentTeacherSettings
    from exdd_lab.student_teacher import StudentTeacherConfig
    from exdd_lab.student_teacher.designs import design_fields

    design = design_fields(options.get("design"))
    config = StudentTeacherConfig(**{**design, "backbone": features.backbone, "weights": features.weights,
                                     "image_size": features.image_size, "epochs": options.get("epochs") or design["epochs"],
                                     "seed": training_seed(options)})
    settings = StudentTeacherSettings(generator=options.get("generator", "ddpm"),
                                      n_synthetic=options.get("n_synthetic") or StudentTeacherSettings.n_synthetic,
                                      ddpm_steps=options.get("ddpm_steps") or StudentTeacherSettings.ddpm_steps,
                                      model_dir=options.get("model_dir"), map_source=options.get("map_source", StudentTeacherSettings.map_source),
                                      sigma=options.get("sigma", 4.0))
    return StudentTeacher(config, settings, defects=options.get("defect_set"))


def load_student_teacher(folder: Path, grids=None) -> Detector:
    from exdd_lab.methods.student_teacher import StudentTeacher

    return StudentTeacher.load(folder, grids=grids)


METHODS.register("patchcore")(MethodEntry(build_patchcore, "patchcore.json", load_patchcore))
METHODS.register("exdd")(MethodEntry(build_exdd, "exdd.json", load_exdd))
METHODS.register("student-teacher")(MethodEntry(build_student_teacher, "student_teacher.json", load_student_teacher))


@dataclass(frozen=True)
class FolderFormat:
    """A folder that is not a saved detector but holds one (an export): ``marker`` is the file that marks it,
    ``load(folder, runtime, threads)`` reads it, ``runtimes`` are the runtimes it can run in."""

    marker: str
    load: Callable[[Path, str, int | None], Detector]
    runtimes: tuple[str, ...]


#: Folder formats registered by the layers above (:mod:`exdd_lab.export` registers ``export``); the package face
#: imports those layers, so ``import exdd_lab`` always has them registered. This module never imports them.
FOLDER_FORMATS: Registry[FolderFormat] = Registry("detector folder format")


def load_detector(folder: str | Path, runtime: str = "torch", threads: int | None = None) -> Detector:
    """A detector saved with ``save(folder)``, whichever method's file the folder holds; or a folder of a registered
    :data:`FOLDER_FORMATS` entry (an export: ``export.json``) with its networks run by ``runtime``."""
    folder = Path(folder)
    for _, kind in FOLDER_FORMATS.items():
        if (folder / kind.marker).is_file():
            return kind.load(folder, runtime, threads)
    if runtime != "torch":
        runtimes = ("torch", *dict.fromkeys(r for _, kind in FOLDER_FORMATS.items() for r in kind.runtimes if r != "torch"))
        if runtime not in runtimes:
            raise ExportError(f"unknown runtime {runtime!r}", f"use one of {', '.join(runtimes)}")
        raise ExportError(f"{folder} is a PyTorch detector, not an exported one: --runtime {runtime} needs an export",
                          f"export it first: exdd-lab export --model {folder} --format {runtime} --out EXPORTED_DIR, "
                          f"then score with --model EXPORTED_DIR --runtime {runtime}")
    for name, entry in METHODS.items():
        if entry.saved_as and (folder / entry.saved_as).is_file():
            try:
                return entry.load(folder)
            except ExddError:
                raise
            except Exception as exc:  # a truncated or damaged file: bad input, not a bug of the kit
                raise ExddError(f"the saved detector in {folder} cannot be read: {damaged_file(folder) or folder} is "
                                f"damaged or truncated ({type(exc).__name__}: {str(exc)[:200]})", REFIT) from exc
    files = " nor ".join(entry.saved_as for _, entry in METHODS.items() if entry.saved_as)
    raise ExddError(f"{folder} holds no saved detector (neither {files})", REFIT)


#: How to get a model, said wherever one is missing or damaged (every command that writes one).
REFIT = ("fit one with `exdd-lab fit --normals NORMALS --out MODEL` (or `exdd-lab evaluate ... --save-model MODEL`), "
         "or export a saved one with `exdd-lab export`")


def damaged_file(folder: Path) -> Path | None:
    """The first JSON or safetensors file of a saved detector's folder that does not parse, or ``None``."""
    import json

    from safetensors import safe_open

    for path in sorted(folder.rglob("*")):
        try:
            if path.suffix == ".json":
                json.loads(path.read_text())
            elif path.suffix == ".safetensors":
                with safe_open(str(path), "pt") as handle:
                    for key in handle.keys():
                        handle.get_slice(key)
        except Exception:
            return path
    return None


def build_method(name: str, features: FeatureConfig, options: dict) -> Detector:
    """The named method (a name of :data:`METHODS`), built from command-line style ``options``."""
    return METHODS[name].build(features, options)
