"""storage/: zarr compatibility of the fast chunk path, atomic blobs, keys, deletion."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from storage import Storage, StorageError
from storage.store import PIXELS
from tests.conftest import missing_tool


@pytest.mark.parametrize("shape, dtype", [((3, 16, 20), "<u2"), ((2, 8, 8, 3), "|u1"), ((1, 5, 7), "<u4")])
def test_frames_written_fast_are_read_by_zarr_itself(tmp_path: Path, shape: tuple[int, ...], dtype: str) -> None:
    store = Storage(tmp_path)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 200, size=shape).astype(dtype)
    key = "1.2/3.4/5.6.abcd"
    store.prepare(key)
    store.put_frames(key, iter(frames), shape[0], shape[1:], frames.dtype)
    assert np.array_equal(zarr.open_array(str(store.path(key) / PIXELS), mode="r")[...], frames)
    for i in range(shape[0]):
        assert np.array_equal(store.read_frame(key, i), frames[i])
    assert np.array_equal(store.read_frames(key), frames)
    with pytest.raises(StorageError):
        store.read_frame(key, shape[0])


def test_blob_write_is_atomic_and_keys_list_versions(tmp_path: Path) -> None:
    store = Storage(tmp_path)
    key = "1.2/3.4/5.6.abcd"
    store.prepare(key)
    assert store.put_blob(key, "header.dcm", [b"ab", b"cd"]) == 4
    assert store.read_blob(key, "header.dcm", 1, 2) == b"bc"
    assert not list(store.path(key).glob(".*.tmp"))
    assert list(store.versions()) == [key]
    store.delete(key)
    assert list(store.versions()) == []
    with pytest.raises(StorageError):
        store.read_blob(key, "header.dcm")


@pytest.mark.parametrize("key", ["../x/y", "a/b", "a/b/c/d", "a/../c", "/a/b/c"])
def test_keys_cannot_escape_the_store(tmp_path: Path, key: str) -> None:
    with pytest.raises(StorageError):
        Storage(tmp_path).path(key)


def test_group_sync_serves_many_writers_with_few_syncs(tmp_path: Path) -> None:
    import threading

    from storage.durable import GroupSync

    group = GroupSync(tmp_path)
    if not group.enabled:
        assert not sys.platform.startswith("linux"), "Linux has syncfs(2): group sync must be on"
        missing_tool("no syncfs on this platform: files are fsync'ed one by one")
    calls = []
    real = group._sync

    def counted() -> None:
        calls.append(1)
        real()

    group._sync = counted  # type: ignore[method-assign]  # counting this group's syncs
    threads = [threading.Thread(target=group.wait) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert 1 <= len(calls) <= 16 and group._done == len(calls)
    group.wait()  # a writer arriving after the others gets a sync of its own
    assert len(calls) >= 2


def test_per_file_fsync_mode_still_round_trips(tmp_path: Path) -> None:
    store = Storage(tmp_path, group_sync=False)
    key = "1.2/3.4/5.6.abcd"
    store.prepare(key)
    frames = np.arange(2 * 4 * 4, dtype="<u2").reshape(2, 4, 4)
    store.put_frames(key, iter(frames), 2, (4, 4), frames.dtype)
    store.put_blob(key, "header.dcm", b"abc")
    store.sync(key)
    assert np.array_equal(store.read_frames(key), frames)


def _versions(store: Storage, n: int) -> list[str]:
    frames = np.arange(2 * 4 * 6, dtype="<u2").reshape(2, 4, 6)
    keys = [f"1.2/3.4/5.{i}.abcd" for i in range(n)]
    for key in keys:
        store.prepare(key)
        store.put_frames(key, iter(frames), 2, (4, 6), frames.dtype)
    return keys


def test_versions_of_one_shape_share_their_zarr_json_and_each_still_reads(tmp_path: Path) -> None:
    store = Storage(tmp_path)
    keys = _versions(store, 3)
    inodes = {(store.path(k) / "zarr.json").stat().st_ino for k in keys}
    assert len(inodes) == 1  # one shared copy, hard-linked
    assert (store.path(keys[0]) / "zarr.json").stat().st_nlink == 4  # 3 versions + shared/
    store.delete(keys[0])
    for key in keys[1:]:
        assert zarr.open_array(str(store.path(key)), mode="r").shape == (2, 4, 6)


def test_a_shared_zarr_json_at_the_link_limit_is_replaced_by_a_fresh_copy(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import os

    store = Storage(tmp_path)
    first = _versions(store, 1)[0]
    real_link = os.link
    calls: list[str] = []

    def link(src: str, dst: str) -> None:
        calls.append(str(src))
        if len(calls) == 1:
            raise OSError(errno.EMLINK, "Too many links")
        real_link(src, dst)

    monkeypatch.setattr(os, "link", link)
    (second,) = _versions_more(store)
    assert calls[0] != calls[1]  # the full copy was left alone, a new one made
    assert (store.path(second) / "zarr.json").stat().st_ino != (store.path(first) / "zarr.json").stat().st_ino
    assert zarr.open_array(str(store.path(second)), mode="r").shape == (2, 4, 6)


def _versions_more(store: Storage) -> list[str]:
    frames = np.zeros((2, 4, 6), dtype="<u2")
    store.prepare("1.2/3.4/9.9.abcd")
    store.put_frames("1.2/3.4/9.9.abcd", iter(frames), 2, (4, 6), frames.dtype)
    return ["1.2/3.4/9.9.abcd"]


def test_without_hard_links_each_version_gets_its_own_zarr_json(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import os

    def no_links(src: str, dst: str) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    store = Storage(tmp_path)
    keys = _versions(store, 2)
    assert len({(store.path(k) / "zarr.json").stat().st_ino for k in keys}) == 2
    for key in keys:
        assert zarr.open_array(str(store.path(key)), mode="r").shape == (2, 4, 6)


def test_frames_stored_with_the_earlier_zstd_codec_still_read(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Versions written before the switch to LZ4 (Blosc-zstd chunks) read as before."""
    from storage import store as store_module

    frames = np.random.default_rng(1).integers(0, 4000, size=(2, 16, 20)).astype("<u2")
    monkeypatch.setattr(store_module, "CNAME", "zstd")
    store_module._array_template.cache_clear()
    old = Storage(tmp_path)
    old.prepare("1.2/3.4/5.6.old")
    old.put_frames("1.2/3.4/5.6.old", iter(frames), 2, (16, 20), frames.dtype)
    monkeypatch.undo()
    store_module._array_template.cache_clear()
    chunk = (old.path("1.2/3.4/5.6.old") / "0.0.0").read_bytes()
    import numcodecs.blosc

    assert numcodecs.blosc.cbuffer_complib(chunk) == "Zstd"
    new = Storage(tmp_path)  # today's codec for new versions, the old one still read
    assert np.array_equal(new.read_frames("1.2/3.4/5.6.old"), frames)
    assert np.array_equal(zarr.open_array(str(new.path("1.2/3.4/5.6.old")), mode="r")[...], frames)
    new.prepare("1.2/3.4/5.7.new")
    new.put_frames("1.2/3.4/5.7.new", iter(frames), 2, (16, 20), frames.dtype)
    assert numcodecs.blosc.cbuffer_complib((new.path("1.2/3.4/5.7.new") / "0.0.0").read_bytes()) == "LZ4"


