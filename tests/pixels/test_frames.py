"""transcode_frame: the per-frame path WADO-RS /frames and DIMSE retrieves use."""
from __future__ import annotations

import numpy as np
import pytest

from yunying.pixels import FrameInfo, UnsupportedTransfer, decode_frame, transcode_frame
from yunying.pixels import syntaxes as ts_

from .helpers import dicom_file, raw_frames


def test_same_syntax_passes_the_bitstream_through() -> None:
    ds = dicom_file("MR_small_jpeg_ls_lossless.dcm")
    data = next(iter(raw_frames(ds)))
    out, _ = transcode_frame(data, FrameInfo.from_dataset(ds), ts_.JPEG_LS_LOSSLESS,
                             ts_.JPEG_LS_LOSSLESS)
    assert out == bytes(data)


@pytest.mark.parametrize("target", [ts_.HTJ2K_LOSSLESS, ts_.J2K_LOSSLESS, ts_.EXPLICIT_LE, ts_.RLE])
def test_stored_bitstream_to_other_lossless_is_exact(target: str) -> None:
    ds = dicom_file("MR_small_jpeg_ls_lossless.dcm")
    info = FrameInfo.from_dataset(ds)
    out, out_info = transcode_frame(next(iter(raw_frames(ds))), info, ts_.JPEG_LS_LOSSLESS, target)
    np.testing.assert_array_equal(decode_frame(out, out_info, target), ds.pixel_array)


def test_native_array_to_htj2k_is_exact() -> None:
    ds = dicom_file("CT_small.dcm")
    info = FrameInfo.from_dataset(ds)
    out, out_info = transcode_frame(ds.pixel_array, info, ts_.EXPLICIT_LE, ts_.HTJ2K_LOSSLESS_RPCL)
    np.testing.assert_array_equal(decode_frame(out, out_info, ts_.HTJ2K_LOSSLESS_RPCL),
                                  ds.pixel_array)


def test_lossy_jpeg_colour_to_native_reports_rgb() -> None:
    ds = dicom_file("examples_ybr_color.dcm")
    info = FrameInfo.from_dataset(ds)
    out, out_info = transcode_frame(next(iter(raw_frames(ds))), info, ts_.JPEG_BASELINE,
                                    ts_.EXPLICIT_LE)
    assert out_info.photometric == "RGB"
    assert len(out) == info.rows * info.columns * 3


def test_palette_never_lossy() -> None:
    ds = dicom_file("examples_palette.dcm")
    with pytest.raises(UnsupportedTransfer, match="palette"):
        transcode_frame(ds.pixel_array, FrameInfo.from_dataset(ds), ts_.EXPLICIT_LE,
                        ts_.JPEG_BASELINE)


def test_answer_frame_falls_through_to_the_next_choice() -> None:
    from yunying.pixels import answer_frame, negotiate_frame_media

    info = FrameInfo(16, 16, 1, 16, 12, 11, 1, "MONOCHROME2", 0, 1)
    arr = (np.arange(256, dtype=np.int32).reshape(16, 16) * 40 - 3000).astype(np.int16)
    choices = negotiate_frame_media("image/jls, image/jphc;q=0.5", ts_.EXPLICIT_LE, info)
    assert choices is not None
    assert [c[1] for c in choices] == [ts_.JPEG_LS_LOSSLESS, ts_.HTJ2K_LOSSLESS]
    choice, data, out = answer_frame(arr, info, ts_.EXPLICIT_LE, choices)
    assert choice[1] == ts_.HTJ2K_LOSSLESS  # JPEG-LS refused: samples exceed BitsStored
    np.testing.assert_array_equal(decode_frame(data, out, ts_.HTJ2K_LOSSLESS), arr)
    with pytest.raises(UnsupportedTransfer, match="BitsStored"):
        answer_frame(arr, info, ts_.EXPLICIT_LE, choices[:1])
