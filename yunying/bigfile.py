"""Ingest of large files in place: the pixel data is mapped or copied in pieces, never held in memory."""
from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.uid import UID

from yunying.errors import InvalidInstance, SOPClassMismatch
from yunying.ingest import (
    Parsed,
    _dataset_start,
    _digest,
    _meta_bytes,
    assign_fragments,
    identify,
    keep_image_module,
    native_layout,
    native_vr,
    read_dataset,
    set_native,
    walk_items,
)
from yunying.lenient import unknown_vrs

CHUNK = 1 << 20


@dataclass(frozen=True)
class FileRange:
    """A byte range of a file, copied out in pieces."""

    path: Path
    offset: int
    length: int

    def chunks(self) -> Iterator[bytes]:
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            left = self.length
            while left > 0:
                data = fh.read(min(CHUNK, left))
                if not data:
                    raise InvalidInstance("PixelData is truncated")
                left -= len(data)
                yield data

    def __len__(self) -> int:
        return self.length


class FrameFile:
    """Native frames read from a file one at a time, each into memory of its own (issue 10 part 6).

    A memory map of the whole value kept every page it had touched in the server's resident
    set: storing a 1.26 GB instance grew it by 1.2 GiB. Only what put_frames needs: shape,
    dtype and iteration in frame order.
    """

    def __init__(self, path: Path, dtype: np.dtype, shape: tuple[int, ...], offset: int) -> None:
        self.path, self.dtype, self.shape, self.offset = path, dtype, shape, offset

    def __len__(self) -> int:
        return self.shape[0]

    def __iter__(self) -> Iterator[np.ndarray]:
        count = int(np.prod(self.shape[1:]))
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            for _ in range(self.shape[0]):
                frame = np.fromfile(fh, dtype=self.dtype, count=count)
                if frame.size != count:
                    raise InvalidInstance("PixelData is truncated")
                yield frame.reshape(self.shape[1:])


def parse_large(path: Path) -> Parsed:
    """Like ingest.parse_instance, for a file too large to read whole (PS3.5 7.1, A.4)."""
    with open(path, "rb") as fh:
        digest, size = _digest(fh)
        ds = read_dataset(fh, stop_before_pixels=True, defer_size=1 << 20)
        elem_start = fh.tell()
        parsed = identify(ds, digest, size)
        if notes := unknown_vrs(ds):
            parsed.extra["warnings"] = notes
        start = _dataset_start(fh)
        fh.seek(elem_start)
        head = fh.read(12)
        little = ds.original_encoding[1]
        tag = struct.pack("<HH" if little else ">HH", 0x7FE0, 0x0010)
        if len(head) < 8 or not head.startswith(tag):
            fh.seek(start)
            parsed.head = _meta_bytes(ds) + fh.read()
            return parsed
        explicit = head[4:6] in (b"OB", b"OW")
        hdr = 12 if explicit else 8
        length = struct.unpack(("<" if little else ">") + "I", head[8:12] if explicit else head[4:8])[0]
        value_start = elem_start + hdr
        try:
            frames = int(ds.get("NumberOfFrames") or 1)
        except (ValueError, TypeError):
            raise SOPClassMismatch("NumberOfFrames is not a number") from None
        parsed.frames = frames
        keep_image_module(parsed, ds)
        ts = UID(parsed.transfer_syntax)
        tail = b""
        if length == 0xFFFFFFFF:
            def read(off: int, n: int) -> bytes:
                fh.seek(value_start + off)
                return fh.read(n)

            items = list(walk_items(read, size - value_start))
            value_len = items[-1][0] + items[-1][1] if items else 0
            tail = read(value_len, 8)
            if tail != b"\xfe\xff\xdd\xe0\0\0\0\0":
                raise InvalidInstance("encapsulated PixelData has no sequence delimiter")
            parsed.pixel_form, parsed.blob = "encapsulated", FileRange(path, value_start, value_len)  # type: ignore[assignment]
            parsed.extra.update(frames=assign_fragments(items, frames, read), vr=head[4:6].decode() if explicit else "OB")
            elem_end = value_start + value_len + 8
        else:
            if value_start + length > size:
                raise InvalidInstance("PixelData is truncated")
            parsed.extra["vr"] = native_vr(ds, head[4:6].decode() if explicit else None)
            layout = native_layout(ds, frames, length, ts)
            if layout is None:
                parsed.pixel_form, parsed.blob = "blob", FileRange(path, value_start, length)  # type: ignore[assignment]
            else:
                dtype, shape, count = layout
                arr = FrameFile(path, dtype, (frames, *shape), value_start)
                fh.seek(value_start + count * dtype.itemsize)
                set_native(parsed, arr, dtype, shape, fh.read(length - count * dtype.itemsize))  # type: ignore[arg-type]  # frames read one at a time, like an array
            elem_end = value_start + length
        meta = _meta_bytes(ds)
        fh.seek(start)
        before = fh.read(elem_start - start)
        fh.seek(elem_end)
        parsed.head = meta + before + fh.read()
        parsed.extra.update(cut=len(meta) + len(before), elem_head=head[:hdr].hex(), elem_tail=tail.hex())
    return parsed
