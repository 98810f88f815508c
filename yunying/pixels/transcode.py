"""Whole-instance transcoding between transfer syntaxes (PS3.5 Annex A; PS3.3 C.7.6.1.1.5 lossy flags)."""
from __future__ import annotations

import copy
from collections.abc import Iterator

import numpy as np
from pydicom import Dataset
from pydicom.encaps import encapsulate, encapsulate_extended, generate_frames
from pydicom.pixels import get_decoder
from pydicom.uid import UID

from yunying.pixels import syntaxes as ts_
from yunying.pixels.codecs import can_decode, decode_frame_info, encode_frame, encode_refusal
from yunying.pixels.frameinfo import FrameInfo, UnsupportedTransfer

_ALWAYS_LOSSY = {ts_.JPEG_BASELINE, ts_.JPEG_EXTENDED, ts_.JPEG_LS_NEAR, ts_.JXL_JPEG}
_FRAME_ONLY = {ts_.JXL_LOSSLESS, ts_.JXL_JPEG, ts_.JXL}
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_MAX_BOT = 0xFFFFFFFF  # PS3.5 A.4: Basic Offset Table offsets are 32-bit


def source_syntax(ds: Dataset) -> str:
    """The transfer syntax a dataset's pixel data is encoded in."""
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if ts is None:
        raise UnsupportedTransfer("dataset has no TransferSyntaxUID in its file meta")
    return str(ts).strip()


def iter_frames(ds: Dataset) -> Iterator[tuple[np.ndarray, FrameInfo]]:
    """Decode every frame of a dataset: (array, FrameInfo of that array) in frame order."""
    src = source_syntax(ds)
    info = FrameInfo.from_dataset(ds)
    if src in ts_.NATIVE:
        decoder = get_decoder(UID(src))
        for arr, meta in decoder.iter_array(ds, raw=True):
            photometric = str(meta.get("photometric_interpretation", info.photometric))
            if photometric == "YBR_FULL_422":
                photometric = "YBR_FULL"  # sub-sampling removed on decode (PS3.3 C.7.6.3.1.2)
            if arr.dtype.byteorder == ">":
                arr = arr.astype(arr.dtype.newbyteorder("<"))
            yield arr.reshape(info.shape), info.with_(photometric=photometric,
                                                      planar_configuration=0, number_of_frames=1)
        return
    if not can_decode(src):
        raise UnsupportedTransfer(f"no decoder for stored transfer syntax {src}")
    offsets = None
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        offsets = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
    for frame in generate_frames(ds.PixelData, number_of_frames=info.number_of_frames,
                                 extended_offsets=offsets):
        yield decode_frame_info(frame, info, src)


def transcode_dataset(ds: Dataset, target_ts: str, *, quality: int | None = None) -> Dataset:
    """A copy of ds with its pixel data in target_ts; lossless pairs are pixel-exact."""
    target = str(target_ts).strip()
    ts_.syntax(target)  # unknown syntax -> UnsupportedTransfer
    if target in _FRAME_ONLY:
        raise UnsupportedTransfer(f"{target} (JPEG XL) is served for frames only: pydicom 3.0 "
                                  "cannot write a dataset in it")
    src = source_syntax(ds)
    out = copy.deepcopy(ds)  # bytes values are shared, not copied
    if not any(k in ds for k in _PIXEL_KEYWORDS) or src == target:
        out.file_meta.TransferSyntaxUID = UID(target)
        return out
    if "PixelData" not in ds:
        if target not in ts_.NATIVE:
            raise UnsupportedTransfer("float pixel data can only be sent in a native syntax")
        out.file_meta.TransferSyntaxUID = UID(target)
        return out
    info = FrameInfo.from_dataset(ds)
    frames: list[bytes] = []
    native_parts: list[np.ndarray] = []
    out_info: FrameInfo | None = None
    for arr, frame_info in iter_frames(ds):
        if out_info is None and (reason := encode_refusal(target, frame_info)):
            raise UnsupportedTransfer(f"cannot transcode to {target}: {reason}")
        if target in ts_.NATIVE and info.bits_allocated == 1:
            native_parts.append(arr)  # 1-bit frames are bit-contiguous, packed together below
            out_info = frame_info
            continue
        data, out_info = encode_frame(arr, frame_info, target, quality=quality)
        frames.append(data)
    assert out_info is not None
    _set_pixel_data(out, target, frames, native_parts, out_info)
    _set_lossy_flags(out, ds, src, target, info, frames)
    return out


def _set_pixel_data(out: Dataset, target: str, frames: list[bytes], native_parts: list[np.ndarray],
                    info: FrameInfo) -> None:
    """Put the new pixel data and the Image Pixel attributes describing it into out."""
    for keyword in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
        if keyword in out:
            delattr(out, keyword)
    info.apply_to(out)
    out.file_meta.TransferSyntaxUID = UID(target)
    if target in ts_.NATIVE:
        if native_parts:
            bits = np.concatenate([p.ravel() for p in native_parts]).astype(np.uint8)
            value = np.packbits(bits, bitorder="little").tobytes()
        else:
            value = b"".join(frames)
        if len(value) % 2:
            value += b"\x00"  # PS3.5 7.1: even value length
        out.PixelData = value
        out["PixelData"].VR = "OB" if info.bits_allocated <= 8 else "OW"
        out["PixelData"].is_undefined_length = False
        return
    if sum(len(f) for f in frames) + 8 * len(frames) < _MAX_BOT:
        out.PixelData = encapsulate(frames, has_bot=True)
    else:  # PS3.5 A.4: too large for a 32-bit Basic Offset Table -> Extended Offset Table
        value, offsets, lengths = encapsulate_extended(frames)
        out.PixelData = value
        out.ExtendedOffsetTable, out.ExtendedOffsetTableLengths = offsets, lengths
    out["PixelData"].VR = "OB"
    out["PixelData"].is_undefined_length = True


def _set_lossy_flags(out: Dataset, ds: Dataset, src: str, target: str, info: FrameInfo,
                     frames: list[bytes]) -> None:
    """PS3.3 C.7.6.1.1.5: once lossy, always flagged; record ratio and method of this step."""
    if src in _ALWAYS_LOSSY:
        out.LossyImageCompression = "01"
    if not ts_.is_lossy(target) or target == ts_.JXL_JPEG:
        return
    out.LossyImageCompression = "01"
    size = sum(len(f) for f in frames) or 1
    native = info.rows * info.columns * info.samples_per_pixel * info.number_of_frames
    ratio = native * max(1, info.bits_allocated // 8) / size
    ratios = [str(r) for r in _values(ds, "LossyImageCompressionRatio")]
    methods = [str(m) for m in _values(ds, "LossyImageCompressionMethod")]
    out.LossyImageCompressionRatio = [*ratios, f"{ratio:.2f}"]
    out.LossyImageCompressionMethod = [*methods, ts_.syntax(target).method]


def _values(ds: Dataset, keyword: str) -> list[object]:
    """An element's values as a list (empty when absent)."""
    elem = ds.get(keyword)
    if elem is None or elem == "":
        return []
    if isinstance(elem, (str, bytes)) or not hasattr(elem, "__iter__"):
        return [elem]
    return list(elem)
