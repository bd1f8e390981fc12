"""Where the kit keeps its caches, and how it writes files so that nothing is left half-written.

Every cache and saved model goes through :func:`atomic_write` (a temporary file in the same
folder, then ``os.replace``), so an interrupted run leaves either the old file or the new one.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


def cache_root() -> Path:
    """The kit's cache folder: ``$EXDD_LAB_CACHE`` if set, else ``~/.cache/exdd_lab``."""
    root = os.environ.get("EXDD_LAB_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "exdd_lab"


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb", durable: bool = True) -> Iterator:
    """Open a temporary file beside ``path``; on success move it into place, on error remove it.

    ``durable`` flushes the data to disk before the move (``fsync``), so that even a power cut leaves the
    old file or the complete new one. Caches whose reader checks each entry may pass ``False``: a process
    never sees a half-written file either way, and an entry lost in a crash is found damaged and redone."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` for writers that want a file name (e.g. pandas' Parquet
    writer); moved into place on success, removed on error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_json(path: str | Path, obj: object) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_write(path, "w") as handle:
        json.dump(obj, handle, indent=2, sort_keys=True, default=str)
        handle.write("\n")


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Build a whole folder under a temporary name, then rename it into place in one step.

    If ``path`` appeared meanwhile (another process won the race) the new copy is discarded.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        try:
            os.rename(tmp, path)
        except OSError:
            if not path.exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def file_digest(path: str | Path, algorithm: str = "sha1") -> str:
    """Hex digest of a file's bytes: the content key used by the feature cache."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def stable_hash(obj: object, length: int = 16) -> str:
    """Short hash of a JSON-serialisable object (sorted keys), for cache keys."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:length]
