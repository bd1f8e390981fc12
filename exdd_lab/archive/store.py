"""An archive run's output folder: the input list, Parquet shards, the manifest, and the merged tables.

::

    OUT/manifest.json        model fingerprint, method and settings, kit version, threshold, input spec, counts
    OUT/inputs.parquet       every input (index, shard, path, relative path), fixed at the start of each run
    OUT/shards/shard-000042.parquet   one row per input of shard 42 (scores or the reason it failed)
    OUT/scores.csv           merged at the end: today's columns (image_path, score, peak_y, peak_x[, defect])
    OUT/errors.csv           every failed or skipped file with its reason
    OUT/maps/...             with --save-maps: a small uint8 PNG of each scored image's anomaly map

Every file is written atomically, a shard only once all its rows exist: a shard file on disk is done, so a
resumed run (after any interruption, SIGKILL included) scores exactly the shards that are missing, and
nothing is ever half-written. A run on new inputs appends them as new shards; done shards are never touched.
"""
from __future__ import annotations

import csv
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from exdd_lab.errors import ExddError
from exdd_lab.storage import atomic_path, atomic_write, atomic_write_json

MANIFEST_FORMAT = "exdd_lab-archive"
#: Everything an archive run writes into its folder (and so all that --overwrite may delete).
ARCHIVE_ENTRIES = frozenset({"manifest.json", "inputs.parquet", "shards", "maps", "scores.csv", "errors.csv"})
#: What an analyst adds to a run folder and a later run must neither refuse nor delete (the review's verdicts).
KEPT_ENTRIES = frozenset({"reviews.csv"})
MANIFEST_VERSION = 1

#: One row per input file. Peaks are in anomaly-map pixels (the model's input size, as ``scores.csv`` always
#: had them); ``map_min``/``peak_value`` undo a saved map's uint8 scaling; ``decision`` is null without a threshold.
ROW_SCHEMA = pa.schema([
    ("index", pa.int64()), ("shard", pa.int64()), ("path", pa.string()), ("relative_path", pa.string()),
    ("status", pa.string()), ("error", pa.string()), ("score", pa.float64()), ("decision", pa.int8()),
    ("peak_y", pa.int32()), ("peak_x", pa.int32()), ("peak_value", pa.float64()), ("map_min", pa.float64()),
    ("image_height", pa.int32()), ("image_width", pa.int32()), ("file_size", pa.int64()), ("mtime", pa.float64()),
    ("map_file", pa.string()),
])
INPUT_SCHEMA = pa.schema([("index", pa.int64()), ("shard", pa.int64()), ("path", pa.string()),
                          ("relative_path", pa.string())])


@dataclass
class Shard:
    """The inputs of one shard: what an engine scores as one unit and writes as one file."""

    shard: int
    indices: list[int]
    paths: list[str]
    relative_paths: list[str]

    def __len__(self) -> int:
        return len(self.paths)


#: What an engine calls with each finished shard's rows (the scorer writes them to the store).
OnShard = Callable[[Shard, pa.Table], None]


@dataclass
class Counts:
    scored: int = 0
    failed: int = 0
    skipped: int = 0
    pending: int = 0

    def add(self, table: pa.Table) -> None:
        status = table.column("status").to_pylist()
        self.scored += status.count("scored")
        self.failed += status.count("failed")
        self.skipped += status.count("skipped")

    def to_dict(self) -> dict:
        return {"done": self.scored, "failed": self.failed, "skipped": self.skipped, "pending": self.pending}


def shard_name(shard: int) -> str:
    return f"shard-{shard:06d}.parquet"


