"""``score_archive``: a saved detector over an archive of any size, streaming, resumable, on either engine.

The one function behind ``exdd-lab score`` and notebook 08. Memory stays flat however many images there
are (shards of ``shard_size`` images are decoded, scored, reduced to table rows and written), nothing is
kept per image beyond its rows (no feature cache), and the run can be interrupted at any point: the same
call on the same ``out`` scores only the shards that are missing, and after new images arrive, only those.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from exdd_lab.archive.engines import ENGINES
from exdd_lab.archive.inputs import InputSpec, list_inputs, resolve_inputs
from exdd_lab.archive.store import ArchiveStore, Counts, Shard
from exdd_lab.archive.worker import ScoringJob
from exdd_lab.data.imageio import IMAGE_SUFFIXES
from exdd_lab.errors import DatasetError, ExddError, Interrupted, Terminated

#: Images per shard: a unit of work, of resume and of output file (about 64 x 0.25 MB of maps in memory).
DEFAULT_SHARD_SIZE = 64


@dataclass
class ArchiveSummary:
    """What a run did: counts over the whole output folder, this run's share, and where to look."""

    out: Path
    counts: Counts
    scored_now: int  # files this run processed (scored, failed or skipped)
    new_inputs: int
    seconds: float
    engine: str
    where: str
    threshold: float | None
    threshold_source: str
    files: dict = field(default_factory=dict)
    runtime_note: str = ""  # which runtime ran the front-end, and why (exdd_lab.export.accelerate)
    failed_now: int = 0     # files of this run that could not be scored (earlier runs' failures are not counted again)
    flags: dict = field(default_factory=dict)  # {folder: [flagged, scored]} over the whole table, with a threshold
    seconds_total: float = 0.0  # the whole call: loading the model and listing the inputs included
    peak_rss_mb: float = 0.0

    @property
    def ok(self) -> bool:
        """Every file of this run was scored (or skipped as not an image) and none is pending."""
        return self.failed_now == 0 and self.counts.pending == 0

    def lines(self) -> list[str]:
        c = self.counts
        rate = self.scored_now / self.seconds if self.seconds > 0 else 0.0
        per_image = (f"; {1000 * self.seconds / self.scored_now:.0f} ms per file, "
                     f"{1000 * self.seconds_total / self.scored_now:.0f} ms with start-up" if self.scored_now else "")
        earlier = c.failed - self.failed_now
        out = [f"processed {self.scored_now} files in {self.seconds:.1f} s ({rate:.1f} files/s{per_image}) with the "
               f"{self.where}; peak memory {self.peak_rss_mb:.0f} MB",
               f"{self.out}: {c.scored} scored, {c.failed} failed ({self.failed_now} in this run"
               f"{f', {earlier} in earlier runs' if earlier else ''}), {c.skipped} skipped (not image files), "
               f"{c.pending} pending",
               f"threshold: {self.threshold_source}"]
        if self.flags:
            flagged = sum(f for f, _ in self.flags.values())
            out.append(f"flagged: {flagged} of {c.scored} scored images")
            shown = sorted(self.flags.items())
            out += [f"  {folder}: {f} of {n} flagged" for folder, (f, n) in shown[:20]]
            if len(shown) > 20:
                out.append(f"  ... and {len(shown) - 20} more folders (scores.csv has every image)")
        if self.runtime_note:
            out.append(f"front-end: {self.runtime_note}")
        if c.failed or c.skipped:
            out.append(f"failed and skipped files, with the reason for each: {self.files['errors']}")
        out.append(f"tables: {self.out / 'shards'} (Parquet, one row per file), {self.files['scores']} (scored images)")
        return out


def resolve_threshold(threshold: float | None, detector_threshold: dict | None) -> tuple[float | None, str]:
    """The decision threshold and where it came from: ``--threshold``, else the one saved with the model."""
    if threshold is not None:
        return float(threshold), f"{threshold:.6g} (--threshold)"
    if detector_threshold:
        t = detector_threshold
        how = (f"at most {t['promised_false_alarm_rate']:.2%} false alarms with {t['confidence']:.0%} confidence, from "
               f"{t.get('held_out')} held-out normals of {t.get('dataset')}" if t.get("promised_false_alarm_rate") is not None
               else f"{t.get('quantile')} quantile of held-out normals of {t.get('dataset')}")  # models fitted before the guarantee
        return float(t["value"]), f"{t['value']:.6g}, the model's saved {t.get('kind', 'normal_only')} threshold ({how})"
    return None, ("none: no --threshold and the model carries no saved threshold (it was evaluated without held-out "
                  "normals), so the decision column is empty; pass --threshold (e.g. f1_threshold of metrics.json)")


