"""Scoring an archive of any size with a saved detector: streaming, resumable, on one machine or a Ray cluster.

Inputs, decoding, shards, the engines (local | Ray), the Parquet store. Never fits a detector nor needs labels.

Taught in ``notebooks/08_scoring_an_archive.ipynb``; ``exdd-lab score`` is :func:`score_archive`.
"""
from exdd_lab.archive.engines import ENGINES
from exdd_lab.archive.inputs import InputSpec, list_inputs, resolve_inputs
from exdd_lab.archive.scorer import ArchiveSummary, score_archive
from exdd_lab.archive.store import ArchiveStore, compare_results, read_results
from exdd_lab.archive.worker import ScoringJob

__all__ = ["ENGINES", "ArchiveStore", "ArchiveSummary", "InputSpec", "ScoringJob", "compare_results", "list_inputs",
           "read_results", "resolve_inputs", "score_archive"]
