"""Sample representation for codecs: signed samples as BitsStored-bit patterns and back (PS3.5 8.2)."""
from __future__ import annotations

import numpy as np

from yunying.pixels.frameinfo import FrameInfo, UnsupportedTransfer


def to_unsigned(arr: np.ndarray, info: FrameInfo) -> np.ndarray:
    """Signed samples as their BitsStored-bit two's complement pattern (PS3.5 8.2: codecs take unsigned)."""
    if not info.pixel_representation:
        return arr
    low, high = -(1 << (info.bits_stored - 1)), (1 << (info.bits_stored - 1)) - 1
    if arr.size and (int(arr.min()) < low or int(arr.max()) > high):
        # masking would lose them: refuse rather than be silently inexact
        raise UnsupportedTransfer(f"samples exceed BitsStored {info.bits_stored}; use RLE, "
                                  "JPEG 2000 or HTJ2K for this image")
    mask = (1 << info.bits_stored) - 1
    out_type = np.uint8 if info.bits_allocated == 8 else np.uint16
    return (arr.astype(np.int64) & mask).astype(out_type)


def precision(arr: np.ndarray, info: FrameInfo) -> int:
    """JPEG lossless sample precision: BitsStored, or more when unsigned values overflow it."""
    if info.pixel_representation or not arr.size:
        return info.bits_stored
    return max(info.bits_stored, int(arr.max()).bit_length(), 2)


def to_signed(arr: np.ndarray, info: FrameInfo) -> np.ndarray:
    """Undo to_unsigned: sign-extend a BitsStored-bit pattern into the native signed dtype."""
    if not info.pixel_representation:
        return arr.astype(info.dtype(), copy=False)
    shift = 64 - info.bits_stored
    return ((arr.astype(np.int64) << shift) >> shift).astype(info.dtype())


def match_sign(arr: np.ndarray, info: FrameInfo) -> np.ndarray:
    """Give decoded samples the signedness of Pixel Representation (codestreams may disagree)."""
    want = info.dtype()
    if arr.dtype == want:
        return arr
    if info.pixel_representation:
        return to_signed(arr, info)
    return (arr.astype(np.int64) & ((1 << info.bits_stored) - 1)).astype(want)
