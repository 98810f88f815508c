"""Decode and encode one frame in any transfer syntax we support (PS3.5 Section 8 and Annex A.4)."""
from __future__ import annotations

from typing import Any

import imagecodecs
import numpy as np
from pydicom.encaps import encapsulate
from pydicom.pixels import convert_color_space, get_decoder, get_encoder

from yunying.pixels import syntaxes as ts_
from yunying.pixels.frameinfo import FrameInfo, UnsupportedTransfer
from yunying.pixels.samples import match_sign, precision, to_signed, to_unsigned

_PYDICOM_ENCODED = {ts_.RLE, ts_.J2K_LOSSLESS, ts_.J2K}
_IMAGECODECS_ENCODED = {
    ts_.JPEG_BASELINE: "JPEG8", ts_.JPEG_EXTENDED: "JPEG8", ts_.JPEG_LOSSLESS: "JPEG8",
    ts_.JPEG_LOSSLESS_SV1: "JPEG8", ts_.JPEG_LS_LOSSLESS: "JPEGLS", ts_.JPEG_LS_NEAR: "JPEGLS",
    ts_.HTJ2K_LOSSLESS: "HTJ2K", ts_.HTJ2K_LOSSLESS_RPCL: "HTJ2K", ts_.HTJ2K: "HTJ2K",
    ts_.JXL_LOSSLESS: "JPEGXL", ts_.JXL: "JPEGXL",
}
_JXL_DECODED = {ts_.JXL_LOSSLESS, ts_.JXL_JPEG, ts_.JXL}
_JPEG_LOSSY = {ts_.JPEG_BASELINE, ts_.JPEG_EXTENDED}
# what pydicom's plugins and imagecodecs raise on a bitstream they cannot handle
CODEC_ERRORS = (RuntimeError, ValueError, TypeError, NotImplementedError, IndexError, KeyError,
                OverflowError)


def _codec_available(name: str) -> bool:
    codec = getattr(imagecodecs, name, None)
    return bool(codec is not None and getattr(codec, "available", False))


def can_decode(ts: str) -> bool:
    """True when a frame in this transfer syntax can be decoded here."""
    ts = str(ts).strip()
    if ts in _JXL_DECODED:
        return _codec_available("JPEGXL")
    if ts not in ts_.SYNTAXES:
        return False
    try:
        return bool(get_decoder(ts).is_available)
    except NotImplementedError:
        return False


def can_encode(ts: str) -> bool:
    """True when a frame can be encoded into this transfer syntax here."""
    ts = str(ts).strip()
    if ts in ts_.NATIVE:
        return True
    if ts in _PYDICOM_ENCODED:
        return bool(get_encoder(ts).is_available)
    name = _IMAGECODECS_ENCODED.get(ts)
    return bool(name and _codec_available(name))


def encode_refusal(ts: str, info: FrameInfo) -> str | None:
    """Why a frame described by info cannot be encoded into ts, or None when it can."""
    ts = str(ts).strip()
    if not can_encode(ts):
        return f"no encoder for transfer syntax {ts}"
    colour = info.samples_per_pixel == 3
    if ts in ts_.NATIVE:
        return None
    if info.bits_allocated not in (8, 16) and ts != ts_.RLE:
        return f"{ts} does not take BitsAllocated {info.bits_allocated} here"
    if colour and info.bits_allocated == 16 and ts in (ts_.JPEG_LOSSLESS, ts_.JPEG_LOSSLESS_SV1):
        return "16-bit colour lossless JPEG has no encoder here"
    if ts == ts_.RLE and info.bits_allocated not in (8, 16, 32):
        return f"RLE does not take BitsAllocated {info.bits_allocated}"
    if info.photometric == "PALETTE COLOR" and ts_.is_lossy(ts):
        return "palette indices must not be compressed lossily (PS3.5 8.2, Table 8.2.1-1)"
    if ts in (ts_.JPEG_BASELINE, ts_.JPEG_EXTENDED):
        # PS3.5 Table 8.2.1-1: lossy JPEG takes unsigned 8 (baseline) or 8/12 bit (extended) samples
        limit = 8 if ts == ts_.JPEG_BASELINE else 12
        if info.pixel_representation or info.bits_stored > limit:
            return f"lossy JPEG takes unsigned samples of at most {limit} bits"
        if colour and ts == ts_.JPEG_EXTENDED:
            return "JPEG extended is for monochrome images here"
    if ts == ts_.JPEG_LS_NEAR and colour and info.bits_allocated != 8:
        return "JPEG-LS near-lossless colour takes 8-bit samples"
    if ts in (ts_.JXL_LOSSLESS, ts_.JXL) and info.pixel_representation:
        return "JPEG XL takes unsigned samples"
    if colour and info.photometric == "YBR_FULL" and ts in (ts_.HTJ2K_LOSSLESS, ts_.HTJ2K_LOSSLESS_RPCL,
                                                           ts_.HTJ2K, ts_.JXL_LOSSLESS, ts_.JXL):
        return f"{ts} is not defined for YBR_FULL samples here"
    if info.photometric in ("YBR_FULL_422", "YBR_PARTIAL_420", "YBR_ICT", "YBR_RCT"):
        return f"cannot encode {info.photometric} samples; decode to RGB first"
    return None


