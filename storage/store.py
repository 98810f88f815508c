"""The storage area: five verbs (put, read, delete, list, sync) over a local folder.

Layout: ``objects/<study>/<series>/<sop>.<version>/`` holding ``header.dcm`` (the instance without
its pixel data), and either ``pixels.zarr`` (native frames, one chunk per frame, Blosc-LZ4 with
byte shuffle: lossless) or ``pixeldata.bin`` (an encapsulated or unusual pixel data value, kept
bit-exact). A version folder is written completely and fsync'ed before the index points at it;
a folder the index does not know is an orphan that ``yunying check`` sweeps. A version's
``zarr.json`` is a hard link to a shared copy in ``shared/`` (one per array shape).
"""
from __future__ import annotations

import errno
import functools
import hashlib
import io
import json
import os
import shutil
import stat
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, Literal

import numcodecs  # type: ignore[import-untyped]
import numcodecs.blosc  # type: ignore[import-untyped]
import numpy as np
import zarr
import zarr.core.sync
from zarr.codecs import BloscCodec
from zarr.core.buffer import default_buffer_prototype
from zarr.storage import MemoryStore

from storage.durable import GroupSync
from storage.packed import Index, PackError, pieces, read_index

HEADER = "header.dcm"
PIXELS = ""  # the version folder is itself the zarr array: zarr.json and one chunk file per frame
PIXELDATA = "pixeldata.bin"
RECORD = "record.json"
# lossless at rest: Blosc-LZ4 with byte shuffle. On the benchmark CT it compresses 2.3x (with bit
# shuffle 2.7x, zstd-1 3.1x) but encodes a 512x512 frame in 0.26 ms instead of 0.52 (bit shuffle)
# or 1.2 (zstd) and decodes it in 0.29 ms instead of 0.39 (one thread, issue 9): ingest and every
# frame served pay the codec, and the disk stays under Orthanc's (CT 0.47x of the input). Blosc
# chunks name their own codec and shuffle, so chunks written otherwise (older versions: bit
# shuffle, zstd) still read.
CNAME: Literal["lz4"] = "lz4"
CLEVEL = 1
SHUFFLE: Literal["shuffle", "bitshuffle"] = "shuffle"


INDEXES_KEPT = 1024  # packed versions' indexes kept (~0.6 KB each; a series retrieve's fit)
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.ENOSYS}


class StorageError(Exception):
    """A key that is malformed or names nothing stored."""


