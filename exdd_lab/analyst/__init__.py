"""The analyst's loop on their own images: a detector from a folder of normal images, then (later issues) review and
feedback.

- :mod:`~exdd_lab.analyst.fit`: ``exdd-lab fit`` — fit any method on normals alone (a folder, glob or list file; bad
  files recorded and skipped), the normal-only threshold from held-out normals at a chosen false-alarm rate, saved
  with the model and a short fit report.

Sits above the experiments (it builds methods as ``compare`` does) and the figures (the report's histogram); never
evaluates against labels: an analyst's normals have none.
"""
