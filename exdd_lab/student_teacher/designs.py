"""Named student–teacher designs: the configuration fields that make each one (``--design`` on the command line).

- ``reverse`` (the default, :class:`~exdd_lab.student_teacher.training.StudentTeacherConfig`'s own fields): reverse
  distillation (Deng & Li, CVPR 2022; :class:`~exdd_lab.student_teacher.network.ReverseStudent`): a one-class
  bottleneck and a decoder rebuild the teacher's maps at strides 16 and 32 from those maps themselves, the
  discrepancy averaged over 3 x 3 cells; a step costs a small decoder on cached maps, so 64 epochs of batch 16
  take about 3 minutes for MTD on 2 cores;
- ``reverse-fine``: the same on strides 8 and 16: for small, sharp defects (MPDD, the procedural default), not for
  large low-contrast ones on a fine texture (MTD: about 0.10 pixel AUROC lower). No rule without test labels was
  found that picks between the two (benchmarks/README.md, "Student–teacher designs"), so the default is the one
  whose worst shortfall against PatchCore over the four measured data sets is smallest;
- ``image-encoder``: the kit's first design, a plain CNN student over the image predicting the teacher's maps at
  strides 8 and 16 (6 epochs of batch 8, about 5 minutes): kept to compare with (0.14 pixel AUROC below reverse
  distillation on MTD).
"""
from __future__ import annotations

from exdd_lab.components.registry import Registry

#: design name -> StudentTeacherConfig fields (the first registered is the default).
DESIGNS: Registry[dict] = Registry("student-teacher design")
DESIGNS.register("reverse")({"student": "reverse", "teacher_layers": (3, 4), "neighbourhood": 3, "student_width": 64,
                             "bottleneck": 128, "epochs": 64, "batch_size": 16})
DESIGNS.register("reverse-fine")({**DESIGNS["reverse"], "teacher_layers": (2, 3)})
DESIGNS.register("image-encoder")({"student": "encoder", "teacher_layers": (2, 3), "neighbourhood": 1,
                                   "student_width": 32, "epochs": 6, "batch_size": 8})
DEFAULT_DESIGN = DESIGNS.names()[0]


def design_fields(name: str | None) -> dict:
    """The configuration fields of design ``name`` (the default design when ``None``); an unknown name is refused."""
    return dict(DESIGNS[name or DEFAULT_DESIGN])