class Storage:
    """Instance versions under one root folder; thread-safe."""

    def __init__(self, root: Path, group_sync: bool = True) -> None:
        self.root = Path(root)
        self.objects = self.root / "objects"
        self._objects = str(self.objects)
        self.tmp = self.root / "tmp"
        self._tmp = str(self.tmp)
        self.shared = self.root / "shared"
        self.objects.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.shared.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._meta_links: dict[bytes, tuple[Path, int]] = {}
        self._linking = True
        self._group = GroupSync(self.objects, group_sync)
        self._layouts: OrderedDict[str, tuple[tuple[int, ...], np.dtype]] = OrderedDict()
        # packed versions' indexes: a retrieve asks a version's sizes, then its header, then its
        # frames; each would read the index again (versions never change: only delete drops one)
        self._indexes: OrderedDict[str, Index] = OrderedDict()

    def path(self, key: str) -> Path:
        """The folder of one version; refuses keys that climb out of the store."""
        return self.objects.joinpath(*_key_parts(key))

    def _file(self, key: str, name: str) -> str:
        """path(key) / name as a string: a retrieve opens two files per instance, and pathlib's
        parsing cost more than the opens (~25 ms of CPU for a 300-instance series)."""
        return os.path.join(self._objects, *_key_parts(key), name)

    @property
    def group_sync(self) -> bool:
        return self._group.enabled

    # -- writing ---------------------------------------------------------------------------
    def put_blob(self, key: str, name: str, data: bytes | Iterable[bytes], atomic: bool = True) -> int:
        """Write a blob into a prepared version folder; returns its size.

        atomic: through a temp file and a rename, so a reader never sees half of it (the
        completion record). A blob of a version not yet complete needs no rename: until its
        record is written, the whole version is incomplete and recovery removes it.
        """
        folder = self.path(key)
        target = folder / name
        tmp = folder / f".{name}.tmp" if atomic else target
        size = 0
        with open(tmp, "wb") as fh:
            for chunk in [data] if isinstance(data, (bytes, bytearray, memoryview)) else data:
                fh.write(chunk)
                size += len(chunk)
            if not self._group.enabled:
                fh.flush()
                os.fsync(fh.fileno())
        if atomic:
            os.replace(tmp, target)
        return size

    def put_frames(self, key: str, frames: Iterable[np.ndarray], count: int,
                   frame_shape: tuple[int, ...], dtype: np.dtype) -> None:
        """Write native frames as a zarr v3 array, one chunk per frame (design rule 4).

        The array metadata comes from zarr itself (cached per shape); chunks are encoded with the
        array's own Blosc configuration and written as plain files, which skips ~2 ms of zarr's
        async machinery per chunk. tests/storage proves zarr reads them back identically.
        """
        folder = self.path(key) / PIXELS
        meta, codec = _array_template(count, tuple(frame_shape), np.dtype(dtype).str)
        fsync = not self._group.enabled
        self._put_meta(folder / "zarr.json", meta, fsync)
        suffix = ".0" * len(frame_shape)
        for i, frame in enumerate(frames):
            _write(folder / f"{i}{suffix}", codec.encode(np.ascontiguousarray(frame, dtype=dtype)), fsync)

    def frame_members(self, frames: Iterable[np.ndarray], count: int, frame_shape: tuple[int, ...],
                      dtype: np.dtype) -> dict[str, bytes]:
        """What put_frames writes (zarr.json and one chunk per frame), as packed members."""
        meta, codec = _array_template(count, tuple(frame_shape), np.dtype(dtype).str)
        suffix = ".0" * len(frame_shape)
        out = {"zarr.json": meta}
        for i, frame in enumerate(frames):
            out[f"{i}{suffix}"] = codec.encode(np.ascontiguousarray(frame, dtype=dtype))
        return out

    def put_packed(self, key: str, members: dict[str, bytes]) -> int:
        """Write a whole version as one file (storage/packed.py): how many folders and files
        were created, like prepare(); 0 when the version already exists (nothing written)."""
        target = self.path(key)
        data = pieces(members)
        tmp = os.path.join(self._tmp, f"{os.urandom(8).hex()}.pack")
        created = 0
        try:
            # inside the try: a write cut short (a full disk) leaves no partial file taking the space
            _write_new(tmp, data, not self._group.enabled)
            for _attempt in (0, 1):
                try:
                    os.link(tmp, target)  # never replaces: one writer of a version wins
                    break
                except FileNotFoundError:  # a new study or series: its folders first, once
                    if _attempt:
                        raise
                    created = _make_parents(target)
                except OSError as exc:
                    if exc.errno not in _NO_HARD_LINKS:
                        raise
                    if target.exists():
                        return 0
                    created = _make_parents(target)
                    os.rename(tmp, target)  # no hard links here: same content, either copy is right
                    break
        except FileExistsError:
            return 0
        finally:
            try:
                os.unlink(tmp)
            except FileNotFoundError:  # renamed into place
                pass
        return created + 1

    def _member(self, key: str, name: str) -> bytes:
        """A member of a packed version."""
        try:
            return self._packed(key, name)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError, KeyError, PackError):
            raise StorageError(f"{key}/{name} is not stored") from None

    def _member_size(self, key: str, name: str) -> int:
        with self._lock:
            index = self._indexes.get(key)
        try:
            if index is None:
                self._packed(key, None)
                with self._lock:
                    index = self._indexes[key]
            return index.entries[name][1]
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError, KeyError, PackError):
            raise StorageError(f"{key}/{name} is not stored") from None

    def _packed(self, key: str, name: str | None) -> bytes:
        """Member `name` of a packed version (b"" for None: only its index, kept)."""
        with self._lock:
            index = self._indexes.get(key)
        fd = os.open(os.path.join(self._objects, *_key_parts(key)), os.O_RDONLY | os.O_CLOEXEC)
        try:
            if index is None:
                index = read_index(fd)
                with self._lock:  # kept without its first read's bytes
                    self._indexes[key] = Index(index.base, index.entries, b"")
                    while len(self._indexes) > INDEXES_KEPT:
                        self._indexes.popitem(last=False)
            return b"" if name is None else index.read(fd, name)
        finally:
            os.close(fd)

    def _put_meta(self, target: Path, meta: bytes, fsync: bool) -> None:
        """zarr.json as a hard link to a shared copy of the same bytes, else a file of its own.

        Every CT slice of one shape has the same zarr.json: a link costs a folder entry instead
        of an inode, and creating inodes is a good part of a store's kernel time on ext4. The
        shared copies are named by their content and a generation, so every process and every
        restart links to the same one; they are never written again (nothing rewrites array
        metadata in place); a copy at the file system's link limit passes to the next generation.
        """
        if self._linking:
            with self._lock:
                shared, generation = self._meta_links.get(meta, (None, 0))
            for _attempt in range(4):
                try:
                    if shared is None:
                        shared = self._shared_copy(meta, generation)
                    os.link(shared, target)
                    return
                except OSError as exc:
                    if exc.errno in _NO_HARD_LINKS:  # plain files from now on
                        self._linking = False
                        break
                    if exc.errno == errno.EMLINK:  # this copy is full: the next generation
                        generation += 1
                    elif exc.errno != errno.ENOENT:  # e.g. a full disk: the plain write says so
                        break
                    shared = None  # ENOENT: the copy was removed; make it again
        _write(target, meta, fsync)

    def _shared_copy(self, meta: bytes, generation: int) -> Path:
        """The shared copy of `meta` of this generation, made (atomically, durably) if missing."""
        path = self.shared / f"zarr-{hashlib.sha256(meta).hexdigest()[:32]}-{generation}.json"
        try:
            intact = path.read_bytes() == meta
        except FileNotFoundError:
            intact = False
        if not intact:
            tmp = self.shared / f".{path.name}.{uuid.uuid4().hex}.tmp"
            _write(tmp, meta, True)
            try:
                if path.exists():  # damaged: a new inode takes the name, linked versions keep theirs
                    os.replace(tmp, path)
                else:
                    os.link(tmp, path)  # another process may have made it meanwhile: either is right
            except FileExistsError:
                pass
            finally:
                tmp.unlink(missing_ok=True)
            _fsync_dir(str(self.shared))
        with self._lock:
            self._meta_links[meta] = (path, generation)
        return path

    def sync(self, key: str, new_parents: int = 3) -> None:
        """Make a version durable: its files and the folder entries that name them.

        With group sync (Linux syncfs), one file-system sync covers every version written
        before it started; otherwise each file was fsync'ed as written and the folders are
        fsync'ed here (`new_parents`: how many parent folders may be new).
        """
        if self._group.enabled:
            self._group.wait()
            return
        folder = self.path(key)
        _fsync_dir(str(folder))
        for parent in (folder.parent, folder.parent.parent, folder.parent.parent.parent)[:new_parents]:
            _fsync_dir(str(parent))

    def prepare(self, key: str) -> int:
        """Create (claim) a version's folder: how many folders were created, 0 if it existed.

        One writer claims a version: a second writer of the same key gets 0 and must not write.
        """
        folder = self.path(key)
        created = 0
        try:
            try:
                folder.mkdir()  # the study and series folders exist for all but a series' first
            except FileNotFoundError:
                created = _make_parents(folder)
                folder.mkdir()
        except FileExistsError:
            return 0
        return created + 1

    # -- reading ---------------------------------------------------------------------------
    def complete(self, key: str) -> bool:
        """Whether a version folder holds its completion record (written last), or the version
        is packed (complete once it exists)."""
        path = os.path.join(self._objects, *_key_parts(key))
        try:
            mode = os.stat(path).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return False
        return stat.S_ISREG(mode) or os.path.isfile(os.path.join(path, RECORD))

    def read_blob(self, key: str, name: str, offset: int = 0, length: int = -1) -> bytes:
        """Bytes of a blob, or a range of it."""
        try:
            with open(self._file(key, name), "rb") as fh:
                if offset:
                    fh.seek(offset)
                return fh.read(length)
        except NotADirectoryError:  # a packed version
            member = self._member(key, name)
            if not offset and (length < 0 or length >= len(member)):
                return member
            return member[offset:] if length < 0 else member[offset:offset + length]
        except FileNotFoundError:
            raise StorageError(f"{key}/{name} is not stored") from None

    def open_blob(self, key: str, name: str) -> BinaryIO:
        """An open binary file of a blob (caller closes)."""
        try:
            return open(self.path(key) / name, "rb")
        except NotADirectoryError:
            return io.BytesIO(self._member(key, name))
        except FileNotFoundError:
            raise StorageError(f"{key}/{name} is not stored") from None

    def blob_size(self, key: str, name: str) -> int:
        """Size in bytes of a blob."""
        try:
            return os.stat(self._file(key, name)).st_size
        except NotADirectoryError:
            return self._member_size(key, name)
        except FileNotFoundError:
            raise StorageError(f"{key}/{name} is not stored") from None

    def read_frame(self, key: str, index: int) -> np.ndarray:
        """One native frame (0-based), read from its own chunk file only."""
        shape, dtype = self._layout(key)
        if not 0 <= index < shape[0]:
            raise StorageError(f"{key} has no frame {index + 1}")
        name = str(index) + ".0" * (len(shape) - 1)
        try:
            with open(self._file(key, os.path.join(PIXELS, name)), "rb") as fh:
                data = fh.read()
        except NotADirectoryError:  # a packed version
            try:
                data = self._packed(key, name)
            except (KeyError, PackError, OSError):
                return np.zeros(shape[1:], dtype=dtype)
        except FileNotFoundError:  # never written: zarr's fill value
            return np.zeros(shape[1:], dtype=dtype)
        return np.frombuffer(numcodecs.blosc.decompress(data), dtype=dtype).reshape(shape[1:])

    def _layout(self, key: str) -> tuple[tuple[int, ...], np.dtype]:
        """Shape and dtype from the array's zarr.json, cached (a few bytes per version)."""
        with self._lock:
            hit = self._layouts.get(key)
            if hit is not None:
                return hit
        try:
            meta = json.loads((self.path(key) / PIXELS / "zarr.json").read_bytes())
        except NotADirectoryError:
            meta = json.loads(self._member(key, "zarr.json"))
        except FileNotFoundError:
            raise StorageError(f"{key} has no native frames") from None
        endian = next((c.get("configuration", {}).get("endian", "little") for c in meta["codecs"]
                       if c["name"] == "bytes"), "little")
        dtype = np.dtype(meta["data_type"]).newbyteorder("<" if endian == "little" else ">")
        layout = (tuple(meta["shape"]), dtype)
        with self._lock:
            self._layouts[key] = layout
            while len(self._layouts) > 200_000:
                self._layouts.popitem(last=False)
        return layout

    def read_frames(self, key: str) -> np.ndarray:
        """All native frames of a version, chunk file by chunk file (zarr's API costs ~2 ms more)."""
        shape, dtype = self._layout(key)
        out = np.empty(shape, dtype=dtype)
        for i in range(shape[0]):
            out[i] = self.read_frame(key, i)
        return out

    def frames_nbytes(self, key: str) -> int:
        """Bytes of all native frames of a version, decoded (from the layout: nothing decoded)."""
        shape, dtype = self._layout(key)
        return int(np.prod(shape)) * dtype.itemsize

    def frame_count(self, key: str) -> int:
        """How many native frames a version holds."""
        return int(self._layout(key)[0][0])

    # -- deleting and listing --------------------------------------------------------------
    def delete(self, key: str) -> None:
        """Remove a version (missing is fine: delete is idempotent)."""
        folder = self.path(key)
        with self._lock:
            self._layouts.pop(key, None)
            self._indexes.pop(key, None)
        try:
            os.unlink(folder)  # a packed version
        except FileNotFoundError:
            pass
        except OSError:  # EISDIR (Linux) or EPERM: a folder
            shutil.rmtree(folder, ignore_errors=True)
        for parent in (folder.parent, folder.parent.parent):
            try:
                parent.rmdir()
            except OSError:
                break

    def exists(self, key: str) -> bool:
        """Whether a version is completely stored."""
        return self.complete(key)

    def versions(self) -> Iterator[str]:
        """Every stored version's key (complete or not)."""
        for study in sorted(self.objects.iterdir()):
            if not study.is_dir():
                continue
            for series in sorted(study.iterdir()):
                if series.is_dir():
                    for version in sorted(series.iterdir()):
                        if not version.name.startswith(".") and (version.is_dir() or version.is_file()):
                            yield f"{study.name}/{series.name}/{version.name}"

    def size(self, key: str) -> int:
        """Disk bytes used by a version."""
        path = self.path(key)
        if path.is_file():
            return path.stat().st_size
        total = 0
        for dirpath, _dirs, files in os.walk(path):
            total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
        return total

    def temp_path(self, suffix: str = "") -> Path:
        """A fresh path in the store's temp folder (same file system: renames stay atomic)."""
        import uuid

        return self.tmp / f"{uuid.uuid4().hex}{suffix}"


