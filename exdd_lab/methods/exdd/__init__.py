"""ExDD (explicit dual distribution): the detector and its positive side.

- :mod:`~exdd_lab.methods.exdd.detector`: :class:`ExDD` — a normal bank, a defect bank, the score between them;
- :mod:`~exdd_lab.methods.exdd.ratio`: the ratio and the kit's gated score (pure functions);
- :mod:`~exdd_lab.methods.exdd.positive_patches`: which patches of the defect images enter the positive bank;
- :mod:`~exdd_lab.methods.exdd.patch_sources`: where each bank item came from, to show a match to a person.

Never makes defects (:mod:`exdd_lab.synthesis` does) nor evaluates them (:mod:`exdd_lab.evaluation`).
"""
from exdd_lab.methods.exdd.detector import IMAGE_SCORES, VARIANTS, ExDD, ExddSettings, variant_grid

__all__ = ["IMAGE_SCORES", "VARIANTS", "ExDD", "ExddSettings", "variant_grid"]
