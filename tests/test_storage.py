import pytest

from exdd_lab.storage import atomic_directory, atomic_write, atomic_write_json, stable_hash


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "model.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as handle:
            handle.write(b"half")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"], "no temporary file left"
    atomic_write_json(target, {"a": 1})
    assert target.read_text().strip() == '{\n  "a": 1\n}'


def test_atomic_directory_appears_whole_or_not_at_all(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_directory(tmp_path / "data") as tmp:
            (tmp / "x").write_text("1")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with atomic_directory(tmp_path / "data") as tmp:
        (tmp / "x").write_text("1")
    assert (tmp_path / "data" / "x").read_text() == "1"


def test_stable_hash_ignores_key_order():
    assert stable_hash({"a": 1, "b": 2}) == stable_hash({"b": 2, "a": 1}) != stable_hash({"a": 1, "b": 3})


def test_atomic_path_moves_into_place_or_leaves_nothing(tmp_path):
    import os

    import pytest

    from exdd_lab.storage import atomic_path

    target = tmp_path / "t.bin"
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask, "usual permissions, not mkstemp's 0600"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["t.bin"]


def test_only_durable_writes_wait_for_the_disk(tmp_path, monkeypatch):
    import os

    from exdd_lab.storage import atomic_write

    synced = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd))
    with atomic_write(tmp_path / "model.bin") as handle:
        handle.write(b"weights")
    with atomic_write(tmp_path / "cache.bin", durable=False) as handle:
        handle.write(b"features")
    assert len(synced) == 1, "saved models are fsynced; cache entries (checked when read) are not"
    assert (tmp_path / "cache.bin").read_bytes() == b"features" and not list(tmp_path.glob(".*.tmp"))
