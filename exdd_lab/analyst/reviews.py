"""An analyst's verdicts on scored images: ``reviews.csv``, written by the review widget, read by ``fit --reviews``.

A verdict is one of *defect*, *normal* or *unsure*. :class:`ReviewLog` keeps one row per image (the latest verdict
wins) in ``reviews.csv`` beside an archive run's scores, with the score, the model's fingerprint and the time; every
change rewrites the file atomically, so a crash leaves the old file or the new one, and reopening resumes.
:func:`read_reviews` accepts any CSV with at least ``path`` and ``verdict`` columns (a spreadsheet export will do), so
verdicts from several people and runs can be combined; :func:`reviewed_samples` turns them into what a refit uses.
"""
from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from exdd_lab.data.records import Sample
from exdd_lab.errors import DatasetError
from exdd_lab.storage import atomic_write

REVIEWS = "reviews.csv"
VERDICTS = ("defect", "normal", "unsure")
COLUMNS = ("path", "verdict", "score", "model", "time")


class ReviewLog:
    """The verdicts of one run folder, kept in ``folder/reviews.csv`` (loaded on creation, rewritten on each change)."""

    def __init__(self, folder: str | Path, model: str = "") -> None:
        self.file = Path(folder) / REVIEWS
        self.model = model
        self.rows: dict[str, dict] = {}
        if self.file.is_file():
            for row in _read_rows(self.file):
                self.rows[row["path"]] = {c: row.get(c, "") for c in COLUMNS}

    def __len__(self) -> int:
        return len(self.rows)

    def verdict(self, path: str) -> str | None:
        row = self.rows.get(str(path))
        return row["verdict"] if row else None

    def record(self, path: str, verdict: str, score: float | None = None) -> None:
        """Set ``path``'s verdict (replacing an earlier one) and rewrite the file."""
        _check_verdict(verdict, self.file)
        self.rows[str(path)] = {"path": str(path), "verdict": verdict, "score": "" if score is None else f"{score:.6g}",
                                "model": self.model, "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        self._write()

    def forget(self, path: str) -> None:
        """Remove ``path``'s verdict (an undo)."""
        if self.rows.pop(str(path), None) is not None:
            self._write()

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(VERDICTS, 0)
        for row in self.rows.values():
            out[row["verdict"]] += 1
        return out

    def _write(self) -> None:
        with atomic_write(self.file, "w", durable=False) as handle:
            writer = csv.DictWriter(handle, COLUMNS)
            writer.writeheader()
            writer.writerows(self.rows.values())


def _check_verdict(verdict: str, source: Path | str) -> None:
    if verdict not in VERDICTS:
        raise DatasetError(f"unknown verdict {verdict!r} in {source}", f"use one of {', '.join(VERDICTS)}")


def _read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        raise DatasetError(f"no reviews file {path}", "pass the reviews.csv the review widget wrote (or any CSV with "
                           "path and verdict columns)")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"path", "verdict"} - set(reader.fieldnames or ())
        if missing:
            raise DatasetError(f"{path} has no {' or '.join(sorted(missing))} column",
                               "a reviews file needs at least the columns path and verdict (defect, normal or unsure)")
        rows = []
        for line, row in enumerate(reader, start=2):
            row["verdict"] = (row["verdict"] or "").strip().lower()
            _check_verdict(row["verdict"], f"{path}, line {line}")
            rows.append(row)
    return rows


@dataclass
class Reviewed:
    """What a refit takes from reviews: images reviewed as normal and as defect (``unsure`` left out)."""

    normals: list[Sample] = field(default_factory=list)
    defects: list[Sample] = field(default_factory=list)
    unsure: int = 0
    missing: list[str] = field(default_factory=list)  # reviewed files that no longer exist (skipped)
    foreign: int = 0         # verdicts of a run's reviews.csv on images not in that run, or on another model's scores
    free_standing: int = 0   # verdicts from CSVs that sit in no archive run (nothing to check them against)

    def to_dict(self) -> dict:
        return {"normal": len(self.normals), "defect": len(self.defects), "unsure": self.unsure,
                "missing": self.missing, "foreign": self.foreign, "free_standing": self.free_standing}


def read_reviews(files: Iterable[str | Path]) -> dict[str, str]:
    """The verdict per image path over one or several reviews files (a later file overrides an earlier one)."""
    verdicts: dict[str, str] = {}
    for file in files:
        for row in _read_rows(Path(file)):
            verdicts[str(Path(row["path"]).expanduser())] = row["verdict"]
    return verdicts


def foreign_verdicts(file: Path, rows: list[dict]) -> tuple[list[str], str] | None:
    """For a reviews file inside an archive run (a ``manifest.json`` beside it): the paths whose verdicts do not
    belong to that run -- not one of its rows, or given on another model's scores (the ``model`` column) -- and
    why; ``None`` for a free-standing file."""
    import json

    from exdd_lab.archive.store import read_results

    manifest = file.parent / "manifest.json"
    if not manifest.is_file():
        return None
    fingerprint = str(json.loads(manifest.read_text()).get("model_fingerprint", ""))
    try:
        in_run = set(read_results(file.parent, columns=["path"])["path"])
    except Exception:  # a run with no scored shard: every verdict is foreign to it
        in_run = set()
    not_rows = [r["path"] for r in rows if r["path"] not in in_run]
    other_model = [r["path"] for r in rows if r.get("model") and fingerprint and r["model"] != fingerprint]
    if not (not_rows or other_model):
        return [], ""
    why = []
    if not_rows:
        why.append(f"{len(not_rows)} name images that are not rows of the run it sits in (e.g. {not_rows[0]})")
    if other_model:
        why.append(f"{len(other_model)} were given on another model's scores (model column, e.g. for {other_model[0]})")
    return sorted(set(not_rows) | set(other_model)), "; ".join(why)


def reviewed_samples(files: Sequence[str | Path], accept_foreign: bool = False) -> Reviewed:
    """The reviewed normals and defects of ``files`` as samples (no masks: a review gives image verdicts).

    A ``reviews.csv`` inside an archive run is checked against that run: verdicts on images that are not its rows,
    or given on another model's scores, are refused (:class:`DatasetError`) unless ``accept_foreign`` (then counted
    in ``foreign``). A CSV outside any run is accepted as it is and counted in ``free_standing``."""
    out = Reviewed()
    verdicts: dict[str, str] = {}
    for file in map(Path, files):
        rows = _read_rows(file)
        found = foreign_verdicts(file, rows)
        if found is None:
            out.free_standing += len(rows)
        elif found[0]:
            if not accept_foreign:
                raise DatasetError(f"{file}: {len(found[0])} of its {len(rows)} verdicts do not belong to that run: "
                                   f"{found[1]}", "pass the reviews.csv of the run the verdicts were given in, or "
                                   "--foreign-reviews to use them anyway")
            out.foreign += len(found[0])
        for row in rows:
            verdicts[str(Path(row["path"]).expanduser())] = row["verdict"]
    for path, verdict in verdicts.items():
        if verdict == "unsure":
            out.unsure += 1
        elif not Path(path).is_file():
            out.missing.append(path)
        elif verdict == "normal":
            out.normals.append(Sample(Path(path), 0))
        else:
            out.defects.append(Sample(Path(path), 1, defect_type="reviewed"))
    return out