def score_archive(model: str | Path, images: str | Path, out: str | Path, engine: str = "local",
                  threshold: float | None = None, shard_size: int = DEFAULT_SHARD_SIZE, save_maps: bool = False,
                  map_size: int = 64, overwrite: bool = False, workers: int | None = None, address: str | None = None,
                  threads: int | None = None, progress: bool = True, runtime: str = "torch") -> ArchiveSummary:
    """Score every file of ``images`` (folder, glob or list file) with the detector saved in ``model`` into ``out``.

    ``engine``: ``local`` (this process) or ``ray`` (``workers`` actors; ``address`` joins a cluster, else an
    embedded local Ray is started). ``runtime``: ``auto`` (the fastest runtime installed, its graph traced once and
    cached: :mod:`exdd_lab.export.accelerate`), ``torch``, ``onnx`` or ``openvino`` (for a folder made by
    ``exdd-lab export``, its own graph). Returns an :class:`ArchiveSummary`; ``summary.ok`` is False when any file
    failed. Raises :class:`~exdd_lab.errors.ExddError` for a missing model, missing inputs, or an ``out`` that
    holds another model's results (unless ``overwrite``)."""
    from exdd_lab.evaluation.run import peak_rss_mb
    from exdd_lab.export.accelerate import load_for_scoring
    from exdd_lab.methods.persistence import kit_version, model_fingerprint

    called = time.perf_counter()

    ENGINES.check(engine)
    if shard_size < 1:
        raise ExddError(f"shard size {shard_size} is not positive", "use at least 1 image per shard (default 64)")
    model = Path(model)
    detector, acceleration = load_for_scoring(model, runtime)  # also the clear error for a folder that holds no detector
    spec: InputSpec = resolve_inputs(images)
    value, source = resolve_threshold(threshold, getattr(detector, "threshold", None))
    identity = {"model": str(model.resolve()), "model_fingerprint": model_fingerprint(model), "method": detector.name,
                "settings": detector.describe(), "runtime": runtime, "kit_version": kit_version(), "threshold": value,
                "threshold_source": source, "inputs": spec.to_dict(), "save_maps": save_maps,
                "map_size": map_size if save_maps else None}
    input_size = detector.input_size
    del detector
    inputs = list_inputs(spec, exclude=Path(out))  # listed before anything is written: nothing to score writes nothing
    if not any(Path(path).suffix.lower() in IMAGE_SUFFIXES for path, _ in inputs):
        endings = sorted({Path(path).suffix.lower() or "no ending" for path, _ in inputs})
        raise DatasetError(f"nothing to score: the {len(inputs)} files of {spec.describe()} are not images "
                           f"({', '.join(endings[:6])})", "point --images at the folder, glob or list of the images")
    store = ArchiveStore.open(out, identity, overwrite=overwrite)
    store.write_manifest(store.counts(), shard_size=shard_size, input_size=input_size, engine=engine)  # before any shard
    shards, new_inputs = store.plan(inputs, shard_size)
    del inputs
    pending = sum(len(s) for s in shards)
    counts = store.counts(pending)
    store.write_manifest(counts)
    job = ScoringJob(str(model.resolve()), value, str(store.map_folder) if save_maps else None, map_size, threads,
                     runtime=runtime)
    bar = tqdm(total=pending, unit="img", desc="score", disable=not progress or not pending, smoothing=0.1)

    failed_now = 0

    def on_shard(shard: Shard, table) -> None:
        nonlocal failed_now
        store.write_shard(shard.shard, table)
        counts.add(table)
        failed_now += table.column("status").to_pylist().count("failed")
        counts.pending -= len(shard)
        store.write_manifest(counts)
        bar.update(len(shard))

    where: list[str] = []
    start = time.perf_counter()
    try:
        ENGINES[engine](shards, job, on_shard, workers=workers, address=address, describe=where)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM as the command line turns it into one: finished shards stay
        raise Interrupted(pending - counts.pending, pending, isinstance(exc, Terminated)) from None
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    counts = store.counts(pending=sum(len(s) for s in shards if s.shard not in store.done_shards()))
    flags: dict[str, list[int]] = {}
    scores_csv, errors_csv = store.merge(value, flags if value is not None else None)
    store.write_manifest(counts, last_run={"engine": engine, "seconds": round(seconds, 2), "scored": pending,
                                           "new_inputs": new_inputs, "runtime": acceleration.runtime})
    return ArchiveSummary(store.out, counts, pending, new_inputs, seconds, engine,
                          where[0] if where else "local engine (this process)", value, source,
                          {"scores": scores_csv, "errors": errors_csv}, acceleration.note, failed_now, flags,
                          time.perf_counter() - called, peak_rss_mb())
