"""Evaluation: how good a detector is on a labelled split, how sure that is, and where it fails.

- :mod:`~exdd_lab.evaluation.metrics`: image / pixel AUROC, AUPRO, AP, F1, the normal-only threshold;
- :mod:`~exdd_lab.evaluation.uncertainty`: bootstrap intervals (stratified over images, cluster for pixels);
- :mod:`~exdd_lab.evaluation.paired_tests`: DeLong, paired bootstrap and Holm for two methods on the same images;
- :mod:`~exdd_lab.evaluation.run`: fit, predict, measure and write ``metrics.json`` / ``scores.csv``;
- :mod:`~exdd_lab.evaluation.results`: the tidy one-row-per-(image, method) table;
- :mod:`~exdd_lab.evaluation.failures`: failure ranking (false alarms, misses) and disagreements;
- :mod:`~exdd_lab.evaluation.published`: the papers' numbers beside the kit's, on the same split.

Never draws (figures are :mod:`exdd_lab.plots`) and never changes a detector: it calls ``fit`` / ``predict``.
"""