def _key_parts(key: str) -> list[str]:
    parts = key.split("/")
    if len(parts) != 3 or any(p in ("", ".", "..") or "\\" in p for p in parts):
        raise StorageError(f"malformed storage key {key!r}")
    return parts


@functools.lru_cache(maxsize=64)
def _array_template(count: int, frame_shape: tuple[int, ...], dtype: str) -> tuple[bytes, numcodecs.Blosc]:
    """zarr.json bytes as zarr writes them for this shape, and the matching chunk codec."""
    store = MemoryStore()
    zarr.create_array(
        store=store, shape=(count, *frame_shape), chunks=(1, *frame_shape), dtype=np.dtype(dtype),
        fill_value=0, chunk_key_encoding={"name": "v2", "separator": "."},
        compressors=[BloscCodec(cname=CNAME, clevel=CLEVEL, shuffle=SHUFFLE)])
    meta = zarr.core.sync.sync(store.get("zarr.json", prototype=default_buffer_prototype()))
    assert meta is not None
    shuffle = {"shuffle": numcodecs.Blosc.SHUFFLE, "bitshuffle": numcodecs.Blosc.BITSHUFFLE}[SHUFFLE]
    codec = numcodecs.Blosc(cname=CNAME, clevel=CLEVEL, shuffle=shuffle, blocksize=0)
    return meta.to_bytes(), codec


def _make_parents(version: Path) -> int:
    """Create a version's study and series folders where missing; how many were created."""
    created = 0
    for parent in (version.parent.parent, version.parent):
        try:
            parent.mkdir()
            created += 1
        except FileExistsError:
            pass
    return created


def _write_new(path: str, data: list[bytes], fsync: bool) -> None:
    """A new file holding the pieces of `data` (os-level calls: the buffered file object cost more
    than the write)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        _write_all(fd, data)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: list[bytes]) -> None:
    """Write the pieces one after another (writev: one call for all, no joined copy)."""
    views = [memoryview(piece).cast("B") for piece in data if len(piece)]
    while views:
        done = os.writev(fd, views[:1024])  # IOV_MAX
        while done and views:
            if done >= len(views[0]):
                done -= len(views.pop(0))
            else:
                views[0], done = views[0][done:], 0


def _write(path: Path, data: bytes, fsync: bool) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