def decode_frame_info(data: bytes, info: FrameInfo, transfer_syntax: str) -> tuple[np.ndarray, FrameInfo]:
    """Decode one frame; also return the FrameInfo of the result (YBR colour comes back as RGB)."""
    ts = str(transfer_syntax).strip()
    if ts in _JXL_DECODED:
        return _decode_jxl(data, info), info.with_(planar_configuration=0, number_of_frames=1)
    if not can_decode(ts):
        raise UnsupportedTransfer(f"no decoder for transfer syntax {ts}")
    fast = _fast_decode(data, info, ts)
    if fast is not None:
        photometric = "RGB" if info.photometric in ("YBR_ICT", "YBR_RCT") else info.photometric
        return fast, info.with_(photometric=photometric, planar_configuration=0, number_of_frames=1)
    native = ts in ts_.NATIVE
    src = bytes(data) if native else encapsulate([bytes(data)])
    # Samples stay as stored (YBR_FULL stays YBR_FULL) except where the colour transform is part
    # of the codec: lossy JPEG (PS3.5 8.2.1) comes back RGB; J2K/HTJ2K decoders undo their MCT.
    raw = ts not in _JPEG_LOSSY
    try:
        arr, meta = get_decoder(ts).as_array(src, index=0, raw=raw, **info.pixel_options())
    except CODEC_ERRORS as exc:  # a corrupt bitstream, or one pydicom's plugins refuse
        arr, meta = _fallback_decode(data, info, ts, exc)
    photometric = str(meta.get("photometric_interpretation", info.photometric))
    if native and photometric == "YBR_FULL_422":
        photometric = "YBR_FULL"  # pydicom removed the 4:2:2 sub-sampling (PS3.3 C.7.6.3.1.2)
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    out = info.with_(photometric=photometric, planar_configuration=0, number_of_frames=1)
    return arr.reshape(info.shape), out


_FAST = {
    ts_.JPEG_LS_LOSSLESS: "jpegls_decode", ts_.JPEG_LS_NEAR: "jpegls_decode",
    ts_.HTJ2K_LOSSLESS: "htj2k_decode", ts_.HTJ2K_LOSSLESS_RPCL: "htj2k_decode",
    # lossy HTJ2K through OpenJPEG: OpenJPH wraps samples the irreversible transform pushes past
    # the range (white became black in HTJ2K_08_RGB.dcm); OpenJPEG clamps, as pydicom does
    ts_.HTJ2K: "jpeg2k_decode", ts_.J2K_LOSSLESS: "jpeg2k_decode", ts_.J2K: "jpeg2k_decode",
    ts_.JPEG_LOSSLESS: "jpeg8_decode", ts_.JPEG_LOSSLESS_SV1: "jpeg8_decode",
}


