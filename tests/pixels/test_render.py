"""render/thumbnail against a reference greyscale pipeline written here in numpy (PS3.3 C.11.2.1.2).

Tolerance: PNG output is lossless, so it must match the reference within 1 grey level (rounding);
JPEG output must be within a mean absolute error of 2 levels (q=95).
"""
from __future__ import annotations

import copy
import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pydicom
import pytest
from PIL import GifImagePlugin, Image
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, convert_color_space
from pydicom.sequence import Sequence

from yunying.errors import NotAcceptable
from yunying.pixels import iter_frames, render, thumbnail

from .helpers import dicom_file, raw_frames


def ref_linear(x: np.ndarray, c: float, w: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1, written out case by case."""
    lo, hi = c - 0.5 - (w - 1) / 2, c - 0.5 + (w - 1) / 2
    y = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255
    return np.where(x <= lo, 0, np.where(x > hi, 255, y))


def ref_linear_exact(x: np.ndarray, c: float, w: float) -> np.ndarray:
    y = ((x - c) / w + 0.5) * 255
    return np.where(x <= c - w / 2, 0, np.where(x > c + w / 2, 255, y))


def ref_sigmoid(x: np.ndarray, c: float, w: float) -> np.ndarray:
    return 255 / (1 + np.exp(-4 * (x - c) / w))


def png(frames: list[np.ndarray], ds: Dataset, **kw: Any) -> np.ndarray:
    data = render(frames, ds, media_type="image/png", window=kw.pop("window", None),
                  viewport=kw.pop("viewport", None), quality=None, **kw)
    return np.asarray(Image.open(io.BytesIO(data)))


def assert_close(got: np.ndarray, ref: np.ndarray, tol: float = 1.0) -> None:
    diff = np.abs(got.astype(float) - ref)
    assert diff.max() <= tol, f"max diff {diff.max()}"


def modality_values(ds: Dataset) -> np.ndarray:
    return ds.pixel_array * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))


def ct() -> Dataset:
    """CT_small (signed 16-bit, rescale) with a header window added."""
    ds = dicom_file("CT_small.dcm")
    ds.WindowCenter, ds.WindowWidth = ["1000", "40"], ["1500", "400"]  # first pair is used
    return ds


def test_signed_ct_header_window() -> None:
    ds = ct()
    c, w = float(np.ravel(ds.WindowCenter)[0]), float(np.ravel(ds.WindowWidth)[0])
    assert_close(png([ds.pixel_array], ds), ref_linear(modality_values(ds), c, w))


@pytest.mark.parametrize("function,ref", [
    ("LINEAR", ref_linear), ("LINEAR_EXACT", ref_linear_exact), ("SIGMOID", ref_sigmoid)])
def test_window_parameter_functions(function: str, ref: Callable[..., np.ndarray]) -> None:
    ds = dicom_file("CT_small.dcm")
    got = png([ds.pixel_array], ds, window=(40.0, 400.0, function))
    assert_close(got, ref(modality_values(ds), 40.0, 400.0))


def test_header_voi_lut_function_is_used() -> None:
    ds = dicom_file("MR_small.dcm")
    ds.WindowCenter, ds.WindowWidth, ds.VOILUTFunction = 600, 800, "SIGMOID"
    assert_close(png([ds.pixel_array], ds), ref_sigmoid(modality_values(ds), 600, 800))


def test_no_window_uses_min_max() -> None:
    ds = dicom_file("MR_small.dcm")
    for kw in ("WindowCenter", "WindowWidth"):
        if kw in ds:
            delattr(ds, kw)
    x = modality_values(ds)
    ref = (x - x.min()) / (x.max() - x.min()) * 255
    assert_close(png([ds.pixel_array], ds), ref)


def test_monochrome1_is_inverted() -> None:
    ds = ct()
    mono2 = png([ds.pixel_array], ds)
    ds.PhotometricInterpretation = "MONOCHROME1"
    c, w = float(np.ravel(ds.WindowCenter)[0]), float(np.ravel(ds.WindowWidth)[0])
    got = png([ds.pixel_array], ds)
    assert_close(got, 255 - ref_linear(modality_values(ds), c, w))
    assert_close(got, 255 - mono2.astype(float))


def test_presentation_lut_shape_inverse() -> None:
    ds = dicom_file("MR_small.dcm")
    plain = png([ds.pixel_array], ds)
    ds.PresentationLUTShape = "INVERSE"
    assert_close(png([ds.pixel_array], ds), 255 - plain.astype(float))


def test_voi_lut_sequence() -> None:
    ds = dicom_file("MR_small.dcm")
    for kw in ("WindowCenter", "WindowWidth"):
        if kw in ds:
            delattr(ds, kw)
    item = Dataset()
    first, n = 0, 4096
    table = (np.sqrt(np.arange(n) / (n - 1)) * 255).astype(np.uint16)  # a gamma-like curve
    item.LUTDescriptor = [n, first, 8]
    item.LUTData = table.tolist()
    ds.VOILUTSequence = Sequence([item])
    x = np.clip(modality_values(ds), 0, n - 1).astype(int)
    assert_close(png([ds.pixel_array], ds), table[x].astype(float))


def test_modality_lut_sequence() -> None:
    ds = dicom_file("MR_small.dcm")
    for kw in ("RescaleSlope", "RescaleIntercept"):
        if kw in ds:
            delattr(ds, kw)
    item = Dataset()
    n = int(ds.pixel_array.max()) + 1
    item.LUTDescriptor = [n, 0, 16]
    item.LUTData = (np.arange(n) * 2).astype(np.uint16).tolist()
    item.ModalityLUTType = "US"
    ds.ModalityLUTSequence = Sequence([item])
    got = png([ds.pixel_array], ds, window=(1000.0, 1000.0, "LINEAR_EXACT"))
    assert_close(got, ref_linear_exact(ds.pixel_array * 2.0, 1000.0, 1000.0))


def test_palette_color() -> None:
    ds = dicom_file("examples_palette.dcm")
    ref = apply_color_lut(ds.pixel_array, ds)
    ref = (ref >> 8) if ref.dtype != np.uint8 else ref
    assert_close(png([ds.pixel_array], ds), ref.astype(float), tol=0)


def test_ybr_full_to_rgb() -> None:
    ds = dicom_file("SC_ybr_full_422_uncompressed.dcm")
    frame, info = next(iter_frames(ds))  # YBR_FULL samples, sub-sampling removed
    header = copy.deepcopy(ds)
    header.PhotometricInterpretation = info.photometric
    ref = convert_color_space(frame, "YBR_FULL", "RGB")
    assert_close(png([frame], header), ref.astype(float), tol=0)


def test_rgb_16_bit_scaled_to_8() -> None:
    ds = dicom_file("SC_rgb_rle_16bit.dcm")
    assert_close(png([ds.pixel_array], ds), (ds.pixel_array >> 8).astype(float), tol=0)


def test_overlay_burnt_in() -> None:
    ds = dicom_file("examples_overlay.dcm")
    overlay = ds.overlay_array(0x6000).astype(bool)
    got = png([ds.pixel_array], ds)
    r0, c0 = (int(v) - 1 for v in ds[0x6000, 0x0050].value)
    region = got[r0:r0 + overlay.shape[0], c0:c0 + overlay.shape[1]]
    assert overlay.any() and (region[overlay[:region.shape[0], :region.shape[1]]] == 255).all()


def test_jpeg_quality_and_tolerance() -> None:
    ds = ct()
    c, w = float(np.ravel(ds.WindowCenter)[0]), float(np.ravel(ds.WindowWidth)[0])
    data = render([ds.pixel_array], ds, media_type="image/jpeg", window=None, viewport=None,
                  quality=95)
    got = np.asarray(Image.open(io.BytesIO(data))).astype(float)
    assert np.abs(got - ref_linear(modality_values(ds), c, w)).mean() < 2
    small = render([ds.pixel_array], ds, media_type="image/jpeg", window=None, viewport=None,
                   quality=20)
    assert len(small) < len(data)


def test_viewport_keeps_aspect() -> None:
    ds = dicom_file("JPEG2000.dcm")  # 1024 rows x 256 columns
    img = Image.open(io.BytesIO(render([ds.pixel_array], ds, media_type="image/png", window=None,
                                       viewport=(200, 200), quality=None)))
    assert img.size == (50, 200)


def test_multiframe_gif_cine() -> None:
    ds = dicom_file("rtdose.dcm")  # 15 frames, 32-bit
    frames = [a for a, _ in iter_frames(ds)]
    img = Image.open(io.BytesIO(render(frames, ds, media_type="image/gif", window=None,
                                       viewport=None, quality=None)))
    assert isinstance(img, GifImagePlugin.GifImageFile) and img.n_frames > 1


def test_multiframe_colour_frame_index() -> None:
    ds = dicom_file("SC_rgb_rle_2frame.dcm")
    frames = [a for a, _ in iter_frames(ds)]
    got = png([frames[1]], ds, frame_index=1)
    assert_close(got, frames[1].astype(float), tol=0)


def test_thumbnail_is_small_jpeg() -> None:
    ds = dicom_file("CT_small.dcm")
    img = Image.open(io.BytesIO(thumbnail(ds.pixel_array, ds, size=64)))
    assert img.format == "JPEG" and max(img.size) == 64


def test_unknown_rendered_type_is_406() -> None:
    ds = dicom_file("CT_small.dcm")
    with pytest.raises(NotAcceptable):
        render([ds.pixel_array], ds, media_type="image/webp", window=None, viewport=None,
               quality=None)


def test_one_bit_image() -> None:
    ds = dicom_file("liver_1frame.dcm")
    got = png([ds.pixel_array], ds)
    assert set(np.unique(got)) <= {0, 255}
    np.testing.assert_array_equal(got == 255, ds.pixel_array == 1)
    assert isinstance(pydicom.__version__, str)


def test_preview_from_htj2k_bitstream_is_reduced_and_close() -> None:
    from yunying.pixels import FrameInfo, encode_frame
    from yunying.pixels import syntaxes as ts_
    from yunying.pixels.bench import ct_frame, ct_header
    from yunying.pixels.preview import decode_preview, render_preview

    frame, header = ct_frame(), ct_header()
    info = FrameInfo.from_dataset(header)
    for ts in (ts_.HTJ2K_LOSSLESS, ts_.EXPLICIT_LE, ts_.JPEG_LS_LOSSLESS):
        data, out = encode_frame(frame, info, ts)
        small = decode_preview(data, out, ts, max_side=128)
        assert small.shape == (128, 128) and small.dtype == frame.dtype
        # a reduced image is a low-pass of the frame: compare with 4x4 block means
        blocks = frame.reshape(128, 4, 128, 4).mean(axis=(1, 3))
        assert np.median(np.abs(small - blocks)) < 40, ts
        img = Image.open(io.BytesIO(render_preview(data, out, ts, header, size=128)))
        assert img.format == "JPEG" and img.size == (128, 128)


def test_lossy_htj2k_preview_keeps_white_white() -> None:
    from yunying.pixels import FrameInfo, decode_frame
    from yunying.pixels.preview import decode_preview

    ds = dicom_file("HTJ2K_08_RGB.dcm")  # OpenJPH decoded 657 of its white samples as 0
    info, ts = FrameInfo.from_dataset(ds), str(ds.file_meta.TransferSyntaxUID)
    data = next(iter(raw_frames(ds)))
    small = decode_preview(data, info, ts, max_side=128)
    np.testing.assert_array_equal(small, decode_frame(data, info, ts)[::4, ::4])


def test_lossy_jpeg_colour_frames_are_not_converted_twice() -> None:
    ds = dicom_file("examples_ybr_color.dcm")  # JPEG baseline, header says YBR_FULL_422
    frame = next(iter_frames(ds))[0]           # decoded: RGB
    assert_close(png([frame], ds), frame.astype(float), tol=0)
    explicit = png([frame], ds, photometric="RGB")
    assert_close(explicit, frame.astype(float), tol=0)


# Property: odd but legal-looking headers never crash the renderer.
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays


@settings(max_examples=150, deadline=None)
@given(
    frame=arrays(st.sampled_from([np.int16, np.int32, np.float32]),
                 st.tuples(st.integers(1, 12), st.integers(1, 12)),
                 elements=st.integers(-300, 300)),
    centre=st.one_of(st.none(), st.floats(-1e4, 1e4)), width=st.one_of(st.none(), st.floats(-10, 1e4)),
    slope=st.one_of(st.none(), st.floats(-5, 5)), function=st.sampled_from(["LINEAR", "LINEAR_EXACT",
                                                                           "SIGMOID", "BOGUS"]),
    photometric=st.sampled_from(["MONOCHROME1", "MONOCHROME2"]),
    viewport=st.one_of(st.none(), st.tuples(st.integers(1, 40), st.integers(1, 40))),
    media=st.sampled_from(["image/jpeg", "image/png", "image/gif"]),
)
def test_render_never_crashes(frame: np.ndarray, centre: float | None, width: float | None,
                              slope: float | None, function: str, photometric: str,
                              viewport: tuple[int, int] | None, media: str) -> None:
    ds = Dataset()
    ds.PhotometricInterpretation = photometric
    if centre is not None and width is not None:
        ds.WindowCenter, ds.WindowWidth = f"{centre:.4g}", f"{width:.4g}"
        ds.VOILUTFunction = function
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept = f"{slope:.4g}", "-3"
    out = render([frame, frame], ds, media_type=media, window=None, viewport=viewport, quality=50)
    assert Image.open(io.BytesIO(out)).size[0] >= 1


def test_annotation_off_by_default_and_on_request() -> None:
    ds = ct()
    plain = png([ds.pixel_array], ds, viewport=(512, 512))
    marked = png([ds.pixel_array], ds, viewport=(512, 512), annotation="patient,technique")
    assert (marked != plain).any()  # text burnt in
    assert (marked[150:350, 150:350] == plain[150:350, 150:350]).all()  # centre untouched
    with pytest.raises(NotAcceptable):
        png([ds.pixel_array], ds, annotation="everything")
