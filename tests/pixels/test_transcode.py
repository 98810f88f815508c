"""transcode_dataset: every lossless pair pixel-exact (checked by pydicom's own decode), lossy flags."""
from __future__ import annotations

import io
import itertools

import numpy as np
import pydicom
import pytest

from yunying.pixels import UnsupportedTransfer, iter_frames, transcode_dataset
from yunying.pixels import syntaxes as ts_

from .helpers import dicom_file, reference_frames

LOSSLESS = [
    ts_.EXPLICIT_LE, ts_.IMPLICIT_LE, ts_.DEFLATED_LE, ts_.EXPLICIT_BE, ts_.RLE, ts_.JPEG_LOSSLESS,
    ts_.JPEG_LOSSLESS_SV1, ts_.JPEG_LS_LOSSLESS, ts_.J2K_LOSSLESS, ts_.HTJ2K_LOSSLESS,
    ts_.HTJ2K_LOSSLESS_RPCL,
]
# monochrome signed 16-bit, 8-bit RGB, 8-bit palette, 2-frame RGB, 12-bit in 16
SOURCES = ["CT_small.dcm", "examples_rgb_color.dcm", "examples_palette.dcm",
           "SC_rgb_rle_2frame.dcm", "MR_small_jpeg_ls_lossless.dcm"]


def _roundtrip(ds: pydicom.Dataset) -> pydicom.Dataset:
    """Write as a Part 10 file and read it back, as the archive and a client would."""
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buf.getvalue()))


def _pixels(ds: pydicom.Dataset) -> np.ndarray:
    """pydicom's own decode, samples as stored (raw)."""
    return reference_frames(ds, raw=True)


@pytest.mark.parametrize("name", SOURCES)
@pytest.mark.parametrize("first,second", list(itertools.product(LOSSLESS, LOSSLESS)))
def test_lossless_pair_is_pixel_exact(name: str, first: str, second: str) -> None:
    src = dicom_file(name)
    expected = _pixels(src)
    try:
        hop1 = _roundtrip(transcode_dataset(src, first))
        hop2 = _roundtrip(transcode_dataset(hop1, second))
    except UnsupportedTransfer as exc:  # every lossless pair of these files must work: no refusal is expected
        pytest.fail(f"{name} {first} -> {second} refused: {exc.reason}")
    assert str(hop2.file_meta.TransferSyntaxUID) == second
    np.testing.assert_array_equal(_pixels(hop1), expected)
    np.testing.assert_array_equal(_pixels(hop2), expected)
    assert hop2.get("LossyImageCompression") != "01"
    assert hop2.SOPInstanceUID == src.SOPInstanceUID


def test_lossless_transcode_keeps_every_other_element() -> None:
    src = dicom_file("CT_small.dcm")
    out = _roundtrip(transcode_dataset(src, ts_.JPEG_LS_LOSSLESS))
    for elem in src:
        if elem.keyword != "PixelData":
            assert out[elem.tag].value == elem.value, elem.keyword


@pytest.mark.parametrize("target", [ts_.JPEG_BASELINE, ts_.JPEG_LS_NEAR, ts_.J2K, ts_.HTJ2K])
def test_lossy_target_sets_lossy_image_compression(target: str) -> None:
    src = dicom_file("examples_rgb_color.dcm")
    out = _roundtrip(transcode_dataset(src, target))
    assert out.LossyImageCompression == "01"
    assert float(out.LossyImageCompressionRatio) > 1
    assert out.LossyImageCompressionMethod == ts_.syntax(target).method
    got = np.stack([a for a, _ in iter_frames(out)]).astype(int)
    assert np.abs(got - src.pixel_array[None]).mean() < 4  # RGB back, close to the original


def test_lossy_source_stays_flagged_in_lossless_target() -> None:
    src = dicom_file("examples_ybr_color.dcm")  # JPEG baseline, YBR_FULL_422
    out = _roundtrip(transcode_dataset(src, ts_.EXPLICIT_LE))
    assert out.LossyImageCompression == "01"
    assert out.PhotometricInterpretation == "RGB"
    np.testing.assert_array_equal(out.pixel_array, src.pixel_array)  # pydicom's RGB decode


def test_second_lossy_step_appends_ratio_and_method() -> None:
    src = dicom_file("JPGExtended.dcm")
    out = transcode_dataset(src, ts_.J2K)
    methods = out.LossyImageCompressionMethod
    assert (methods if isinstance(methods, str) else methods[-1]) == "ISO_15444_1"
    assert len(out.LossyImageCompressionRatio) == 2  # the stored JPEG's ratio, then ours


@pytest.mark.parametrize("target,reason", [
    (ts_.JPEG_BASELINE, "unsigned"),
    (ts_.JXL_LOSSLESS, "frames only"),
    ("1.2.840.10008.1.2.4.100", "unknown or unsupported"),
])
def test_impossible_transcode_names_its_reason(target: str, reason: str) -> None:
    with pytest.raises(UnsupportedTransfer, match=reason):
        transcode_dataset(dicom_file("CT_small.dcm"), target)


def test_same_syntax_is_a_copy() -> None:
    src = dicom_file("MR_small_RLE.dcm")
    out = transcode_dataset(src, ts_.RLE)
    assert out is not src and out.PixelData == src.PixelData


def test_deflated_source_to_htj2k() -> None:
    src = dicom_file("image_dfl.dcm")
    out = _roundtrip(transcode_dataset(src, ts_.HTJ2K_LOSSLESS))
    np.testing.assert_array_equal(out.pixel_array, src.pixel_array)
