"""Detection methods behind one interface (``fit`` / ``predict``); see :mod:`exdd_lab.methods.base`.

- :mod:`~exdd_lab.methods.patchcore`: the negative-only baseline (kNN on a coreset bank);
- :mod:`~exdd_lab.methods.exdd`: ExDD with its positive side (defect bank, ratio, positive patches, patch sources);
- :mod:`~exdd_lab.methods.student_teacher`: the student–teacher detector around :mod:`exdd_lab.student_teacher`;
- :mod:`~exdd_lab.methods.registry`: methods by name (``--method``), ``load_detector`` and the folder formats
  that layers above register (exports); :mod:`~exdd_lab.methods.persistence`: what a saved detector says about itself.

Never owns a metric (:mod:`exdd_lab.evaluation`) nor an export (:mod:`exdd_lab.export` registers its loader here).
"""
from exdd_lab.methods.base import Detector, Prediction
from exdd_lab.methods.patchcore import PatchCore, PatchCoreSettings

__all__ = ["Detector", "PatchCore", "PatchCoreSettings", "Prediction"]
