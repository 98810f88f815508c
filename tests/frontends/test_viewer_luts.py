"""Modality LUT, VOI LUT, VOI LUT Functions and overlay planes painted by the viewer's own
renderers (WebGL2 float and integer textures, canvas 2D): real DICOM objects built here, stored
in a real archive, the painted greys checked against PS3.3 C.11 computed here and against the
server's /rendered PNG of the same frame."""
from __future__ import annotations

import io
import math
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import pack_bits
from pydicom.uid import (
    EnhancedCTImageStorage,
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from benchmarks.net import YunyingServer
from tests.frontends.conftest import DESKTOP, press
from tests.frontends.phantom import stow
from tests.frontends.test_viewer import SETTLE_JS, opened, url
from tests.frontends.test_viewer_display import grey_at

SIZE = 256
STORED = [0, 300, 700, 1200, 1800, 2500, 3300, 4000]  # one stored value per 32-column stripe
CENTRES = [(32 * k + 16.5, 128.5) for k in range(8)]
RENDERERS = ["2d", "webgl2", "int"]

# a non-linear Modality LUT (12 bits in, 16 out): modality value = 4095 + (stored / 4095)^2 * 60000
MODALITY_TABLE = [int(4095 + (i / 4095) ** 2 * 60000) for i in range(4096)]
# a VOI LUT over stored 200..3999 (8-bit output, a square root): below and above it the end entries
VOI_FIRST, VOI_TABLE = 200, [int(255 * math.sqrt(i / 3799)) for i in range(3800)]
WINDOW = (2000.0, 3000.0)
OVERLAY_BOX = (100, 120, 40, 60)  # rows 100..119, columns 40..59 (inside stripe 1)
SMALL_AT = (200, 200)  # a 16x16 overlay (inline in the metadata), origin row, column (1-based)


def instance(study: str, **extra: Any) -> bytes:
    """A 256x256 unsigned 12-bit secondary capture, stripes of STORED; `extra` attributes on top."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, generate_uid()
    ds.Modality, ds.PatientName, ds.PatientID, ds.StudyDate = "OT", "Lut^Test", "LUT-1", "20240301"
    ds.SeriesNumber = ds.InstanceNumber = 1
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows = ds.Columns = SIZE
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.tile(np.repeat(np.array(STORED, dtype="<u2"), SIZE // 8), (SIZE, 1)).tobytes()
    for key, v in extra.items():
        if isinstance(v, DataElement):
            ds[v.tag] = v
        else:
            setattr(ds, key, v)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def lut_item(first: int, bits: int, table: list[int], as_bytes: bool) -> Dataset:
    item = Dataset()
    item.LUTDescriptor = [len(table), first, bits]
    data = np.array(table, dtype="<u2")
    # OW bytes (over the inline limit: a BulkDataURI in the metadata) or US values (inline numbers)
    item["LUTData"] = DataElement(0x00283006, "OW", data.tobytes()) if as_bytes else DataElement(0x00283006, "US", table)
    return item


def overlay_elements(group: int, rows: int, cols: int, origin: tuple[int, int], mask: np.ndarray) -> dict[str, Any]:
    tag = group << 16
    return {f"o{group:x}{k}": DataElement(tag | e, vr, v) for k, (e, vr, v) in enumerate([
        (0x0010, "US", rows), (0x0011, "US", cols), (0x0040, "CS", "G"), (0x0050, "SS", list(origin)),
        (0x0100, "US", 1), (0x0102, "US", 0), (0x3000, "OW", pack_bits(mask.ravel()))])}


def linear(v: float, c: float, w: float) -> float:  # C.11.2.1.2.1
    return min(1.0, max(0.0, (v - (c - 0.5)) / (w - 1) + 0.5))


CASES: dict[str, tuple[dict[str, Any], Callable[[int], float]]] = {
    "modality LUT": ({"ModalityLUTSequence": [lut_item(0, 16, MODALITY_TABLE, True)],
                      "WindowCenter": 30000, "WindowWidth": 60000},
                     lambda s: linear(MODALITY_TABLE[s], 30000, 60000)),
    "VOI LUT": ({"VOILUTSequence": [lut_item(VOI_FIRST, 8, VOI_TABLE, False)]},
                lambda s: VOI_TABLE[min(max(s - VOI_FIRST, 0), len(VOI_TABLE) - 1)] / 255),
    "SIGMOID": ({"WindowCenter": WINDOW[0], "WindowWidth": WINDOW[1], "VOILUTFunction": "SIGMOID"},
                lambda s: 1 / (1 + math.exp(-4 * (s - WINDOW[0]) / WINDOW[1]))),
    # a narrow window on one stripe: LINEAR_EXACT gives it 0.25, LINEAR 0.5
    "LINEAR_EXACT": ({"WindowCenter": 1200.5, "WindowWidth": 2, "VOILUTFunction": "LINEAR_EXACT",
                      "RescaleSlope": 1, "RescaleIntercept": 0},
                     lambda s: min(1.0, max(0.0, (s - 1200.5) / 2 + 0.5))),
    "INVERSE": ({"WindowCenter": WINDOW[0], "WindowWidth": WINDOW[1], "PresentationLUTShape": "INVERSE"},
                lambda s: 1 - linear(s, *WINDOW)),  # C.11.6: low values bright, as MONOCHROME1
}


def overlay_case() -> dict[str, Any]:
    big = np.zeros((SIZE, SIZE), dtype=np.uint8)
    r0, r1, c0, c1 = OVERLAY_BOX
    big[r0:r1, c0:c1] = 1
    small = np.zeros((16, 16), dtype=np.uint8)
    small[4:12, 4:12] = 1
    return {"WindowCenter": WINDOW[0], "WindowWidth": WINDOW[1],
            **overlay_elements(0x6000, SIZE, SIZE, (1, 1), big), **overlay_elements(0x6002, 16, 16, SMALL_AT, small)}


@pytest.fixture(scope="module")
def studies(archive: YunyingServer) -> dict[str, tuple[str, str, str]]:
    """Case name -> (study, series, instance) UIDs, each case its own study."""
    out: dict[str, tuple[str, str, str]] = {}
    for name, extra in [*((n, e) for n, (e, _) in CASES.items()), ("overlay", overlay_case())]:
        study = generate_uid()
        data = instance(study, **extra)
        stow(archive, [data])
        ds = dcmread(io.BytesIO(data))
        out[name] = (study, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    return out


def server_rendered(archive: YunyingServer, uids: tuple[str, str, str]) -> np.ndarray:
    """The server's rendering of the frame (its own window / LUTs), lossless."""
    study, series, sop = uids
    r = httpx.get(f"{archive.dicomweb_url}/studies/{study}/series/{series}/instances/{sop}/frames/1/rendered",
                  headers={**archive.headers, "Accept": "image/png"}, timeout=30)
    assert r.status_code == 200, r.text
    return np.asarray(Image.open(io.BytesIO(r.content)).convert("L"))


@pytest.mark.parametrize("renderer", RENDERERS)
@pytest.mark.parametrize("case", list(CASES))
def test_the_viewer_paints_the_standard_pipeline(open_page: Any, archive: YunyingServer, studies: dict[str, Any],
                                                 case: str, renderer: str) -> None:
    p = open_page(**DESKTOP)
    page = opened(p.page, url(archive, studies[case][0], f"&lang=en&renderer={renderer}"))
    seen = [grey_at(page, x, y) for x, y in CENTRES]
    wanted = [255 * CASES[case][1](s) for s in STORED]
    assert all(abs(a - b) <= 1.5 for a, b in zip(seen, wanted, strict=True)), (seen, [round(w) for w in wanted])
    server = server_rendered(archive, studies[case])
    assert all(abs(int(server[int(y), int(x)]) - g) <= 1.5 for (x, y), g in zip(CENTRES, seen, strict=True)), \
        ([int(server[int(y), int(x)]) for x, y in CENTRES], seen)
    assert not p.errors, p.errors


@pytest.mark.parametrize("renderer", RENDERERS)
def test_a_chosen_window_replaces_the_voi_lut_until_reset(open_page: Any, archive: YunyingServer,
                                                          studies: dict[str, Any], renderer: str) -> None:
    p = open_page(**DESKTOP)
    page = opened(p.page, url(archive, studies["VOI LUT"][0], f"&lang=en&renderer={renderer}"))
    page.evaluate(SETTLE_JS)
    assert "VOI LUT" in page.inner_text(".viewport .corner.br")
    page.evaluate("window.yunyingViewer.viewports[0].setWindow(2000, 3000)")
    seen = [grey_at(page, x, y) for x, y in CENTRES]
    assert all(abs(a - 255 * linear(s, 2000, 3000)) <= 1.5 for a, s in zip(seen, STORED, strict=True)), seen
    assert "W 3000 L 2000" in page.inner_text(".viewport .corner.br")
    page.click("#reset")
    assert abs(grey_at(page, *CENTRES[3]) - 255 * CASES["VOI LUT"][1](STORED[3])) <= 1.5
    assert not p.errors, p.errors


@pytest.mark.parametrize("renderer", RENDERERS)
def test_overlay_planes_are_drawn_white_and_toggled(open_page: Any, archive: YunyingServer,
                                                    studies: dict[str, Any], renderer: str) -> None:
    p = open_page(**DESKTOP)
    page = opened(p.page, url(archive, studies["overlay"][0], f"&lang=en&renderer={renderer}"))
    r0, r1, c0, _ = OVERLAY_BOX
    inside, outside = (c0 + 10.5, r0 + 10.5), (c0 + 10.5, r1 + 5.5)  # both in stripe 1
    small = (SMALL_AT[1] - 1 + 8.5, SMALL_AT[0] - 1 + 8.5)  # the inline 16x16 plane's square
    stripe1 = round(255 * linear(STORED[1], *WINDOW))
    server = server_rendered(archive, studies["overlay"])
    for point in (inside, small):
        assert server[int(point[1]), int(point[0])] == 255  # the server burns the planes in
        assert grey_at(page, *point) == 255
    assert abs(grey_at(page, *outside) - stripe1) <= 1.5
    assert page.get_attribute("#overlays", "aria-pressed") == "true"
    press(page, "#overlays")
    assert page.get_attribute("#overlays", "aria-pressed") == "false"
    assert abs(grey_at(page, *inside) - stripe1) <= 1.5
    assert abs(grey_at(page, *small) - round(255 * linear(STORED[6], *WINDOW))) <= 1.5
    press(page, "#overlays")
    assert grey_at(page, *inside) == 255
    assert not p.errors, p.errors


def enhanced_ct(study: str) -> tuple[bytes, str, str]:
    """A two-frame Enhanced CT whose rescale, window and geometry live only in functional groups."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = EnhancedCTImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, generate_uid()
    ds.Modality, ds.PatientName, ds.PatientID, ds.StudyDate = "CT", "Enhanced^Test", "LUT-2", "20240302"
    ds.SeriesNumber = ds.InstanceNumber = 1
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.NumberOfFrames = 1, "MONOCHROME2", 2
    ds.Rows = ds.Columns = SIZE
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    frame = np.tile(np.repeat(np.array(STORED, dtype="<u2"), SIZE // 8), (SIZE, 1))
    ds.PixelData = np.stack([frame, frame + 50]).tobytes()  # within 12 bits

    def item(**kw: Any) -> Dataset:
        out = Dataset()
        for k, v in kw.items():
            setattr(out, k, v)
        return out
    shared = item(PixelValueTransformationSequence=[item(RescaleIntercept=-1024, RescaleSlope=1, RescaleType="HU")],
                  FrameVOILUTSequence=[item(WindowCenter=ENHANCED_WINDOW[0], WindowWidth=ENHANCED_WINDOW[1])],
                  PixelMeasuresSequence=[item(PixelSpacing=[0.5, 0.5], SliceThickness=1)],
                  PlaneOrientationSequence=[item(ImageOrientationPatient=[1, 0, 0, 0, 1, 0])])
    ds.SharedFunctionalGroupsSequence = [shared]
    ds.PerFrameFunctionalGroupsSequence = [item(PlanePositionSequence=[item(ImagePositionPatient=[0, 0, -f])])
                                           for f in range(2)]
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue(), ds.SeriesInstanceUID, ds.SOPInstanceUID


ENHANCED_WINDOW = (1000.0, 4000.0)


@pytest.mark.parametrize("renderer", RENDERERS)
def test_enhanced_multiframe_takes_rescale_and_window_from_its_functional_groups(
        open_page: Any, archive: YunyingServer, renderer: str) -> None:
    study = generate_uid()
    data, series, sop = enhanced_ct(study)
    stow(archive, [data])
    p = open_page(**DESKTOP)
    page = opened(p.page, url(archive, study, f"&lang=en&renderer={renderer}"))
    for f in (1, 2):
        seen = [grey_at(page, x, y) for x, y in CENTRES]
        wanted = [255 * linear(s + 50 * (f - 1) - 1024, *ENHANCED_WINDOW) for s in STORED]
        assert all(abs(a - b) <= 1.5 for a, b in zip(seen, wanted, strict=True)), (f, seen, [round(w) for w in wanted])
        r = httpx.get(f"{archive.dicomweb_url}/studies/{study}/series/{series}/instances/{sop}/frames/{f}/rendered",
                      headers={**archive.headers, "Accept": "image/png"}, timeout=30)
        server = np.asarray(Image.open(io.BytesIO(r.content)).convert("L"))
        assert all(abs(int(server[int(y), int(x)]) - g) <= 1.5 for (x, y), g in zip(CENTRES, seen, strict=True))
        page.evaluate("window.yunyingViewer.viewports[0].scroll(1)")
        page.wait_for_function("window.yunyingViewer.viewports[0].image === window.yunyingViewer.loader.cached("
                               "window.yunyingViewer.viewports[0].series, 1)")
    assert "W 4000 L 1000" in page.inner_text(".viewport .corner.br")
    assert not p.errors, p.errors
