"""The asymmetric student-teacher (diffusion-made defects, frozen teacher, student + segmentation head).

- :mod:`~exdd_lab.student_teacher.network`: teacher, students (reverse distillation, image CNN), head, discrepancy;
- :mod:`~exdd_lab.student_teacher.designs`: the named designs ``--design`` picks (reverse, reverse-fine, image-encoder);
- :mod:`~exdd_lab.student_teacher.losses`: cosine feature loss, focal and Dice;
- :mod:`~exdd_lab.student_teacher.training`: data, seeded training loop, checkpoints and resume;
- :mod:`~exdd_lab.student_teacher.inference`: head and discrepancy grids.

Never loads data sets nor scores test splits: networks, losses and the training loop only.
The detector that wraps them for ``fit``/``predict`` is :class:`exdd_lab.methods.student_teacher.StudentTeacher`.
Taught in ``notebooks/05_student_teacher.ipynb``.
"""
from exdd_lab.student_teacher.inference import StudentTeacherGrids, anomaly_grids
from exdd_lab.student_teacher.losses import dice_loss, downsample_masks, feature_loss, focal_loss, joint_loss
from exdd_lab.student_teacher.network import (
    DEFAULT_TEACHER_LAYERS, ReverseStudent, SegmentationHead, Student, Teacher, cosine_discrepancy, count_parameters,
    head_inputs, student_maps,
)
from exdd_lab.student_teacher.training import (
    StudentTeacherConfig, StudentTeacherModel, TrainingData, build_networks, build_training_data, load_checkpoint,
    train_student_teacher,
)

__all__ = [
    "DEFAULT_TEACHER_LAYERS", "ReverseStudent", "SegmentationHead", "Student", "StudentTeacherConfig", "StudentTeacherGrids",
    "StudentTeacherModel", "Teacher", "TrainingData", "anomaly_grids", "build_networks", "build_training_data",
    "cosine_discrepancy", "count_parameters", "dice_loss", "downsample_masks", "feature_loss", "focal_loss",
    "head_inputs", "joint_loss", "load_checkpoint", "student_maps", "train_student_teacher",
]
