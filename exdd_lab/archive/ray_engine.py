"""The ``ray`` engine: the archive's shards through Ray Data, on one machine or a cluster.

Path list -> ``ray.data.from_items`` (built in the driver: no read stage that could wait for a CPU the actors
hold) -> ``map_batches`` with an actor class that loads the detector once per worker -> each shard's rows
streamed back to the driver, which writes the shard files (workers need to read the images, never to write
the output folder). A worker that dies is replaced by Ray and its shard retried; the driver writes each shard
once, so every image appears exactly once.

Without ``address`` an embedded local Ray is started for the run and stopped after it. Three traps of Ray on
a single machine are handled here: Ray rewrites ``127.0.0.1`` to the machine's network address, so the
embedded Ray listens on ``127.0.0.2`` (loopback only); usage statistics are switched off
(``RAY_USAGE_STATS_ENABLED=0``: nothing may try to reach the internet); and a local ``ray.init()`` would
write an authentication token to ``~/.ray/auth_token`` that later makes clusters started with ``ray start``
refuse the user's drivers, so the embedded Ray gets a one-off token through the environment instead.
"""
from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
from dataclasses import asdict
from typing import Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from exdd_lab.archive.store import OnShard, Shard
from exdd_lab.archive.worker import ScoringJob
from exdd_lab.components.environment import temporary_environment
from exdd_lab.errors import ExddError

#: The loopback address the embedded Ray listens on (not 127.0.0.1, which Ray rewrites to the network address).
EMBEDDED_ADDRESS = "127.0.0.2"
#: Object store of the embedded Ray: the engine moves only path lists and result rows through it.
EMBEDDED_OBJECT_STORE_BYTES = 128 * 2**20
START_CLUSTER_HINT = ("start a cluster with `ray start --head --node-ip-address=HOST --port=6379` (and "
                      "`ray start --address=HOST:6379` on every other machine), or drop --address to let the "
                      "command start a local Ray for the run")


def quiet_ray_environment() -> None:
    """What every Ray this kit starts or joins gets: no usage statistics, no progress spam in logs."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"


def check_reachable(address: str, timeout: float = 3.0) -> None:
    """Fail within ``timeout`` seconds, naming the address and how to start a cluster, when nothing listens."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ExddError(f"--address {address!r} is not HOST:PORT", f"give the head node's address, e.g. 127.0.0.2:6379; {START_CLUSTER_HINT}")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ExddError(f"no Ray cluster answers at {address} ({exc.strerror or exc})", START_CLUSTER_HINT) from None


@contextlib.contextmanager
def ray_session(address: str | None, num_cpus: int) -> Iterator[str]:
    """Join the cluster at ``address``, or start an embedded local Ray with ``num_cpus`` CPUs, and shut down what
    was started here afterwards. A process that already called ``ray.init()`` (a notebook that joined a cluster)
    is used as it is and left connected. Yields a description for the summary."""
    quiet_ray_environment()
    import ray
    from ray.exceptions import AuthenticationError

    if ray.is_initialized() and not address:
        yield "Ray this process had already joined"
        return
    if ray.is_initialized():
        ray.shutdown()
    if address:
        check_reachable(address)
        try:
            ray.init(address=address, log_to_driver=False, logging_level="ERROR", configure_logging=False)
        except (AuthenticationError, ConnectionError, RuntimeError) as exc:
            raise _join_error(address, exc) from None
        description = f"Ray cluster at {address}"
        try:
            yield description
        finally:
            ray.shutdown()
        return
    with temporary_environment({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}):
        _reload_ray_config()
        ray.init(_node_ip_address=EMBEDDED_ADDRESS, num_cpus=num_cpus, include_dashboard=False,
                 object_store_memory=EMBEDDED_OBJECT_STORE_BYTES, log_to_driver=False, logging_level="ERROR",
                 configure_logging=False)
        try:
            yield f"embedded local Ray on {EMBEDDED_ADDRESS} ({num_cpus} CPUs)"
        finally:
            ray.shutdown()
    _reload_ray_config()


