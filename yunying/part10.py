"""Byte-level assembly of Part 10 files from a stored header and pixel payload (PS3.10, PS3.5 7.1)."""
from __future__ import annotations

import io
import struct
from typing import Any

import numpy as np
import pydicom
from pydicom import Dataset
from pydicom.uid import UID

PIXEL_TAG_LE = struct.pack("<HH", 0x7FE0, 0x0010)
PIXEL_TAG_BE = struct.pack(">HH", 0x7FE0, 0x0010)
SEQ_DELIMITER = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)


def header_bytes(header: Dataset) -> bytes:
    """The instance without PixelData as a Part 10 file in its own transfer syntax."""
    buf = io.BytesIO()
    header.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def pixel_value(frames: np.ndarray, extra: dict[str, Any], big_endian: bool) -> bytes:
    """Re-join native frames into the PixelData value as received (padding byte included)."""
    arr = frames.astype(frames.dtype.newbyteorder(">"), copy=False) if big_endian else frames
    value = arr.tobytes()
    pad = extra.get("pad")
    return value + bytes.fromhex(pad) if pad else value


def pixel_element(value: bytes, vr: str, ts: UID, encapsulated: bool) -> bytes:
    """The encoded (7FE0,0010) element for a transfer syntax."""
    if len(value) % 2 and not encapsulated:
        value += b"\0"
    if encapsulated:
        return PIXEL_TAG_LE + b"OB\0\0" + b"\xff\xff\xff\xff" + value + SEQ_DELIMITER
    if ts == pydicom.uid.ImplicitVRLittleEndian:
        return PIXEL_TAG_LE + struct.pack("<I", len(value)) + value
    if ts == pydicom.uid.ExplicitVRBigEndian:
        return PIXEL_TAG_BE + vr.encode() + b"\0\0" + struct.pack(">I", len(value)) + value
    return PIXEL_TAG_LE + vr.encode() + b"\0\0" + struct.pack("<I", len(value)) + value


def join_part10(head: bytes, row: Any, value: bytes, ts: UID) -> bytes:
    """Append PixelData to a stored header when nothing in the header sorts after it."""
    if row.extra.get("tail"):
        ds = pydicom.dcmread(io.BytesIO(head), force=True)
        ds.add_new(0x7FE00010, row.extra.get("vr", "OW"), value)
        if row.pixel_form == "encapsulated":
            ds["PixelData"].is_undefined_length = True
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        return buf.getvalue()
    return head + pixel_element(value, row.extra.get("vr", "OW"), ts, row.pixel_form == "encapsulated")
