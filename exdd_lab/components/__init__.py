"""The pieces every method shares, written once.

- :mod:`~exdd_lab.components.frontend`: a frozen pretrained backbone with its input normalisation
  (PatchCore's and ExDD's patch features, the student-teacher's teacher).
- :mod:`~exdd_lab.components.checkpoints`: ``checkpoint-<step>`` files written atomically, with the
  optimizer and random-generator state for an exact resume (the DDPM, the student-teacher).
- :mod:`~exdd_lab.components.projection`: the seeded Gaussian random projection (features, coreset).
- :mod:`~exdd_lab.components.device`: the CUDA-or-CPU choice.
- :mod:`~exdd_lab.components.metric_names`: which metrics are the headline ones, in which order.
- :mod:`~exdd_lab.components.neighbours`: exact nearest-neighbour search (faiss), shared by the features'
  inspection, the synthesis' defect-likeness and the memory banks.
- :mod:`~exdd_lab.components.backbones`: backbone names and offline weights; :mod:`~exdd_lab.components.registry`:
  names registered once; :mod:`~exdd_lab.components.environment`: environment variables set for a block.

Never imports another subpackage of the kit: every floor above may use these pieces.
"""
