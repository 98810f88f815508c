"""Packed versions: a small instance's whole version folder as one file (issue 9 part 2).

A version folder costs what its size does not: three folders, four or five files, a rename,
and an inode and a 4 KiB block per file (a 2 KB instance took ~20 KB of disk and ~1.6 ms of
file-system calls, more than its parsing). A version below PACK_BELOW, or of one frame below
PACK_ONE_FRAME_BELOW (a CT slice), is instead one file at the folder's path, holding the same
members (header.dcm, record.json, zarr.json and the frame chunks, or pixeldata.bin) byte for byte:

    MAGIC (8 bytes) | u32 LE n | n bytes of JSON {name: [offset, length]} | members

It is written whole under the store's tmp folder and linked into place (link(2) refuses an
existing name, so one writer of a version wins), so a packed version is complete as soon as it
exists: there is no half-written one for recovery to remove. Readers read the index and the one member they need (`read_member`).
"""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path

MAGIC = b"YYPACK1\n"
PACK_BELOW = 64 << 10  # received bytes; larger instances keep a folder (a zarr array of frames)...
# ...unless they hold one frame: a CT slice's folder (a mkdir, three creates, a link, a rename)
# cost ~0.3-0.5 ms more CPU in the kernel than one file, against ~2 ms for its whole write
# (issue 9). Multi-frame instances keep their zarr array of one chunk file per frame.
PACK_ONE_FRAME_BELOW = 16 << 20
FIRST_READ = 4096  # bytes read first from a packed file: its index, and often a small member


class PackError(ValueError):
    """A file at a version's path that is not a packed version."""


def packs(size: int, frames: int) -> bool:
    """Whether a version of `size` received bytes holding `frames` frames is written packed."""
    return size < PACK_BELOW or (frames <= 1 and size < PACK_ONE_FRAME_BELOW)


def pack(members: dict[str, bytes]) -> bytes:
    """The packed file of `members` (in their order)."""
    return b"".join(pieces(members))


def pieces(members: dict[str, bytes]) -> list[bytes]:
    """pack(members) as the pieces to write one after another (no joined copy of the members)."""
    offsets: dict[str, list[int]] = {}
    pos = 0
    for name, data in members.items():
        offsets[name] = [pos, len(data)]
        pos += len(data)
    index = json.dumps(offsets, separators=(",", ":")).encode()
    return [MAGIC + struct.pack("<I", len(index)) + index, *members.values()]


def members(data: bytes) -> dict[str, memoryview]:
    """The members of a packed file, as views of `data`."""
    if data[:8] != MAGIC or len(data) < 12:
        raise PackError("not a packed version")
    (n,) = struct.unpack_from("<I", data, 8)
    base = 12 + n
    try:
        index = json.loads(data[12:base])
    except ValueError:
        raise PackError("packed version with a damaged index") from None
    view = memoryview(data)
    out = {}
    for name, (off, length) in index.items():
        if base + off + length > len(data):
            raise PackError("packed version shorter than its index says")
        out[name] = view[base + off:base + off + length]
    return out


def read_members(path: Path) -> dict[str, memoryview]:
    """Members of the packed file at `path` (FileNotFoundError when there is none)."""
    return members(path.read_bytes())


def read_member(path: str, name: str, size_only: bool = False) -> bytes | int:
    """One member of the packed file at `path` (or its length), reading its index and that
    member only: a retrieve reads a CT slice's header and frame separately, and reading the
    whole file for each cost a copy of every other member (KeyError: no such member)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        index = read_index(fd)
        return index.entries[name][1] if size_only else index.read(fd, name)
    finally:
        os.close(fd)


class Index:
    """Where a packed file's members are: `entries` {name: (offset, length)} from `base`."""

    __slots__ = ("base", "entries", "first")

    def __init__(self, base: int, entries: dict[str, tuple[int, int]], first: bytes) -> None:
        self.base, self.entries, self.first = base, entries, first

    def read(self, fd: int, name: str) -> bytes:
        """The member `name` of the packed file open as `fd` (KeyError: no such member)."""
        off, length = self.entries[name]
        start = self.base + off
        if start + length <= len(self.first):  # read with the index already
            return self.first[start:start + length]
        data = os.pread(fd, length, start)
        if len(data) != length:
            raise PackError("packed version shorter than its index says")
        return data


def read_index(fd: int) -> Index:
    """The index of the packed file open as `fd` (PackError when it is none)."""
    first = os.pread(fd, FIRST_READ, 0)
    if first[:8] != MAGIC or len(first) < 12:
        raise PackError("not a packed version")
    (n,) = struct.unpack_from("<I", first, 8)
    base = 12 + n
    head = first if base <= len(first) else first + os.pread(fd, base - len(first), len(first))
    try:
        entries = {str(k): (int(v[0]), int(v[1])) for k, v in json.loads(head[12:base]).items()}
    except (ValueError, TypeError, AttributeError, IndexError):
        raise PackError("packed version with a damaged index") from None
    return Index(base, entries, first)
