"""WADO-RS frames in compressed media types (PS3.18 8.7.3.5, Table 8.7.3-5), decoded back by pydicom."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom.data import get_testdata_file
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import UID, generate_uid

from benchmarks.net import YunyingServer
from dicomweb.frames import instance_row
from index.model import Origin
from tests import web
from tests.dicomweb.helpers import make_ct, part10
from tests.dicomweb.test_wado import parts, stow, url
from yunying.archive import Archive
from yunying.errors import UnknownResource

LOSSLESS_MEDIA = [
    ("image/jpeg", "1.2.840.10008.1.2.4.70"),   # the media type's default (Table 8.7.3-5)
    ("image/jls", "1.2.840.10008.1.2.4.80"),
    ("image/jp2", "1.2.840.10008.1.2.4.90"),
    ("image/jphc", "1.2.840.10008.1.2.4.201"),
    ("image/dicom-rle", "1.2.840.10008.1.2.5"),
    ("application/octet-stream", "1.2.840.10008.1.2.1"),
]


def decode(data: bytes, ds: pydicom.Dataset, ts: str) -> np.ndarray:
    """One frame decoded by pydicom's own plugins, as a client would."""
    one = copy.deepcopy(ds)
    one.file_meta = FileMetaDataset()
    one.file_meta.TransferSyntaxUID = UID(ts)
    one.NumberOfFrames = 1
    one.PixelData = data if ts == "1.2.840.10008.1.2.1" else encapsulate([data])
    if ts != "1.2.840.10008.1.2.1":
        one["PixelData"].VR = "OB"
    return one.pixel_array


def fresh(name: str) -> pydicom.Dataset:
    """A pydicom test file under new UIDs (several share theirs)."""
    ds = pydicom.dcmread(str(get_testdata_file(name)))
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid(), generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


@pytest.fixture(scope="module")
def ct(server: YunyingServer) -> pydicom.Dataset:
    ds = make_ct(rows=32, cols=24, frames=3)
    stow(server, ds)
    return ds


@pytest.mark.parametrize("media,ts", LOSSLESS_MEDIA)
def test_native_frame_in_each_lossless_media_type_single_part(server: YunyingServer, ct: pydicom.Dataset,
                                                              media: str, ts: str) -> None:
    resp = web.get(url(server, ct, "/frames/2"), headers={"Accept": media})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == f"{media}; transfer-syntax={ts}"
    assert np.array_equal(decode(resp.content, ct, ts), ct.pixel_array[1])  # lossless: exact


@pytest.mark.parametrize("media,ts", LOSSLESS_MEDIA)
def test_native_frames_multipart_each_part_names_its_syntax(server: YunyingServer, ct: pydicom.Dataset,
                                                            media: str, ts: str) -> None:
    resp = web.get(url(server, ct, "/frames/3,1"),
                     headers={"Accept": f'multipart/related; type="{media}"; transfer-syntax={ts}'})
    got = parts(resp)
    assert resp.headers["content-type"].startswith(f'multipart/related; type="{media}"')
    assert [c for c, _ in got] == [f"{media}; transfer-syntax={ts}"] * 2
    assert np.array_equal(decode(got[0][1], ct, ts), ct.pixel_array[2])
    assert np.array_equal(decode(got[1][1], ct, ts), ct.pixel_array[0])


def test_stored_bitstream_kept_bit_exact_and_transcoded_exactly(server: YunyingServer) -> None:
    ds = fresh("MR_small_jp2klossless.dcm")
    stow(server, ds)
    stored = next(generate_frames(ds.PixelData, number_of_frames=1))
    as_stored = web.get(url(server, ds, "/frames/1"), headers={"Accept": "image/jp2; transfer-syntax=*"})
    assert as_stored.headers["content-type"] == "image/jp2; transfer-syntax=1.2.840.10008.1.2.4.90"
    assert as_stored.content == stored
    for media, ts in (("image/jls", "1.2.840.10008.1.2.4.80"), ("image/jphc", "1.2.840.10008.1.2.4.201"),
                      ("application/octet-stream", "1.2.840.10008.1.2.1")):
        resp = web.get(url(server, ds, "/frames/1"), headers={"Accept": media})
        assert resp.status_code == 200, (media, resp.text)
        assert resp.headers["content-type"] == f"{media}; transfer-syntax={ts}"
        assert np.array_equal(decode(resp.content, ds, ts), ds.pixel_array)


def test_never_lossy_unless_asked(server: YunyingServer) -> None:
    ds = make_ct(rows=16, cols=16)
    ds.BitsStored, ds.HighBit = 8, 7
    ds.BitsAllocated = 8
    ds.PixelData = (np.arange(256, dtype=np.uint8).reshape(16, 16)).tobytes()
    stow(server, ds)
    default = web.get(url(server, ds, "/frames/1"), headers={"Accept": "image/jpeg"})
    assert default.headers["content-type"].endswith("transfer-syntax=1.2.840.10008.1.2.4.70")
    assert np.array_equal(decode(default.content, ds, "1.2.840.10008.1.2.4.70"), ds.pixel_array)
    lossy = web.get(url(server, ds, "/frames/1"),
                      headers={"Accept": "image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.50"})
    assert lossy.status_code == 200
    assert lossy.headers["content-type"] == "image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.50"
    assert np.abs(decode(lossy.content, ds, "1.2.840.10008.1.2.4.50").astype(int) - ds.pixel_array).mean() < 3


