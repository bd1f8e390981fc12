"""Engines: how the shards of an archive run get scored. One registry, one signature, one result.

``run(shards, job, on_shard)`` scores every shard with a :class:`~exdd_lab.archive.worker.ShardScorer` built
from ``job`` and hands each finished shard's rows to ``on_shard`` (which writes it). ``local`` runs in this
process, decoding the next shards in background threads while the detector scores the current one; ``ray``
(:mod:`exdd_lab.archive.ray_engine`) runs the same scorer in Ray Data actors, on an embedded local Ray or on
a cluster. Both score the same shards with the same code, so their tables agree row for row.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, Sequence

from exdd_lab.archive.store import OnShard, Shard
from exdd_lab.archive.worker import ScoringJob
from exdd_lab.components.registry import Registry


class Engine(Protocol):
    """Score every shard with ``job``'s scorer and hand each one's rows to ``on_shard``."""

    def __call__(self, shards: Sequence[Shard], job: ScoringJob, on_shard: OnShard, **options) -> None: ...


ENGINES: Registry[Engine] = Registry("archive engine")


@ENGINES.register("local")
def run_local(shards: Sequence[Shard], job: ScoringJob, on_shard: OnShard, prefetch: int = 2, **_) -> None:
    """In this process: one detector; the next ``prefetch`` shards are decoded while the current one is scored."""
    scorer = job.scorer()
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead") as reader:
            pending = deque(reader.submit(scorer.decode, shard) for shard in shards[:prefetch])
            following = iter(shards[prefetch:])
            while pending:
                decoded = pending.popleft().result()
                nxt = next(following, None)
                if nxt is not None:
                    pending.append(reader.submit(scorer.decode, nxt))
                on_shard(decoded.shard, scorer.score(decoded))
    finally:
        scorer.close()


@ENGINES.register("ray")
def run_ray(shards: Sequence[Shard], job: ScoringJob, on_shard: OnShard, **options) -> None:
    """On Ray Data (:func:`exdd_lab.archive.ray_engine.score_on_ray`)."""
    from exdd_lab.archive.ray_engine import score_on_ray

    score_on_ray(shards, job, on_shard, **options)
