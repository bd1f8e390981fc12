"""What to score: a folder scanned recursively, a glob, or a list file (txt, csv or parquet of paths).

The spec is resolved once and recorded in the run's ``manifest.json``; the path list it gives is recorded in
``inputs.parquet`` at the start of a run, so a resumed run scores exactly the images the first one was given,
and a rerun after new images arrived appends only the new ones. Hidden files and folders (``.name``) are never
listed; files whose ending is not an image type are listed and reported as skipped, never dropped silently.
"""
from __future__ import annotations

import glob
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from exdd_lab.errors import DatasetError

#: List-file endings and how each is read.
LIST_SUFFIXES = (".txt", ".lst", ".csv", ".parquet")
#: Column names a csv or parquet list may use for its paths (else its first column).
PATH_COLUMNS = ("path", "image_path", "file", "filename")


@dataclass(frozen=True)
class InputSpec:
    """``kind`` (folder, glob or list), the ``source`` as given (resolved to an absolute path or pattern) and
    the ``root`` that each image's relative path is measured from."""

    kind: str
    source: str
    root: str

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        return {"folder": f"folder {self.source} (recursive)", "glob": f"glob {self.source}",
                "list": f"list file {self.source}"}[self.kind]


def _is_glob(text: str) -> bool:
    return glob.has_magic(text)


def resolve_inputs(images: str | Path, argument: str = "--images") -> InputSpec:
    """The :class:`InputSpec` of ``--images``: a folder, a glob (quote it: ``'archive/**/*.png'``) or a list file.
    ``argument``: the option the user typed (``--normals`` for ``fit``), named in the errors."""
    text = str(images)
    if _is_glob(text):
        pattern = os.path.abspath(os.path.expanduser(text))
        root = Path(pattern)
        while _is_glob(str(root)):
            root = root.parent
        return InputSpec("glob", pattern, str(root))
    path = Path(text).expanduser()
    if path.is_dir():
        return InputSpec("folder", str(path.resolve()), str(path.resolve()))
    if path.is_file():
        if path.suffix.lower() not in LIST_SUFFIXES:
            raise DatasetError(f"{argument} {path} is a file but not a list of paths",
                               f"give a folder, a quoted glob, or a list file ({', '.join(LIST_SUFFIXES)})")
        return InputSpec("list", str(path.resolve()), str(path.resolve().parent))
    raise DatasetError(f"{argument} {text} not found",
                       "give an existing folder (scanned recursively), a quoted glob such as 'archive/**/*.png', "
                       f"or a list file ({', '.join(LIST_SUFFIXES)}) of image paths")


def _walk(folder: Path, exclude: Path | None) -> Iterator[str]:
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and (exclude is None or (here / d).resolve() != exclude))
        for name in filenames:
            if not name.startswith("."):
                yield str(here / name)


def _read_list(path: Path) -> list[str]:
    suffix = path.suffix.lower()
    if suffix in (".txt", ".lst"):
        lines = [line.strip() for line in path.read_text().splitlines()]
        entries = [line for line in lines if line and not line.startswith("#")]
    else:
        import pandas as pd

        try:
            table = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
        except Exception as exc:
            raise DatasetError(f"cannot read the list file {path}: {exc}",
                               f"a {suffix} list needs a column named one of {', '.join(PATH_COLUMNS)} (or paths in its first column)") from exc
        column = next((c for c in PATH_COLUMNS if c in table.columns), table.columns[0] if len(table.columns) else None)
        if column is None:
            raise DatasetError(f"the list file {path} has no columns", "write one path per row")
        entries = [str(v) for v in table[column].dropna()]
    base = path.parent
    return [str(Path(e) if os.path.isabs(e) else (base / e)) for e in entries]


def list_inputs(spec: InputSpec, exclude: str | Path | None = None) -> list[tuple[str, str]]:
    """``(path, relative path)`` of every input, sorted by relative path, duplicates removed. ``exclude`` (the
    run's own output folder) is never scanned, so saved maps are not scored as new images."""
    skip = Path(exclude).resolve() if exclude else None
    if spec.kind == "folder":
        paths = list(_walk(Path(spec.source), skip))
    elif spec.kind == "glob":
        paths = [p for p in glob.glob(spec.source, recursive=True)
                 if os.path.isfile(p) and not (skip and Path(p).resolve().is_relative_to(skip))]
    else:
        paths = _read_list(Path(spec.source))
    pairs = {os.path.abspath(p): os.path.relpath(os.path.abspath(p), spec.root) for p in paths}
    if not pairs:
        raise DatasetError(f"no files found in {spec.describe()}",
                           "check the path; a folder is scanned recursively, hidden files and folders are left out")
    return sorted(pairs.items(), key=lambda item: item[1])