def _fast_decode(data: bytes, info: FrameInfo, ts: str) -> np.ndarray | None:
    """Decode with imagecodecs (CharLS, OpenJPH, OpenJPEG, libjpeg-turbo) when it fits; else None.

    These are 3-25x faster than pydicom's pylibjpeg plugins for one 512x512 frame (bench.py).
    """
    name = _FAST.get(ts)
    if name is None or info.bits_allocated not in (8, 16):
        return None
    if name == "jpeg8_decode" and info.samples_per_pixel != 1:
        return None  # libjpeg-turbo would guess a colour transform from the markers
    try:
        arr = np.asarray(getattr(imagecodecs, name)(bytes(data)))
    except CODEC_ERRORS:
        return None  # let pydicom's plugins try, and report
    if arr.shape != info.shape or arr.dtype.itemsize != info.dtype().itemsize:
        return None
    return match_sign(arr, info)


def _fallback_decode(data: bytes, info: FrameInfo, ts: str,
                     exc: Exception) -> tuple[np.ndarray, dict[str, Any]]:
    """Try libjpeg-turbo (imagecodecs) on JPEG streams pydicom's plugins refuse (e.g. 12-bit progressive)."""
    if ts in (ts_.JPEG_BASELINE, ts_.JPEG_EXTENDED, ts_.JPEG_LOSSLESS, ts_.JPEG_LOSSLESS_SV1):
        try:
            arr = np.asarray(imagecodecs.jpeg8_decode(bytes(data)))
            if arr.shape == info.shape:
                photometric = "RGB" if info.samples_per_pixel == 3 else info.photometric
                return to_signed(arr, info), {"photometric_interpretation": photometric}
        except CODEC_ERRORS as second:
            exc = second if isinstance(exc, NotImplementedError) else exc
    raise UnsupportedTransfer(f"cannot decode frame ({ts}): {exc}") from exc


def decode_frame(data: bytes, info: FrameInfo, transfer_syntax: str) -> np.ndarray:
    """Decode one frame (native or compressed) into an array (rows, cols[, samples])."""
    return decode_frame_info(data, info, transfer_syntax)[0]


def _decode_jxl(data: bytes, info: FrameInfo) -> np.ndarray:
    try:
        arr = imagecodecs.jpegxl_decode(bytes(data))
    except CODEC_ERRORS as exc:
        raise UnsupportedTransfer(f"cannot decode JPEG XL frame: {exc}") from exc
    return to_signed(np.asarray(arr).reshape(info.shape), info)


def _native_bytes(arr: np.ndarray, info: FrameInfo, ts: str) -> bytes:
    if info.bits_allocated == 1:
        # PS3.5 8.1.1: 1-bit pixels packed little-endian bit order, frames bit-contiguous
        return np.packbits(arr.astype(np.uint8).ravel(), bitorder="little").tobytes()
    out = np.ascontiguousarray(arr, dtype=info.dtype())
    if ts == ts_.EXPLICIT_BE:
        out = out.astype(out.dtype.newbyteorder(">"))
    return out.tobytes()


def encode_frame(arr: np.ndarray, info: FrameInfo, transfer_syntax: str, *,
                 quality: int | None = None) -> tuple[bytes, FrameInfo]:
    """Encode one frame; return the bitstream and the FrameInfo as changed by the encoding."""
    ts = str(transfer_syntax).strip()
    if info.bits_allocated != 1 and tuple(arr.shape) != info.shape:
        raise UnsupportedTransfer(f"frame shape {arr.shape} does not match {info.shape}")
    reason = encode_refusal(ts, info)
    if reason:
        raise UnsupportedTransfer(reason)
    out = info.with_(planar_configuration=0, number_of_frames=1)
    if ts in ts_.NATIVE:
        return _native_bytes(arr, info, ts), out
    try:
        if ts in _PYDICOM_ENCODED:
            return _encode_pydicom(arr, out, ts, quality), out
        return _encode_imagecodecs(arr, out, ts, quality)
    except UnsupportedTransfer:
        raise
    except CODEC_ERRORS as exc:
        raise UnsupportedTransfer(f"cannot encode frame as {ts}: {exc}") from exc


