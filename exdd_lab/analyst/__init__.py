"""The analyst's loop on their own images: a detector from a folder of normal images, the review of
what it flagged, and the verdicts taught back.

- :mod:`~exdd_lab.analyst.fit`: ``exdd-lab fit`` — fit any method on normals alone (a folder, glob or list file; bad
  files recorded and skipped), the normal-only threshold from held-out normals at a chosen false-alarm rate, saved
  with the model and a short fit report; ``--reviews`` adds the reviewed normals;
- :mod:`~exdd_lab.analyst.reviews`: verdicts (defect / normal / unsure) in ``reviews.csv``, written atomically;
- :mod:`~exdd_lab.analyst.review_queue`: an archive run's images by score, filtered, judged, with per-folder flag counts;
- :mod:`~exdd_lab.analyst.review_widget`: that queue as a JupyterLab widget with keyboard shortcuts.

Sits above the experiments (it builds methods as ``compare`` does) and the figures (the report's histogram); never
evaluates against labels: an analyst's normals have none.
"""
