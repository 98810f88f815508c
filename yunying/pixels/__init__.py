"""Pixel pipeline: decode, encode, transcode, negotiate frame media and render (pure, synchronous)."""
from yunying.pixels.codecs import (
    can_decode,
    can_encode,
    decode_frame,
    decode_frame_info,
    encode_frame,
    encode_refusal,
)
from yunying.pixels.frameinfo import FrameInfo, UnsupportedTransfer
from yunying.pixels.frames import answer_frame, transcode_frame
from yunying.pixels.negotiate import FrameChoice, negotiate_frame_media, parse_accept
from yunying.pixels.params import RenderParams, negotiate_rendered_media, parse_render_params
from yunying.pixels.preview import decode_preview, render_preview
from yunying.pixels.render import render, thumbnail, to_display
from yunying.pixels.syntaxes import is_lossy
from yunying.pixels.transcode import iter_frames, transcode_dataset

__all__ = [
    "FrameChoice",
    "FrameInfo",
    "RenderParams",
    "UnsupportedTransfer",
    "answer_frame",
    "can_decode",
    "can_encode",
    "decode_frame",
    "decode_frame_info",
    "decode_preview",
    "encode_frame",
    "encode_refusal",
    "is_lossy",
    "iter_frames",
    "negotiate_frame_media",
    "negotiate_rendered_media",
    "parse_accept",
    "parse_render_params",
    "render",
    "render_preview",
    "thumbnail",
    "to_display",
    "transcode_dataset",
    "transcode_frame",
]
