"""What a saved detector says about itself, and the checks that refuse one this version cannot read.

Every saved detector's JSON carries ``format`` (``exdd_lab-detector``), ``format_version`` and the
``exdd_lab_version`` that wrote it. Loading checks the format version first, then that the saved
settings are exactly the fields this version's settings classes have: a folder from another version,
or with settings renamed or added since, is refused with a message that says how to get a usable one,
instead of a ``TypeError`` from deep inside.
"""
from __future__ import annotations

from dataclasses import MISSING, fields
from pathlib import Path
from typing import TypeVar

from exdd_lab.errors import ExddError

FORMAT = "exdd_lab-detector"
FORMAT_VERSION = 1
T = TypeVar("T")


def kit_version() -> str:
    """The installed exdd_lab version that writes a file (``unknown`` outside an installed package)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("exdd_lab")
    except PackageNotFoundError:
        return "unknown"


def new_detector_folder(folder: str | Path, fitted: bool):
    """``atomic_directory`` for a detector about to be saved: never over an existing folder, never unfitted."""
    from exdd_lab.storage import atomic_directory

    folder = Path(folder)
    if folder.exists():
        raise ExddError(f"{folder} already exists", "save to a new folder (detectors are never overwritten in place)")
    if not fitted:
        raise RuntimeError("call fit() before save()")
    return atomic_directory(folder)


def format_header(method: str, threshold: dict | None = None) -> dict:
    """The fields every saved detector's JSON starts with; ``threshold`` is the decision threshold measured when
    it was evaluated (:func:`threshold_record`), which ``exdd-lab score`` uses when no ``--threshold`` is given."""
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "exdd_lab_version": kit_version(), "method": method,
            "threshold": threshold}


def threshold_record(metrics: dict) -> dict | None:
    """The normal-only threshold of an evaluation's ``metrics.json`` as a saved detector keeps it (value, how
    it was measured, what it achieved on the test split); ``None`` when the split had no held-out normals."""
    value = metrics.get("normal_only_threshold")
    if value is None:
        return None
    return {"value": float(value), "kind": "normal_only", "quantile": metrics.get("normal_only_quantile"),
            "dataset": metrics.get("dataset"), "recall": metrics.get("normal_only_recall"),
            "false_alarm_rate": metrics.get("normal_only_fpr")}


def model_fingerprint(folder: str | Path) -> str:
    """SHA-256 over a saved detector's files (relative names and bytes, in name order): two folders with the
    same fingerprint score alike; the archive scorer refuses to mix results of different fingerprints."""
    import hashlib

    folder = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def _refit_hint(blob: dict) -> str:
    return (f"re-fit and save it with this version (`exdd-lab evaluate --method {blob.get('method', 'METHOD')} "
            f"--save-model NEW_DIR`), or load it with the exdd_lab version that saved it "
            f"({blob.get('exdd_lab_version', 'unknown')})")


def check_format(blob: dict, folder: str | Path) -> None:
    """Refuse a saved detector of another format version (or one saved before versions existed)."""
    saved = blob.get("format_version")
    if blob.get("format") != FORMAT or saved != FORMAT_VERSION:
        what = f"format version {saved}" if saved is not None else "no format version (saved before versions existed)"
        raise ExddError(f"{folder} holds a detector with {what}; this exdd_lab {kit_version()} reads format "
                        f"version {FORMAT_VERSION}", _refit_hint(blob))


def read_saved_blob(folder: str | Path, file_name: str, method: str, label: str) -> dict:
    """The JSON a saved detector's folder holds, format version checked; a clear error naming ``label`` (the
    method as people write it) when it is not there."""
    import json

    folder = Path(folder)
    if not (folder / file_name).is_file():
        raise ExddError(f"{folder} holds no saved {label} detector ({file_name} missing)",
                        f"save one with `exdd-lab evaluate --method {method} --save-model DIR` (or detector.save(folder))")
    blob = json.loads((folder / file_name).read_text())
    check_format(blob, folder)
    return blob


def settings_from_saved(cls: type[T], saved: dict, folder: str | Path, what: str, blob: dict) -> T:
    """``cls(**saved)`` for a settings dataclass, refusing names this version does not have or lacks."""
    names = {f.name for f in fields(cls)}
    required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
    unknown, missing = sorted(set(saved) - names), sorted(required - set(saved))
    if unknown or missing:
        detail = "; ".join(part for part in (f"unknown: {', '.join(unknown)}" if unknown else "",
                                             f"missing: {', '.join(missing)}" if missing else "") if part)
        raise ExddError(f"{folder}: the saved {what} do not match this version's ({detail})", _refit_hint(blob))
    return cls(**saved)
