"""Detection methods behind one interface (``fit`` / ``predict``); see :mod:`exdd_lab.methods.base`."""
from exdd_lab.methods.base import Detector, Prediction
from exdd_lab.methods.patchcore import PatchCore, PatchCoreSettings

__all__ = ["Detector", "PatchCore", "PatchCoreSettings", "Prediction"]