def _encode_pydicom(arr: np.ndarray, info: FrameInfo, ts: str, quality: int | None) -> bytes:
    opts: dict[str, Any] = dict(info.pixel_options())
    if ts == ts_.J2K:
        # quality 1..100 -> compression ratio 50..2 (PS3.5 8.2.4: irreversible wavelet)
        q = 90 if quality is None else max(1, min(100, quality))
        opts["j2k_cr"] = [max(2.0, 50.0 - 0.48 * q)]
    arr = np.ascontiguousarray(arr, dtype=info.dtype())
    if ts == ts_.J2K_LOSSLESS and _codec_available("JPEG2K"):
        # OpenJPEG through imagecodecs: ~3x faster than through pylibjpeg, and small images
        # get fewer resolution levels than pydicom's fixed 6
        levels = max(1, min(6, int(np.log2(max(1, min(info.rows, info.columns)))) - 1))
        return bytes(imagecodecs.jpeg2k_encode(arr, codecformat="J2K", reversible=True,
                                               resolutions=levels, mct=False, numthreads=1))
    plugin = "pylibjpeg" if ts == ts_.RLE and "pylibjpeg" in get_encoder(ts).available_plugins else ""
    return bytes(get_encoder(ts).encode(arr, validate=False, encoding_plugin=plugin, **opts))


def _encode_imagecodecs(arr: np.ndarray, info: FrameInfo, ts: str,
                        quality: int | None) -> tuple[bytes, FrameInfo]:
    colour = info.samples_per_pixel == 3
    arr = np.ascontiguousarray(arr)
    if ts in (ts_.JPEG_LOSSLESS, ts_.JPEG_LOSSLESS_SV1):
        # PS3.5 8.2.1: process 14, first-order prediction (selection value 1)
        data = imagecodecs.jpeg8_encode(to_unsigned(arr, info), lossless=True, predictor=1,
                                        bitspersample=precision(arr, info),
                                        colorspace="RGB" if colour else None,
                                        outcolorspace="RGB" if colour else None)
        return bytes(data), info
    if ts in (ts_.JPEG_BASELINE, ts_.JPEG_EXTENDED):
        q = 90 if quality is None else quality
        if colour:  # PS3.5 8.2.1: colour baseline JPEG is YBR_FULL_422
            if info.photometric == "YBR_FULL":
                arr = convert_color_space(arr, "YBR_FULL", "RGB")
            data = imagecodecs.jpeg8_encode(arr.astype(np.uint8), level=q, colorspace="RGB",
                                            outcolorspace="YCBCR", subsampling="422")
            return bytes(data), info.with_(photometric="YBR_FULL_422")
        bits = 8 if info.bits_stored <= 8 else 12
        src = arr.astype(np.uint8 if bits == 8 else np.uint16)
        return bytes(imagecodecs.jpeg8_encode(src, level=q, bitspersample=bits)), info
    if ts in (ts_.JPEG_LS_LOSSLESS, ts_.JPEG_LS_NEAR):
        near = 0 if ts == ts_.JPEG_LS_LOSSLESS else (2 if quality is None else max(1, (100 - quality) // 10))
        return bytes(imagecodecs.jpegls_encode(to_unsigned(arr, info), level=near)), info
    if ts in (ts_.HTJ2K_LOSSLESS, ts_.HTJ2K_LOSSLESS_RPCL, ts_.HTJ2K):
        # OpenJPH writes RPCL progression. PS3.5 10.18: .202 also needs TLM marker segments and
        # enough decompositions for a base resolution <= 64 pixels (thumbnails from the stream)
        src = np.ascontiguousarray(arr, dtype=info.dtype())
        lossy = ts == ts_.HTJ2K
        kw: dict[str, Any] = {"reversible": not lossy, "rgb": False}
        if lossy:
            q = 90 if quality is None else max(1, min(100, quality))
            kw["level"] = (1.0 + (100 - q) * 0.2) / (1 << (8 * src.itemsize))  # quantisation step
        if ts == ts_.HTJ2K_LOSSLESS_RPCL:
            longest = max(info.rows, info.columns)
            kw["tlm"] = True
            kw["resolutions"] = max(5, (max(longest - 1, 1) // 64).bit_length())
        return bytes(imagecodecs.htj2k_encode(src, **kw)), info
    if ts in (ts_.JXL_LOSSLESS, ts_.JXL):
        lossless = ts == ts_.JXL_LOSSLESS
        level = None if lossless else (90 if quality is None else quality)
        data = imagecodecs.jpegxl_encode(np.ascontiguousarray(arr), level=level, lossless=lossless)
        return bytes(data), info
    raise UnsupportedTransfer(f"no encoder for transfer syntax {ts}")
