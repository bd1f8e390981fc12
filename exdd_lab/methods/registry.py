"""Method names for the command line: ``--method NAME`` builds a detector from common options."""
from __future__ import annotations

from typing import Callable

from exdd_lab.features import FeatureConfig
from exdd_lab.methods.base import Detector
from exdd_lab.methods.patchcore import PatchCore, PatchCoreSettings


def build_patchcore(features: FeatureConfig, options: dict) -> Detector:
    return PatchCore(features, PatchCoreSettings(
        coreset_ratio=options.get("coreset", 0.01), seed=options.get("seed", 0),
        image_score=options.get("image_score") or PatchCoreSettings.image_score, sigma=options.get("sigma", 4.0),
        coreset_method=options.get("coreset_method", "two-stage")))


def build_exdd(features: FeatureConfig, options: dict) -> Detector:
    from exdd_lab.methods.exdd import ExDD, ExddSettings

    settings = ExddSettings(seed=options.get("seed", 0), sigma=options.get("sigma", 4.0),
                            negative_ratio=options.get("coreset", 0.01),
                            image_score=options.get("exdd_image_score", ExddSettings.image_score),
                            score=options.get("exdd_score", ExddSettings.score),
                            positive_patches=options.get("positive_patches", "masked"),
                            min_mask_fraction=options.get("min_mask_fraction", 0.9))
    detector = ExDD(features, settings, defects=options.get("defects", ()))
    detector.synthesis_info = options.get("synthesis_info", {})
    return detector


def build_student_teacher(features: FeatureConfig, options: dict) -> Detector:
    from exdd_lab.methods.student_teacher import StudentTeacher, StudentTeacherSettings
    from exdd_lab.student_teacher import StudentTeacherConfig

    defaults = StudentTeacherConfig()
    config = StudentTeacherConfig(backbone=features.backbone, weights=features.weights, image_size=features.image_size,
                                  epochs=options.get("epochs") or defaults.epochs, seed=options.get("seed", 0))
    settings = StudentTeacherSettings(generator=options.get("generator", "ddpm"),
                                      n_synthetic=options.get("n_synthetic") or StudentTeacherSettings.n_synthetic,
                                      model_dir=options.get("model_dir"), map_source=options.get("map_source", StudentTeacherSettings.map_source),
                                      sigma=options.get("sigma", 4.0))
    return StudentTeacher(config, settings, defects=options.get("defect_set"))


METHODS: dict[str, Callable[[FeatureConfig, dict], Detector]] = {
    "patchcore": build_patchcore, "exdd": build_exdd, "student-teacher": build_student_teacher}


def load_detector(folder) -> Detector:
    """A detector saved with ``save(folder)`` (ExDD or student-teacher), whichever the folder holds."""
    from pathlib import Path

    from exdd_lab.errors import ExddError

    folder = Path(folder)
    if (folder / "exdd.json").is_file():
        from exdd_lab.methods.exdd import ExDD

        return ExDD.load(folder)
    if (folder / "student_teacher.json").is_file():
        from exdd_lab.methods.student_teacher import StudentTeacher

        return StudentTeacher.load(folder)
    raise ExddError(f"{folder} holds no saved detector (neither exdd.json nor student_teacher.json)",
                    "save one with `exdd-lab evaluate --method exdd|student-teacher --save-model DIR`")


def build_method(name: str, features: FeatureConfig, options: dict) -> Detector:
    if name not in METHODS:
        from exdd_lab.errors import ExddError

        raise ExddError(f"unknown method {name!r}", f"choose one of {', '.join(sorted(METHODS))}")
    return METHODS[name](features, options)