@dataclass
class ArchiveStore:
    """The output folder of one model's archive run. Open it with :meth:`open`."""

    out: Path
    manifest: dict = field(default_factory=dict)

    @property
    def shard_folder(self) -> Path:
        return self.out / "shards"

    @property
    def map_folder(self) -> Path:
        return self.out / "maps"

    @classmethod
    def open(cls, out: str | Path, identity: dict, overwrite: bool = False) -> ArchiveStore:
        """The store at ``out`` for results that ``identity`` describes (model fingerprint, method, settings,
        threshold, input spec). An ``out`` holding another model's results, other inputs or another threshold
        is refused with the fix, unless ``overwrite`` (which deletes those results, and only what an archive run
        writes). A folder holding anything else is always refused: ``--overwrite`` never deletes a user's files."""
        out = Path(out)
        store = cls(out)
        if out.exists() and not out.is_dir():
            raise ExddError(f"--out {out} is a file", "give a folder for the results")
        foreign = sorted(p.name for p in out.iterdir()
                         if p.name not in ARCHIVE_ENTRIES | KEPT_ENTRIES and not p.name.startswith(".")) \
            if out.is_dir() else []
        if foreign:
            raise ExddError(f"--out {out} holds files that are not an archive run's ({', '.join(foreign[:5])}"
                            f"{', ...' if len(foreign) > 5 else ''})", "score into a new or empty folder")
        manifest_file = out / "manifest.json"
        old = json.loads(manifest_file.read_text()) if manifest_file.is_file() else None
        clash = _clash(old, identity) if old is not None else (
            "an archive run that stopped before writing its manifest" if out.is_dir() and any(out.iterdir()) else None)
        if clash and not overwrite:
            raise ExddError(f"--out {out} holds the results of {clash}",
                            "score into a new folder, or pass --overwrite to delete those results first")
        if clash:
            store.clear()
        elif old is not None:
            store.manifest = old
        out.mkdir(parents=True, exist_ok=True)
        store.manifest = {**store.manifest, **identity, "format": MANIFEST_FORMAT, "format_version": MANIFEST_VERSION}
        return store

    def clear(self) -> None:
        """Delete what earlier runs wrote (``--overwrite``): only the archive run's own files and folders."""
        for child in self.out.iterdir():
            if child.name in ARCHIVE_ENTRIES or child.name.startswith("."):
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()

    # ------------------------------------------------------------------ inputs and shards
    def plan(self, inputs: list[tuple[str, str]], shard_size: int) -> tuple[list[Shard], int]:
        """Record the input list (the previous run's, plus new paths appended as new shards) and return the
        shards still to score and the number of inputs seen for the first time."""
        known = pq.read_table(self.out / "inputs.parquet") if (self.out / "inputs.parquet").is_file() else INPUT_SCHEMA.empty_table()
        seen = set(known.column("path").to_pylist())
        new = [(p, r) for p, r in inputs if p not in seen]
        del seen
        if new:
            start = len(known)
            first_shard = (max(known.column("shard").to_pylist()) + 1) if len(known) else 0
            added = pa.table({"index": list(range(start, start + len(new))),
                              "shard": [first_shard + i // shard_size for i in range(len(new))],
                              "path": [p for p, _ in new], "relative_path": [r for _, r in new]}, schema=INPUT_SCHEMA)
            known = pa.concat_tables([known, added])
            with atomic_path(self.out / "inputs.parquet") as tmp:
                pq.write_table(known, tmp)
        done = self.done_shards()
        shards: dict[int, Shard] = {}
        for index, shard, path, rel in zip(*(known.column(c).to_pylist() for c in INPUT_SCHEMA.names)):
            if shard not in done:
                shards.setdefault(shard, Shard(shard, [], [], [])).indices.append(index)
                shards[shard].paths.append(path)
                shards[shard].relative_paths.append(rel)
        self.manifest["n_inputs"] = len(known)
        return [shards[k] for k in sorted(shards)], len(new)

    def done_shards(self) -> set[int]:
        if not self.shard_folder.is_dir():
            return set()
        return {int(p.stem.split("-")[1]) for p in self.shard_folder.glob("shard-*.parquet")}

    def write_shard(self, shard: int, table: pa.Table) -> None:
        """One shard's rows, sorted by input index, atomically (a shard already on disk is left as it is)."""
        target = self.shard_folder / shard_name(shard)
        if target.exists():
            return
        table = table.cast(ROW_SCHEMA).sort_by("index")
        with atomic_path(target) as tmp:
            pq.write_table(table, tmp)

    def iter_shards(self, columns: list[str] | None = None) -> Iterator[pa.Table]:
        for path in sorted(self.shard_folder.glob("shard-*.parquet")) if self.shard_folder.is_dir() else []:
            yield pq.read_table(path, columns=columns)

    def counts(self, pending: int = 0) -> Counts:
        counts = Counts(pending=pending)
        for table in self.iter_shards(["status"]):
            counts.add(table)
        return counts

    def write_manifest(self, counts: Counts, **extra) -> None:
        self.manifest.update(extra, counts=counts.to_dict())
        atomic_write_json(self.out / "manifest.json", self.manifest)

    # ------------------------------------------------------------------ merged tables
    def merge(self, threshold: float | None, flags: dict[str, list[int]] | None = None) -> tuple[Path, Path]:
        """``scores.csv`` (today's columns, scored images only, in input order) and ``errors.csv`` (every failed
        or skipped file with its reason), streamed shard by shard: memory stays flat however many shards.
        ``flags``, when given, is filled with ``{folder: [flagged, scored]}`` (a folder: the parent of an image's
        relative path, ``.`` for the top)."""
        scores_csv, errors_csv = self.out / "scores.csv", self.out / "errors.csv"
        with atomic_write(scores_csv, "w") as scores_handle, atomic_write(errors_csv, "w") as errors_handle:
            scores = csv.writer(scores_handle)
            errors = csv.writer(errors_handle)
            scores.writerow(["image_path", "score", "peak_y", "peak_x"] + (["defect"] if threshold is not None else []))
            errors.writerow(["image_path", "relative_path", "status", "error"])
            for table in self.iter_shards():
                for row in table.to_pylist():
                    if row["status"] == "scored":
                        scores.writerow([row["path"], f"{row['score']:.9g}", row["peak_y"], row["peak_x"]]
                                        + ([row["decision"]] if threshold is not None else []))
                        if flags is not None:
                            tally = flags.setdefault(str(PurePosixPath(row["relative_path"]).parent), [0, 0])
                            tally[0] += int(bool(row["decision"]))
                            tally[1] += 1
                    else:
                        errors.writerow([row["path"], row["relative_path"], row["status"], row["error"]])
        return scores_csv, errors_csv


def _clash(old: dict, new: dict) -> str | None:
    """What makes an earlier run's results unusable for this one, in words; ``None`` when they belong together."""
    if old.get("format") != MANIFEST_FORMAT:
        return "something that is not an exdd_lab archive run"
    if old.get("model_fingerprint") != new["model_fingerprint"]:
        return (f"another model ({old.get('method')} from {old.get('model')}, fingerprint "
                f"{str(old.get('model_fingerprint'))[:12]}; this model's is {new['model_fingerprint'][:12]})")
    if old.get("inputs") != new["inputs"]:
        return f"other inputs ({old.get('inputs', {}).get('source')}; these are {new['inputs']['source']})"
    if old.get("threshold") != new["threshold"]:
        return f"another decision threshold ({old.get('threshold')}; this run's is {new['threshold']})"
    if old.get("save_maps") != new["save_maps"] or old.get("map_size") != new["map_size"]:
        return "a run with other --save-maps settings"
    return None


def read_results(out: str | Path, columns: list[str] | None = None):
    """Every shard of an archive run as one pandas table (one row per input, in input order)."""
    store = ArchiveStore(Path(out))
    tables = list(store.iter_shards(columns))
    if not tables:
        raise ExddError(f"{out} holds no scored shards", "run `exdd-lab score --model DIR --images ARCHIVE --out OUT` first")
    table = pa.concat_tables(tables)
    return (table.sort_by("index") if "index" in table.column_names else table).to_pandas()


def compare_results(reference: str | Path, other: str | Path) -> dict:
    """How closely two archive runs over the same inputs agree (say PyTorch vs an exported runtime): the images
    scored in both, the largest relative score difference, and whether every decision and status is the same."""
    a, b = read_results(reference), read_results(other)
    both = a.merge(b, on="path", suffixes=("_ref", "_other"))
    if len(both) != len(a) or len(both) != len(b):
        raise ExddError(f"{reference} and {other} hold different inputs ({len(a)} and {len(b)} rows, {len(both)} shared)",
                        "compare two runs over the same images (the same --images)")
    scored = both[(both.status_ref == "scored") & (both.status_other == "scored")]
    rel = (scored.score_other - scored.score_ref).abs() / scored.score_ref.abs().clip(lower=1e-12)
    return {"n_scored": int(len(scored)), "max_relative_score_difference": float(rel.max()) if len(scored) else 0.0,
            "same_statuses": bool((both.status_ref == both.status_other).all()),
            "same_decisions": bool(scored.decision_ref.fillna(-1).eq(scored.decision_other.fillna(-1)).all())}
