"""storage/: zarr compatibility of the fast chunk path, atomic blobs, keys, deletion."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from storage import Storage, StorageError
from storage.store import PIXELS


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
    assert list(store.keys()) == [key]
    store.delete(key)
    assert list(store.keys()) == []
    with pytest.raises(StorageError):
        store.read_blob(key, "header.dcm")


@pytest.mark.parametrize("key", ["../x/y", "a/b", "a/b/c/d", "a/../c", "/a/b/c"])
def test_keys_cannot_escape_the_store(tmp_path: Path, key: str) -> None:
    with pytest.raises(StorageError):
        Storage(tmp_path).path(key)
