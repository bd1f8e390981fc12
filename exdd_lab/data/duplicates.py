"""Byte-identical images under different names: within a split they count twice, across splits they leak.

Real archives hold such copies (a re-exported day, a part photographed once and filed twice). Two identical
training images only weigh one part double; a test image identical to a training image is **leakage**: the
detector has seen it as normal, so a defect there scores low and a normal one trivially well. The check reads
each file's bytes once (SHA-1, :func:`~exdd_lab.storage.file_digest`) and decodes nothing. Used by
``exdd-lab datasets``, ``evaluate``, ``compare`` and ``fit``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from exdd_lab.storage import file_digest


@dataclass
class DuplicateReport:
    """Groups of byte-identical files, each a list of ``(split, path)``."""

    groups: list[list[tuple[str, str]]] = field(default_factory=list)

    @property
    def leaks(self) -> list[list[tuple[str, str]]]:
        """Groups with a training image and an image of another split (test, held-out normals)."""
        return [g for g in self.groups if {s for s, _ in g} & {"train"} and {s for s, _ in g} - {"train"}]

    def lines(self) -> list[str]:
        """Warnings for a person: how many, where, and one example each (nothing when there are none)."""
        if not self.groups:
            return []
        within = [g for g in self.groups if g not in self.leaks]
        out = []
        if self.leaks:
            (a_split, a), (b_split, b) = self.leaks[0][:2]
            out.append(f"{len(self.leaks)} image(s) of another split are byte-identical to a training image (leakage: "
                       f"the detector has seen them as normal), e.g. {b_split} {b} = {a_split} {a}; remove one copy")
        if within:
            (a_split, a), (_, b) = within[0][:2]
            out.append(f"{len(within)} group(s) of byte-identical images within a split (each counts more than once), "
                       f"e.g. {a_split} {a} = {b}")
        return out

    def to_dict(self) -> dict:
        return {"groups": [[{"split": s, "path": p} for s, p in g] for g in self.groups], "leaks": len(self.leaks)}


def find_duplicates(splits: Mapping[str, Sequence[str | Path]]) -> DuplicateReport:
    """Byte-identical files among ``{split: paths}`` (a path listed twice is one file, not a duplicate)."""
    by_digest: dict[str, list[tuple[str, str]]] = {}
    seen: set[str] = set()
    for split, paths in splits.items():
        for path in paths:
            resolved = str(Path(path).resolve())
            if resolved in seen:
                continue
            seen.add(resolved)
            try:
                digest = file_digest(path)
            except OSError:
                continue  # an unreadable file is reported by the readers, not here
            by_digest.setdefault(digest, []).append((split, str(path)))
    groups = sorted((sorted(g, key=lambda item: (item[0] != "train", item)) for g in by_digest.values() if len(g) > 1),
                    key=lambda g: g[0][1])
    return DuplicateReport(groups)


def dataset_duplicates(ds) -> DuplicateReport:
    """:func:`find_duplicates` over a :class:`~exdd_lab.data.records.DefectDataset`'s splits (images only)."""
    return find_duplicates({name: [s.image_path for s in samples] for name, samples in ds.splits().items()})