def test_frames_stored_with_the_earlier_bit_shuffle_still_read(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Versions written before the switch to byte shuffle (issue 9) read as before, and new
    chunks are byte-shuffled LZ4 (a Blosc header's flags, byte 2: 0x1 byte shuffle, 0x4 bit)."""
    import numcodecs.blosc

    from storage import store as store_module

    frames = np.random.default_rng(2).integers(0, 4000, size=(2, 16, 20)).astype("<u2")
    monkeypatch.setattr(store_module, "SHUFFLE", "bitshuffle")
    store_module._array_template.cache_clear()
    old = Storage(tmp_path)
    old.prepare("1.2/3.4/5.6.old")
    old.put_frames("1.2/3.4/5.6.old", iter(frames), 2, (16, 20), frames.dtype)
    monkeypatch.undo()
    store_module._array_template.cache_clear()
    assert (old.path("1.2/3.4/5.6.old") / "0.0.0").read_bytes()[2] & 0x5 == 0x4
    new = Storage(tmp_path)
    assert np.array_equal(new.read_frames("1.2/3.4/5.6.old"), frames)
    assert np.array_equal(zarr.open_array(str(new.path("1.2/3.4/5.6.old")), mode="r")[...], frames)
    new.prepare("1.2/3.4/5.7.new")
    new.put_frames("1.2/3.4/5.7.new", iter(frames), 2, (16, 20), frames.dtype)
    chunk = (new.path("1.2/3.4/5.7.new") / "0.0.0").read_bytes()
    assert chunk[2] & 0x5 == 0x1 and numcodecs.blosc.cbuffer_complib(chunk) == "LZ4"
    assert np.array_equal(zarr.open_array(str(new.path("1.2/3.4/5.7.new")), mode="r")[...], frames)


def test_every_process_and_restart_links_to_the_same_shared_copy(tmp_path: Path) -> None:
    """Shared copies are named by content: a second Storage on the same root (a worker process,
    a restart) links to the first one's copy instead of adding its own."""
    first = Storage(tmp_path)
    (a,) = _versions(first, 1)
    second = Storage(tmp_path)
    second.prepare("1.2/3.4/8.8.abcd")
    frames = np.arange(2 * 4 * 6, dtype="<u2").reshape(2, 4, 6)
    second.put_frames("1.2/3.4/8.8.abcd", iter(frames), 2, (4, 6), frames.dtype)
    ino = {(s.path(k) / "zarr.json").stat().st_ino for s, k in ((first, a), (second, "1.2/3.4/8.8.abcd"))}
    assert len(ino) == 1
    assert len(list((tmp_path / "shared").iterdir())) == 1


def test_a_damaged_shared_copy_is_not_linked_to_new_versions(tmp_path: Path) -> None:
    store = Storage(tmp_path)
    _versions(store, 1)
    (shared,) = (tmp_path / "shared").iterdir()
    good = shared.read_bytes()
    fresh = Storage(tmp_path)  # no cached copy: looks at the file
    shared.chmod(0o644)
    with open(shared, "r+b") as fh:  # damage it in place (all links see it: a disk fault)
        fh.write(b"X")
    fresh.prepare("1.2/3.4/7.7.abcd")
    frames = np.arange(2 * 4 * 6, dtype="<u2").reshape(2, 4, 6)
    fresh.put_frames("1.2/3.4/7.7.abcd", iter(frames), 2, (4, 6), frames.dtype)
    assert (fresh.path("1.2/3.4/7.7.abcd") / "zarr.json").read_bytes() == good
    assert zarr.open_array(str(fresh.path("1.2/3.4/7.7.abcd")), mode="r").shape == (2, 4, 6)