def _join_error(address: str, exc: BaseException) -> ExddError:
    """Why joining ``address`` failed, in words: a refused authentication token (Ray wraps it in a
    ConnectionError) gets its own explanation and fix."""
    chain, seen = [], exc
    while seen is not None:
        chain.append(f"{type(seen).__name__}: {seen}")
        seen = seen.__cause__ or seen.__context__
    text = " <- ".join(chain)
    if any(word in text for word in ("InvalidAuthToken", "Unauthenticated", "AuthenticationError")):
        return ExddError(
            f"the Ray cluster at {address} refused this driver's authentication token",
            "give the driver the cluster's token (RAY_AUTH_TOKEN=... or RAY_AUTH_TOKEN_PATH=FILE). If the cluster runs "
            "without tokens, a token left in ~/.ray/auth_token by an earlier local `ray.init()` is the cause: run with "
            "RAY_AUTH_MODE=disabled, or remove that file")
    return ExddError(f"cannot join the Ray cluster at {address} ({text[:300]})", START_CLUSTER_HINT)


def _reload_ray_config() -> None:
    """Make an already imported Ray read ``RAY_AUTH_MODE`` again (it caches its configuration at import)."""
    with contextlib.suppress(ImportError, AttributeError):
        from ray._raylet import Config

        Config.initialize("")


class RayShardScorer:
    """The Ray Data actor: one :class:`~exdd_lab.archive.worker.ShardScorer` per worker, one shard per call."""

    def __init__(self, job: dict) -> None:
        self.scorer = ScoringJob(**job).scorer()

    def __call__(self, batch: pa.Table) -> pa.Table:
        tables = [self.scorer(Shard(int(row["shard"]), list(row["indices"]), list(row["paths"]), list(row["relative_paths"])))
                  for row in batch.to_pylist()]
        return pa.concat_tables(tables)


def default_workers(address: str | None) -> int:
    """One worker per CPU: of this machine for the embedded Ray, of the whole cluster when joining one."""
    if address:
        import ray

        return max(1, int(ray.cluster_resources().get("CPU", 1)))
    return os.cpu_count() or 1


def score_on_ray(shards: Sequence[Shard], job: ScoringJob, on_shard: OnShard, workers: int | None = None,
                 address: str | None = None, cpus_per_worker: int = 1, describe: list | None = None, **_) -> None:
    """Score ``shards`` with ``workers`` actors of ``cpus_per_worker`` CPUs (each pinned to that many threads)."""
    if not shards:
        return
    n = workers or (os.cpu_count() or 1)
    with ray_session(address, num_cpus=n * cpus_per_worker) as where:
        import ray

        if address and workers is None:
            n = max(1, default_workers(address) // cpus_per_worker)
        if describe is not None:
            describe.append(f"{where}, {n} workers x {cpus_per_worker} CPU")
        logging.getLogger("ray.data").setLevel(logging.ERROR)  # the kit's own bar shows the progress
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.execution_options.preserve_order = False
        items = [{"shard": s.shard, "indices": s.indices, "paths": s.paths, "relative_paths": s.relative_paths} for s in shards]
        dataset = ray.data.from_items(items, override_num_blocks=len(items))
        pinned = asdict(job) | {"threads": cpus_per_worker}
        results = dataset.map_batches(RayShardScorer, fn_constructor_kwargs={"job": pinned}, batch_size=1,
                                      batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=n),
                                      num_cpus=cpus_per_worker, max_restarts=-1, max_task_retries=-1)
        expected = {s.shard: s for s in shards}
        parts: dict[int, list[pa.Table]] = {}
        for batch in results.iter_batches(batch_size=None, batch_format="pyarrow"):
            for shard_id in sorted(set(batch.column("shard").to_pylist())):
                rows = batch.filter(pc.equal(batch.column("shard"), shard_id))
                parts.setdefault(shard_id, []).append(rows)
                table = pa.concat_tables(parts[shard_id])
                if shard_id in expected and table.num_rows >= len(expected[shard_id]):
                    on_shard(expected.pop(shard_id), _unique_rows(table))
                    parts.pop(shard_id)
        if expected:
            raise ExddError(f"the Ray run ended with {len(expected)} shards unscored", "run the same command again: "
                            "it resumes and scores only what is missing")


def _unique_rows(table: pa.Table) -> pa.Table:
    """One row per input index (a retried shard may have been delivered twice)."""
    if len(set(table.column("index").to_pylist())) == table.num_rows:
        return table
    seen, keep = set(), []
    for i, index in enumerate(table.column("index").to_pylist()):
        if index not in seen:
            seen.add(index)
            keep.append(i)
    return table.take(keep)
