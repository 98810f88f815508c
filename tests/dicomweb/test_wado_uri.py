"""Issue 10 part 10: WADO-URI (PS3.18 9), as hospital PACS and report systems link images."""
from __future__ import annotations

import io

import httpx
import numpy as np
import pydicom
from PIL import Image

from benchmarks.net import YunyingServer
from tests.dicomweb.helpers import make_ct, multipart, part10


def wado(server: YunyingServer, ds: pydicom.Dataset, **params: str) -> httpx.Response:
    query = {"requestType": "WADO", "studyUID": ds.StudyInstanceUID, "seriesUID": ds.SeriesInstanceUID,
             "objectUID": ds.SOPInstanceUID, **params}
    return httpx.get(f"{server.dicomweb_url}/wado", params=query, headers=server.headers, timeout=60)


def test_wado_uri_dicom_jpeg_frames_window_and_region(server: YunyingServer) -> None:
    ds = make_ct(rows=64, cols=32, frames=3)
    body, ctype = multipart(part10(ds))
    assert httpx.post(server.dicomweb_url + "/studies", content=body, timeout=60,
                      headers={**server.headers, "Content-Type": ctype}).status_code == 200
    dicom = wado(server, ds, contentType="application/dicom")
    assert dicom.status_code == 200 and dicom.headers["content-type"] == "application/dicom"
    got = pydicom.dcmread(io.BytesIO(dicom.content))
    assert got.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert np.array_equal(got.pixel_array, ds.pixel_array)
    stored = wado(server, ds, contentType="application/dicom", transferSyntax="1.2.840.10008.1.2")
    assert pydicom.dcmread(io.BytesIO(stored.content)).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2"
    jpeg = wado(server, ds)  # image/jpeg by default (PS3.18 9.1.2.1.6)
    assert jpeg.status_code == 200 and jpeg.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(jpeg.content)).size == (32, 64)
    third = wado(server, ds, frameNumber="3", windowCenter="2000", windowWidth="4000", contentType="image/png")
    first = wado(server, ds, frameNumber="1", windowCenter="2000", windowWidth="4000", contentType="image/png")
    assert third.status_code == first.status_code == 200 and third.content != first.content
    # the PNG is lossless: the window maps the stored samples, checked at one pixel
    px = np.asarray(Image.open(io.BytesIO(third.content)).convert("L")).astype(int)
    want = np.clip((ds.pixel_array[2].astype(float) - (2000 - 0.5)) / 3999 + 0.5, 0, 1) * 255  # PS3.3 C.11.2.1.2.1
    assert np.abs(px - want).max() <= 1.5  # every pixel, not one
    small = wado(server, ds, rows="32", columns="16")
    assert Image.open(io.BytesIO(small.content)).size == (16, 32)
    # region (normalised x0,y0,x1,y1): exactly the pixels of the whole image there
    region = wado(server, ds, region="0.25,0.5,0.75,0.75", frameNumber="3", windowCenter="2000", windowWidth="4000",
                  contentType="image/png")
    crop = np.asarray(Image.open(io.BytesIO(region.content)).convert("L")).astype(int)
    assert region.status_code == 200 and crop.shape == (16, 16)
    assert np.array_equal(crop, px[32:48, 8:24])
    # imageQuality: the same JPEG at quality 10 is smaller than at 95 (noise keeps them apart)
    low, high = wado(server, ds, imageQuality="10"), wado(server, ds, imageQuality="95")
    assert low.status_code == high.status_code == 200 and len(low.content) < len(high.content)
    # asked for an anonymized copy, which is not supported: refused, never the identified one
    anonymous = wado(server, ds, anonymize="yes", contentType="application/dicom")
    assert anonymous.status_code == 400 and "anonymize" in anonymous.json()["error"], anonymous.text
    for bad in ({"requestType": "WADX"}, {"frameNumber": "9"}, {"region": "0.5,0,0.2,1"}, {"rows": "x"},
                {"windowCenter": "40"}):
        resp = wado(server, ds, **bad)
        assert resp.status_code in (400, 404) and resp.json()["error"], (bad, resp.text)
    unknown = make_ct()
    assert wado(server, unknown).status_code == 404
