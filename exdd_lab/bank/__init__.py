"""Memory banks: a set of patch features, subsampled, searched, and turned into maps and scores.

- :mod:`~exdd_lab.bank.memory`: :class:`~exdd_lab.bank.memory.MemoryBank` — add, coreset, search, save and load;
- :mod:`~exdd_lab.bank.coreset`: greedy k-center coreset selection (exact, two-stage, grouped at scale);
- :mod:`~exdd_lab.bank.index`: how a bank is searched (``flat`` exact, ``ivf``, ``hnsw``), one strategy each;
- :mod:`~exdd_lab.bank.scoring`: nearest-neighbour distances -> anomaly maps and image scores (pure functions);
- :mod:`~exdd_lab.bank.search_cost`: what search costs as a bank grows (notebook 02, the cost benchmark).

Never knows what its patches mean (normal or defect) nor where they came from: that is the methods' business.
"""
