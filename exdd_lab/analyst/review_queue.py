"""What the review widget walks through: an archive run's scored images, ordered, filtered, and judged.

:class:`ReviewQueue` opens an ``exdd-lab score`` output folder (no labels needed), orders its scored images by score,
highest first, and keeps a *view*: the images of the chosen sub-folders (a production line's days), inside a score
band, and optionally only those near the threshold or not yet reviewed. It moves through the view, records verdicts
into the run's ``reviews.csv`` (:class:`~exdd_lab.analyst.reviews.ReviewLog`: atomic, resumed on reopening) and
counts, for any threshold, how many images each folder would flag. Everything is pandas on one table, so a
20,000-image run opens in well under a second (``benchmarks/review_speed.py``).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from exdd_lab.analyst.reviews import ReviewLog
from exdd_lab.archive.store import read_results
from exdd_lab.errors import ExddError

#: "Near the threshold": within this share of the score range (1st to 99th percentile) on either side.
NEAR_SHARE = 0.05
ROOT_FOLDER = "(top level)"


class ReviewQueue:
    """The scored images of an archive run in ``run``, highest score first, with a filtered view and a position."""

    def __init__(self, run: str | Path) -> None:
        self.run = Path(run)
        manifest = self.run / "manifest.json"
        if not manifest.is_file():
            raise ExddError(f"{self.run} is not an archive run (no manifest.json)",
                            "point at the --out folder of `exdd-lab score --model DIR --images ARCHIVE --out OUT`")
        self.manifest = json.loads(manifest.read_text())
        table = read_results(self.run, ["path", "relative_path", "status", "score", "map_file"])
        table = table[table["status"] == "scored"].drop(columns="status")
        if table.empty:
            raise ExddError(f"{self.run} has no scored image", "check errors.csv: every input failed or was skipped")
        folders = table["relative_path"].map(lambda p: str(Path(p).parent))
        table["folder"] = folders.where(folders != ".", ROOT_FOLDER)
        self.table = table.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
        self.folders = sorted(self.table["folder"].unique())
        self.threshold = self.manifest.get("threshold")
        self.threshold = float(self.threshold) if isinstance(self.threshold, (int, float)) else None
        lo, hi = np.quantile(self.table["score"], [0.01, 0.99])
        self.near_width = NEAR_SHARE * float(hi - lo)
        self.reviews = ReviewLog(self.run, model=str(self.manifest.get("model_fingerprint", "")))
        self.score_range = (float(self.table["score"].min()), float(self.table["score"].max()))
        self.chosen_folders: list[str] = list(self.folders)
        self.band = self.score_range
        self.near_only = False
        self.unreviewed_only = False
        self._view = np.arange(len(self.table))
        self.position = 0

    # the view
    def set_filters(self, folders: list[str] | None = None, band: tuple[float, float] | None = None,
                    near_only: bool | None = None, unreviewed_only: bool | None = None) -> int:
        """Change any filter, keep the current image if it is still in view (else go to the first); return the count."""
        if folders is not None:
            unknown = sorted(set(folders) - set(self.folders))
            if unknown:
                raise ExddError(f"no folder {unknown[0]!r} in this run", f"choose among {', '.join(self.folders[:10])}")
            self.chosen_folders = list(folders)
        if band is not None:
            self.band = (float(band[0]), float(band[1]))
        if near_only is not None:
            self.near_only = bool(near_only)
        if unreviewed_only is not None:
            self.unreviewed_only = bool(unreviewed_only)
        current = self.current_row_id()
        t, scores = self.table, self.table["score"].to_numpy()
        keep = t["folder"].isin(self.chosen_folders).to_numpy() & (scores >= self.band[0]) & (scores <= self.band[1])
        if self.near_only and self.threshold is not None:
            keep &= np.abs(scores - self.threshold) <= self.near_width
        if self.unreviewed_only:
            keep &= ~t["path"].isin(self.reviews.rows.keys()).to_numpy()
        self._view = np.flatnonzero(keep)
        where = np.flatnonzero(self._view == current) if current is not None else []
        self.position = int(where[0]) if len(where) else 0
        return len(self._view)

    def __len__(self) -> int:
        return len(self._view)

    def current_row_id(self) -> int | None:
        return int(self._view[self.position]) if len(self._view) else None

    def current(self) -> dict | None:
        """The image in view at the position: its row (path, relative path, folder, score, map file) and verdict."""
        row_id = self.current_row_id()
        if row_id is None:
            return None
        row = self.table.iloc[row_id].to_dict()
        row["verdict"] = self.reviews.verdict(row["path"])
        row["rank"] = row_id + 1  # rank by score over the whole run
        return row

    def move(self, step: int) -> dict | None:
        """Go ``step`` images forward (negative: back) in the view, stopping at its ends."""
        if len(self._view):
            self.position = int(np.clip(self.position + step, 0, len(self._view) - 1))
        return self.current()

    def judge(self, verdict: str, advance: bool = True) -> dict | None:
        """Record ``verdict`` (defect / normal / unsure) for the current image in ``reviews.csv``; then move on."""
        row = self.current()
        if row is None:
            raise ExddError("no image in view to judge", "widen the filters (folders, score band, near threshold)")
        self.reviews.record(row["path"], verdict, float(row["score"]))
        if self.unreviewed_only:  # the judged image leaves the view; the next one slides into its place
            self._view = np.delete(self._view, self.position)
            self.position = min(self.position, max(len(self._view) - 1, 0))
            return self.current()
        return self.move(1) if advance else self.current()

    # the threshold
    def flag_counts(self, threshold: float) -> pd.DataFrame:
        """Per folder: images, how many ``threshold`` would flag (score >= threshold) and their share."""
        t = self.table
        flagged = t["score"].to_numpy() >= threshold
        counts = pd.DataFrame({"folder": t["folder"], "flagged": flagged}).groupby("folder")["flagged"].agg(["size", "sum"])
        counts.columns = ["images", "flagged"]
        counts["share"] = counts["flagged"] / counts["images"]
        return counts.reset_index()

    def map_path(self, row: dict) -> Path | None:
        """The saved anomaly map of ``row`` (``score --save-maps``), if there is one."""
        name = row.get("map_file")
        return self.run / name if isinstance(name, str) and name else None
