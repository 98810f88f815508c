"""Pixel pipeline: decode, encode, transcode, negotiate frame media and render (pure, synchronous)."""
from yunying.pixels.codecs import can_decode, can_encode, decode_frame, decode_frame_info, encode_frame
from yunying.pixels.frameinfo import FrameInfo, UnsupportedTransfer
from yunying.pixels.syntaxes import is_lossy

__all__ = [
    "FrameInfo", "UnsupportedTransfer", "can_decode", "can_encode", "decode_frame",
    "decode_frame_info", "encode_frame", "is_lossy",
]
