"""Progressive first image: a reduced-resolution decode and a small rendered preview (issue 4, part 4)."""
from __future__ import annotations

from typing import Any

import imagecodecs
import numpy as np

from yunying.pixels import syntaxes as ts_
from yunying.pixels.codecs import CODEC_ERRORS, decode_frame
from yunying.pixels.frameinfo import FrameInfo
from yunying.pixels.lut import Window
from yunying.pixels.render import render
from yunying.pixels.samples import match_sign

# lossless only: OpenJPH wraps the samples a lossy (irreversible) stream overshoots, 255 -> 0
_HTJ2K = {ts_.HTJ2K_LOSSLESS, ts_.HTJ2K_LOSSLESS_RPCL}


def decode_preview(data: bytes, info: FrameInfo, transfer_syntax: str, max_side: int = 128) -> np.ndarray:
    """A frame at about max_side pixels on its long side, as cheaply as the syntax allows.

    HTJ2K skips resolution levels (a 512x512 CT at 128x128 decodes in ~0.1 ms); other
    syntaxes decode fully, then keep every n-th pixel.
    """
    ts = str(transfer_syntax).strip()
    longest = max(info.rows, info.columns)
    levels = 0
    while longest >> (levels + 1) >= max_side and levels < 5:
        levels += 1
    if ts in _HTJ2K and levels and info.bits_allocated in (8, 16):
        try:
            arr = np.asarray(imagecodecs.htj2k_decode(bytes(data), skipres=levels))
            return match_sign(arr, info)
        except CODEC_ERRORS:
            pass  # fall back to a full decode below
    arr = decode_frame(data, info, ts)
    step = 1 << levels
    return np.ascontiguousarray(arr[::step, ::step])


def render_preview(data: bytes, info: FrameInfo, transfer_syntax: str, header: Any, *,
                   size: int = 128, window: Window | None = None, quality: int = 60) -> bytes:
    """A small, low-quality JPEG of one frame straight from its bitstream, for a phone's first paint."""
    small = decode_preview(data, info, transfer_syntax, max_side=size)
    return render([small], header, media_type="image/jpeg", window=window, viewport=(size, size),
                  quality=quality)
