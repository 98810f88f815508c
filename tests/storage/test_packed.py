"""Packed versions (storage/packed.py): one file per small version, read like a folder."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from storage import Storage, StorageError
from storage.packed import FIRST_READ, PackError, members, pack, packs, read_member

KEY = "1.2/3.4/5.6.abcd"


def _frames() -> np.ndarray:
    return np.arange(2 * 8 * 8, dtype="<u2").reshape(2, 8, 8)


def _put(store: Storage, key: str = KEY) -> int:
    frames = _frames()
    parts = store.frame_members(iter(frames), 2, (8, 8), frames.dtype)
    return store.put_packed(key, {**parts, "header.dcm": b"HEAD", "record.json": b"{}"})


def test_a_packed_version_reads_like_a_folder(tmp_path: Path) -> None:
    store = Storage(tmp_path)
    assert _put(store) == 3  # study and series folders, and the version
    assert store.path(KEY).is_file()
    assert store.complete(KEY) and store.exists(KEY)
    assert store.read_blob(KEY, "header.dcm") == b"HEAD"
    assert store.read_blob(KEY, "header.dcm", 1, 2) == b"EA"
    assert store.blob_size(KEY, "header.dcm") == 4
    with store.open_blob(KEY, "header.dcm") as fh:
        assert fh.read() == b"HEAD"
    assert np.array_equal(store.read_frames(KEY), _frames())
    assert np.array_equal(store.read_frame(KEY, 1), _frames()[1])
    assert store.frame_count(KEY) == 2
    assert list(store.versions()) == [KEY]
    assert store.size(KEY) == store.path(KEY).stat().st_size
    with pytest.raises(StorageError):
        store.read_blob(KEY, "pixeldata.bin")
    store.delete(KEY)
    assert not store.exists(KEY) and list(store.versions()) == []
    with pytest.raises(StorageError):
        store.read_blob(KEY, "header.dcm")


def test_frames_match_what_the_folder_form_stores(tmp_path: Path) -> None:
    store = Storage(tmp_path)
    _put(store)
    folder_key = "1.2/3.4/7.8.abcd"
    store.prepare(folder_key)
    frames = _frames()
    store.put_frames(folder_key, iter(frames), 2, (8, 8), frames.dtype)
    folder = store.path(folder_key)
    for name, data in members(store.path(KEY).read_bytes()).items():
        if name not in ("header.dcm", "record.json"):
            assert bytes(data) == (folder / name).read_bytes(), name


def test_one_writer_of_a_version_wins(tmp_path: Path) -> None:
    store = Storage(tmp_path)
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(_put(store))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r > 0 for r in results) == [False] * 7 + [True]
    assert not list(store.tmp.iterdir())  # no temp file left behind
    assert store.read_blob(KEY, "header.dcm") == b"HEAD"


def test_a_write_cut_short_by_a_full_disk_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused instance takes no space: the partial temp file goes (it once kept the last MiB
    of a full disk, so the index and the audit trail could not commit either)."""
    import errno
    import os

    store = Storage(tmp_path)

    def full(fd: int, views: list[memoryview]) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "writev", full)
    with pytest.raises(OSError):
        _put(store)
    monkeypatch.undo()
    assert not list(store.tmp.iterdir())
    with pytest.raises(StorageError):
        store.read_blob(KEY, "header.dcm")
    assert _put(store) > 0 and store.read_blob(KEY, "header.dcm") == b"HEAD"  # space back: stored


def test_a_damaged_packed_file_is_not_stored_bytes(tmp_path: Path) -> None:
    store = Storage(tmp_path)
    _put(store)
    store.path(KEY).write_bytes(b"YYPACK1\n\xff\xff\xff\x00garbage")
    with pytest.raises(StorageError):
        store.read_blob(KEY, "record.json")
    with pytest.raises(PackError):
        members(b"not packed at all")


def test_pack_keeps_member_order_and_bytes() -> None:
    parts = {"b": b"\x00\x01", "a": b"", "c": b"xyz" * 100}
    assert {k: bytes(v) for k, v in members(pack(parts)).items()} == parts


def test_read_member_reads_what_members_gives(tmp_path: Path) -> None:
    """read_member (index and one member read with pread) equals the whole file's members: small
    members inside the first read, large ones after it, an index longer than the first read."""
    parts = {"small": b"ab", "big": bytes(range(256)) * 40, "empty": b"",
             **{f"m{i:04d}": bytes([i % 251]) * 3 for i in range(400)}}  # index > FIRST_READ
    path = tmp_path / "v"
    path.write_bytes(pack(parts))
    assert len(pack(parts)) > FIRST_READ and path.read_bytes()[12:FIRST_READ].count(b"m0") > 10
    for name, data in parts.items():
        assert read_member(str(path), name) == data, name
        assert read_member(str(path), name, size_only=True) == len(data), name
    with pytest.raises(KeyError):
        read_member(str(path), "missing")
    path.write_bytes(pack(parts)[:-10])  # cut short: the last member is not all there
    with pytest.raises(PackError):
        read_member(str(path), "m0399")


def test_which_versions_are_packed() -> None:
    """Small versions, and one-frame ones up to PACK_ONE_FRAME_BELOW (a CT slice); multi-frame
    instances above PACK_BELOW keep their zarr folder."""
    assert packs(2_000, 1) and packs(2_000, 8) and packs(2_000, 0)
    assert packs(530_000, 1) and packs(530_000, 0)
    assert not packs(530_000, 2) and not packs(64 << 20, 1)


def test_a_kept_index_goes_with_its_version(tmp_path: Path) -> None:
    """Packed indexes are kept for the reads that follow; delete drops one, so a version
    written again under the same key reads as written (here: members of other sizes)."""
    store = Storage(tmp_path)
    _put(store)
    assert store.blob_size(KEY, "header.dcm") == 4 and store.read_blob(KEY, "header.dcm") == b"HEAD"
    store.delete(KEY)
    with pytest.raises(StorageError):
        store.blob_size(KEY, "header.dcm")
    frames = _frames()
    parts = store.frame_members(iter(frames), 2, (8, 8), frames.dtype)
    assert store.put_packed(KEY, {"header.dcm": b"LONGER HEAD", **parts, "record.json": b"{}"}) == 3
    assert store.blob_size(KEY, "header.dcm") == 11 and store.read_blob(KEY, "header.dcm") == b"LONGER HEAD"
    assert np.array_equal(store.read_frame(KEY, 1), frames[1])
