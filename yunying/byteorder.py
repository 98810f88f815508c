"""Byte order of binary values when a data set moves between big and little endian (PS3.5 7.3).

pydicom converts numbers it has parsed (US, SL, FD, AT...) when it writes another byte order,
but keeps OW/OF/OL/OD/OV values as the bytes it read, and refuses the conversion in save_as.
These values are words of a fixed size, so they are swapped here, in every sequence item.
"""
from __future__ import annotations

import numpy as np
from pydicom import Dataset
from pydicom.uid import UID, ExplicitVRBigEndian

_WORD = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}
PIXEL_DATA = 0x7FE00010


def convert_byte_order(ds: Dataset, target: UID) -> None:
    """Make ds writable in target's byte order; the top-level PixelData is left as the caller set it.

    Raw elements must have been converted first (ds.iterall()); UN values cannot be swapped
    (their VR is unknown) and stay as received, as PS3.5 6.2.2 leaves them.
    """
    target_little = UID(target) != ExplicitVRBigEndian
    source_little = ds.original_encoding[1]  # items are encoded as the data set holding them
    swap = source_little is not None and source_little != target_little
    _convert(ds, swap, target_little, top=True)


def _convert(ds: Dataset, swap: bool, target_little: bool, top: bool) -> None:
    if swap:
        for elem in ds:
            if top and elem.tag == PIXEL_DATA:
                continue
            size = _WORD.get(elem.VR)
            if size and isinstance(elem.value, (bytes, bytearray)) and len(elem.value) % size == 0:
                elem.value = np.frombuffer(elem.value, f"u{size}").byteswap().tobytes()
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                _convert(item, swap, target_little, top=False)
    ds.set_original_encoding(False, target_little, ds.original_character_set)
