"""pydicom's own test files through the viewer: what is painted lies between the server values
of the neighbouring pixels through the window (interpolation may only blend neighbours); a colour
image comes as the server's rendering."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pydicom
import pytest

from benchmarks.net import YunyingServer
from tests.conftest import pydicom_path
from tests.frontends.conftest import DESKTOP, PHONE
from tests.frontends.phantom import grey

# canvas pixels on a grid across the viewport: their image position and painted RGB
SAMPLE_JS = """(n) => { const vp = window.yunyingViewer.viewports[0], c = vp.canvas, inv = vp.toCanvas().inverse();
  const o = document.createElement('canvas'); o.width = c.width; o.height = c.height;
  const ctx = o.getContext('2d'); ctx.drawImage(c, 0, 0); const d = ctx.getImageData(0, 0, c.width, c.height).data;
  const out = [];
  for (let i = 1; i < n; i++) for (let j = 1; j < n; j++) {
    const x = Math.floor(c.width * i / n), y = Math.floor(c.height * j / n);
    const p = inv.transformPoint(new DOMPoint(x + 0.5, y + 0.5)), k = (y * c.width + x) * 4;
    out.push([p.x, p.y, d[k], d[k + 1], d[k + 2]]); }
  return out; }"""


def stored(archive: YunyingServer, name: str) -> pydicom.Dataset:
    path = pydicom_path(name)
    ds = pydicom.dcmread(path)
    r = httpx.post(f"{archive.dicomweb_url}/studies", content=Path(path).read_bytes(),
                   headers={**archive.headers, "Content-Type": "application/dicom"}, timeout=60)
    assert r.status_code == 200, r.text
    return ds


def open_study(open_page: Any, archive: YunyingServer, ds: pydicom.Dataset, query: str = "", **context: Any) -> Any:
    p = open_page(**(context or DESKTOP))
    p.page.goto(f"{archive.http_url}/viewer/?study={ds.StudyInstanceUID}&lang=en{query}#access_token={archive.api_key}")
    p.page.wait_for_function("performance.getEntriesByName('full-fidelity').length > 0", timeout=30000)
    p.page.wait_for_function("document.querySelectorAll('.series-card').length > 0")  # the whole series is in
    p.page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    return p


@pytest.mark.parametrize(("name", "window", "query"), [
    ("CT_small.dcm", (40.0, 400.0), ""),            # no window in the header: CT opens on mediastinum
    ("CT_small.dcm", (40.0, 400.0), "&renderer=webgl2"),
    ("MR_small.dcm", (600.0, 1600.0), "&renderer=2d"),  # the header's window
])
def test_greyscale_pixels_are_the_server_values_through_the_window(
        open_page: Any, archive: YunyingServer, name: str, window: tuple[float, float], query: str) -> None:
    ds = stored(archive, name)
    values = ds.pixel_array.astype(float) * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
    greys = np.vectorize(lambda v: grey(v, *window))(values)
    p = open_study(open_page, archive, ds, query)
    inside = 0
    for x, y, r, g, b in p.page.evaluate(SAMPLE_JS, 24):
        if not (0 <= x < ds.Columns and 0 <= y < ds.Rows):
            assert r == g == b == 0  # outside the image: black
            continue
        inside += 1
        assert r == g == b
        x0, y0 = (min(max(0, math.floor(v - 0.5)), n - 2) for v, n in ((x, ds.Columns), (y, ds.Rows)))
        block = greys[y0:y0 + 2, x0:x0 + 2]
        assert block.min() - 1.5 <= r <= block.max() + 1.5, (x, y, r, block)
    assert inside > 200
    assert not p.errors


def test_a_colour_image_is_the_server_rendering(open_page: Any, archive: YunyingServer) -> None:
    ds = stored(archive, "examples_rgb_color.dcm")
    rgb = ds.pixel_array.astype(float)
    p = open_study(open_page, archive, ds, **PHONE)
    diffs = []
    for x, y, r, g, b in p.page.evaluate(SAMPLE_JS, 20):
        if 1 <= x < ds.Columns - 1 and 1 <= y < ds.Rows - 1:
            diffs.append(np.abs(rgb[int(y), int(x)] - (r, g, b)).mean())
    assert len(diffs) > 100 and float(np.median(diffs)) < 8  # a JPEG at quality 95, interpolated
    assert not p.errors


@pytest.mark.parametrize("renderer", ["2d", "webgl2", "int"])
def test_monochrome1_with_12_of_16_bits_stored(open_page: Any, archive: YunyingServer, renderer: str) -> None:
    """Bits above BitsStored are not part of the value (PS3.5 8.1.1) and MONOCHROME1 shows low
    values white: a DX whose high bits carry garbage."""
    from io import BytesIO

    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import (
        DigitalXRayImageStorageForPresentation,
        ExplicitVRLittleEndian,
        generate_uid,
    )

    values = np.tile(np.arange(0, 4096, 64, dtype=np.uint16), (64, 1))  # 64 columns of a ramp
    noisy = values | (np.arange(64, dtype=np.uint16)[:, None] % 16 << 12)  # garbage in bits 12-15
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.PatientID, ds.PatientName = "DX", "MONO1", "Test^Mono"
    ds.Rows = ds.Columns = 64
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME1"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = 2048, 4096
    ds.ImagerPixelSpacing = [0.2, 0.2]
    ds.PixelData = noisy.tobytes()
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    r = httpx.post(f"{archive.dicomweb_url}/studies", content=out.getvalue(),
                   headers={**archive.headers, "Content-Type": "application/dicom"}, timeout=60)
    assert r.status_code == 200, r.text
    greys = 255 - np.vectorize(lambda v: grey(v, 2048, 4096))(values.astype(float))
    p = open_study(open_page, archive, ds, f"&renderer={renderer}")
    checked = 0
    for x, y, red, _, _ in p.page.evaluate(SAMPLE_JS, 16):
        if 1 <= x < 63 and 1 <= y < 63:
            x0 = min(max(0, math.floor(x - 0.5)), 62)
            assert greys[0, x0:x0 + 2].min() - 1.5 <= red <= greys[0, x0:x0 + 2].max() + 1.5, (x, red)
            checked += 1
    assert checked > 50
    assert not p.errors
