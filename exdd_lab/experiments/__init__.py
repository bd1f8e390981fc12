"""Experiments that run many evaluations and tell one story with them.

- :mod:`~exdd_lab.experiments.compare`: several methods on one split (``exdd-lab compare``, notebooks 05 and 06),
  with paired tests and the failure gallery;
- :mod:`~exdd_lab.experiments.count_sweep`: ExDD against the number of synthetic (or real) defects (notebook 07);
- :mod:`~exdd_lab.experiments.learning_curve`: the student–teacher's maps measured along one training run.

Never defines a metric, a method or a figure: it combines :mod:`exdd_lab.evaluation`, :mod:`exdd_lab.methods`
and :mod:`exdd_lab.plots`.
"""
