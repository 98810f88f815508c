"""Byte-level assembly of Part 10 files from a stored header and pixel payload (PS3.10, PS3.5 7.1)."""
from __future__ import annotations

import io
from typing import Any

import numpy as np
import pydicom
from pydicom.uid import UID


def pixel_value(frames: np.ndarray, extra: dict[str, Any], big_endian: bool) -> bytes:
    """Re-join native frames into the PixelData value as received (padding byte included)."""
    arr = frames.astype(frames.dtype.newbyteorder(">"), copy=False) if big_endian else frames
    value = arr.tobytes()
    pad = extra.get("pad")
    return value + bytes.fromhex(pad) if pad else value


def join_part10(head: bytes, row: Any, value: bytes, ts: UID) -> bytes:
    """Put PixelData back where it was received, with the element header bytes it came with."""
    extra = row.extra
    if "cut" in extra:
        cut = extra["cut"]
        return b"".join((head[:cut], bytes.fromhex(extra["elem_head"]), value,
                         bytes.fromhex(extra.get("elem_tail", "")), head[cut:]))
    ds = pydicom.dcmread(io.BytesIO(head), force=True)
    ds.add_new(0x7FE00010, extra.get("vr", "OW"), value)
    if row.pixel_form == "encapsulated":
        ds["PixelData"].is_undefined_length = True
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