def test_406_when_nothing_fits(server: YunyingServer, ct: pydicom.Dataset) -> None:
    # 12-bit unsigned data do not fit JPEG baseline (8-bit): refused, never silently something else
    for accept in ("image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.50", "text/html", "image/png",
                   "image/jls; transfer-syntax=1.2.840.10008.1.2.4.90"):
        resp = web.get(url(server, ct, "/frames/1"), headers={"Accept": accept})
        assert resp.status_code == 406, accept
        assert resp.json()["error"]
    resp = web.get(url(server, ct, "/frames/1,2"), headers={"Accept": "image/jls"})
    assert resp.status_code == 406  # single part holds one frame


def test_q_values_order_the_choice(server: YunyingServer, ct: pydicom.Dataset) -> None:
    accept = "image/jls;q=0.5, image/jphc;q=0.9, application/octet-stream;q=0.1"
    resp = web.get(url(server, ct, "/frames/1"), headers={"Accept": accept})
    assert resp.headers["content-type"] == "image/jphc; transfer-syntax=1.2.840.10008.1.2.4.201"


def test_explicit_lossy_htj2k_and_etag(server: YunyingServer, ct: pydicom.Dataset) -> None:
    accept = 'multipart/related; type="image/jphc"; transfer-syntax=1.2.840.10008.1.2.4.203'
    resp = web.get(url(server, ct, "/frames/1"), headers={"Accept": accept})
    [(ctype, data)] = parts(resp)
    assert ctype == "image/jphc; transfer-syntax=1.2.840.10008.1.2.4.203"
    assert np.abs(decode(data, ct, "1.2.840.10008.1.2.4.203").astype(int) - ct.pixel_array[0]).mean() < 40
    again = web.get(url(server, ct, "/frames/1"), headers={"Accept": accept, "If-None-Match": resp.headers["etag"]})
    assert again.status_code == 304


def test_dicomweb_client_frames_in_jpeg_ls(server: YunyingServer, ct: pydicom.Dataset) -> None:
    client = DICOMwebClient(server.dicomweb_url, headers=server.headers)
    frames = client.retrieve_instance_frames(ct.StudyInstanceUID, ct.SeriesInstanceUID, ct.SOPInstanceUID, [1, 3],
                                             media_types=(("image/jls", "1.2.840.10008.1.2.4.80"),))
    assert np.array_equal(decode(frames[0], ct, "1.2.840.10008.1.2.4.80"), ct.pixel_array[0])
    assert np.array_equal(decode(frames[1], ct, "1.2.840.10008.1.2.4.80"), ct.pixel_array[2])


def test_colour_and_planar_frames(server: YunyingServer) -> None:
    ds = fresh("examples_rgb_color.dcm")
    stow(server, ds)
    for media, ts in (("image/jls", "1.2.840.10008.1.2.4.80"), ("image/dicom-rle", "1.2.840.10008.1.2.5")):
        resp = web.get(url(server, ds, "/frames/1"), headers={"Accept": media})
        assert resp.status_code == 200, resp.text
        assert np.array_equal(decode(resp.content, ds, ts), ds.pixel_array)
    planar = fresh("examples_rgb_color.dcm")
    arr = planar.pixel_array
    planar.PlanarConfiguration = 1
    planar.PixelData = np.ascontiguousarray(arr.transpose(2, 0, 1)).tobytes()
    stow(server, planar)
    raw = web.get(url(server, planar, "/frames/1"), headers={"Accept": "application/octet-stream"})
    assert raw.content == planar.PixelData  # native answer as stored, matching the metadata's layout
    jls = web.get(url(server, planar, "/frames/1"), headers={"Accept": "image/jls"})
    dec = copy.deepcopy(planar)
    dec.PlanarConfiguration = 0
    assert np.array_equal(decode(jls.content, dec, "1.2.840.10008.1.2.4.80"), arr)


def test_signed_frames_exact(server: YunyingServer) -> None:
    ds = fresh("CT_small.dcm")
    stow(server, ds)
    for media, ts in LOSSLESS_MEDIA[1:]:
        resp = web.get(url(server, ds, "/frames/1"), headers={"Accept": media})
        assert resp.status_code == 200, (media, resp.text)
        assert np.array_equal(decode(resp.content, ds, ts), ds.pixel_array), media


def test_the_second_row_lookup_in_a_series_loads_the_series(tmp_path: Path) -> None:
    """instance_row: one lookup for a lone instance; the second miss in a series caches all of it."""
    archive = Archive(tmp_path / "data")
    try:
        study, series = generate_uid(), generate_uid()
        slices = [make_ct(study, series, number=k) for k in range(1, 5)]
        for ds in slices:
            archive.store(part10(ds), Origin("import", "test"))
        archive.flush()
        sops = [ds.SOPInstanceUID for ds in slices]
        assert archive.cached_row(study, series, sops[3]) is None
        assert instance_row(archive, study, series, sops[0]).sop == sops[0]
        assert archive.cached_row(study, series, sops[3]) is None  # one miss: one lookup
        assert instance_row(archive, study, series, sops[1]).sop == sops[1]
        assert archive.cached_row(study, series, sops[3]) is not None  # the second: the whole series
        with pytest.raises(UnknownResource):
            instance_row(archive, study, generate_uid(), sops[2])  # a row is still checked against its series
    finally:
        archive.close()
