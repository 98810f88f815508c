"""The whole-domain LUT cache (lut.domain_lut) and the JSON display header (display.display_header).

Both are shortcuts: each is checked against the per-frame path it replaces, exactly (PNG).
"""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset

from yunying.pixels import render
from yunying.pixels.display import display_header
from yunying.pixels.lut import domain_lut, grey_to_uint8, to_unit8

from .helpers import dicom_file


def png(frame: np.ndarray, header: object, window: tuple[float, float, str] | None) -> np.ndarray:
    data = render([frame], header, media_type="image/png", window=window, viewport=None, quality=None)
    return np.asarray(Image.open(io.BytesIO(data)))


def header(**values: object) -> Dataset:
    ds = Dataset()
    ds.PhotometricInterpretation = "MONOCHROME2"
    for k, v in values.items():
        setattr(ds, k, v)
    return ds


@pytest.mark.parametrize("dtype", ["int16", "uint16", "int8", "uint8"])
def test_domain_lut_equals_the_per_frame_pipeline(dtype: str) -> None:
    rng = np.random.default_rng(4)
    info = np.iinfo(dtype)
    frame = rng.integers(info.min, info.max, size=(37, 41), endpoint=True).astype(dtype)
    ds = header(RescaleSlope="0.5", RescaleIntercept="-100")
    for window in ((40.0, 400.0, "LINEAR"), (10.0, 30.0, "LINEAR_EXACT"), (0.0, 50.0, "SIGMOID")):
        want = to_unit8(frame.astype(np.int64), ds, window, 0)
        assert np.array_equal(grey_to_uint8(frame, ds, window), want)


def test_two_windows_two_tables_and_two_images() -> None:
    frame = np.arange(-1024, 1024, dtype=np.int16).reshape(32, 64)
    ds = header(RescaleSlope="1", RescaleIntercept="0")
    a = domain_lut(frame.dtype, ds, (40.0, 400.0, "LINEAR"))
    b = domain_lut(frame.dtype, ds, (300.0, 1500.0, "LINEAR"))
    assert a is not None and b is not None and not np.array_equal(a, b)
    assert not np.array_equal(grey_to_uint8(frame, ds, (40.0, 400.0, "LINEAR")),
                              grey_to_uint8(frame, ds, (300.0, 1500.0, "LINEAR")))
    assert domain_lut(frame.dtype, ds, (40.0, 400.0, "LINEAR")) is a  # cached


def test_tables_are_keyed_by_rescale_inversion_and_sample_type() -> None:
    window = (0.0, 200.0, "LINEAR")
    frame = np.arange(-100, 100, dtype=np.int16).reshape(10, 20)
    plain = grey_to_uint8(frame, header(RescaleIntercept="0"), window)
    shifted = grey_to_uint8(frame, header(RescaleIntercept="50"), window)
    inverted = grey_to_uint8(frame, header(RescaleIntercept="0", PresentationLUTShape="INVERSE"), window)
    assert not np.array_equal(plain, shifted)
    assert np.array_equal(inverted, 255 - plain)
    unsigned = grey_to_uint8(frame.view(np.uint16), header(RescaleIntercept="0"), window)
    assert not np.array_equal(unsigned, plain)  # the same bits read as unsigned are other values


def test_frame_dependent_pipelines_keep_the_per_frame_path() -> None:
    frame = np.arange(16, dtype=np.int16).reshape(4, 4)
    assert domain_lut(frame.dtype, header(), None) is None  # no window anywhere: min..max of this frame
    assert domain_lut(np.dtype(">i2"), header(), (1.0, 2.0, "LINEAR")) is None
    assert domain_lut(np.dtype("int32"), header(), (1.0, 2.0, "LINEAR")) is None
    got = grey_to_uint8(frame, header(), None)
    assert got.min() == 0 and got.max() == 255


def test_display_header_renders_like_the_parsed_header() -> None:
    ds = dicom_file("CT_small.dcm")
    ds.WindowCenter, ds.WindowWidth = ["1000", "40"], ["1500", "400"]
    doc = ds.to_json_dict(bulk_data_threshold=1, bulk_data_element_handler=lambda _: "yy-bulk:x")
    light = display_header(doc)
    assert light is not None and light["RescaleIntercept"] == pytest.approx(float(ds.RescaleIntercept))
    for window in (None, (40.0, 400.0, "LINEAR")):
        assert np.array_equal(png(ds.pixel_array, light, window), png(ds.pixel_array, ds, window))
    ds.PhotometricInterpretation = "MONOCHROME1"
    doc = ds.to_json_dict(bulk_data_threshold=1, bulk_data_element_handler=lambda _: "yy-bulk:x")
    assert np.array_equal(png(ds.pixel_array, display_header(doc), None), png(ds.pixel_array, ds, None))


@pytest.mark.parametrize("tag,element", [
    ("60003000", {"vr": "OW", "BulkDataURI": "yy-bulk:overlay"}),          # overlay plane
    ("00283010", {"vr": "SQ", "Value": [{}]}),                              # VOI LUT Sequence
    ("00283000", {"vr": "SQ", "Value": [{}]}),                              # Modality LUT Sequence
    ("52009230", {"vr": "SQ", "Value": [{}]}),                              # per-frame functional groups
    ("00280004", {"vr": "CS", "Value": ["PALETTE COLOR"]}),
    ("00280004", {"vr": "CS", "Value": ["RGB"]}),
])
def test_display_header_refuses_what_needs_the_full_header(tag: str, element: dict) -> None:
    doc = {"00280004": {"vr": "CS", "Value": ["MONOCHROME2"]}, "00281052": {"vr": "DS", "Value": [-1024]}}
    assert display_header(doc) is not None
    assert display_header({**doc, tag: element}) is None
