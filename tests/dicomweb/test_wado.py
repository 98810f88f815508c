"""WADO-RS (PS3.18 10.4): instances, metadata, frames, bulk data, 404/406, ETag, DELETE."""
from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pydicom
from dicomweb_client.api import DICOMwebClient
from pydicom.uid import generate_uid

from benchmarks.net import YunyingServer
from tests import web
from tests.conftest import pydicom_path
from tests.dicomweb.helpers import make_ct, multipart, part10, refusal

OCTET_ANY = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'


def stow(server: YunyingServer, *datasets: pydicom.Dataset) -> None:
    body, ctype = multipart(*(part10(d) for d in datasets))
    resp = web.post(server.dicomweb_url + "/studies", content=body, headers={"Content-Type": ctype}, timeout=60)
    assert resp.status_code == 200, resp.text


def parts(resp: httpx.Response) -> list[tuple[str, bytes]]:
    """Split a multipart/related response (RFC 2046 5.1.1), keeping each part's Content-Type as sent."""
    assert resp.status_code == 200, resp.text
    boundary = resp.headers["content-type"].split("boundary=")[1].split(";")[0].strip('"').encode()
    out = []
    for chunk in resp.content.split(b"--" + boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, body = chunk.partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode().strip().split("\r\n"))
        out.append((headers["Content-Type"], body[:-2] if body.endswith(b"\r\n") else body))
    return out


def url(server: YunyingServer, ds: pydicom.Dataset, tail: str = "") -> str:
    return (f"{server.dicomweb_url}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}{tail}")


def test_native_frames_single_and_lists(server: YunyingServer) -> None:
    ds = make_ct(rows=16, cols=16, frames=4)
    stow(server, ds)
    want = ds.pixel_array
    got = parts(web.get(url(server, ds, "/frames/3,1"), headers={"Accept": OCTET_ANY}))
    assert [ct for ct, _ in got] == ["application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"] * 2
    assert np.array_equal(np.frombuffer(got[0][1], "<u2").reshape(16, 16), want[2])
    assert np.array_equal(np.frombuffer(got[1][1], "<u2").reshape(16, 16), want[0])
    single = web.get(url(server, ds, "/frames/2"), headers={"Accept": "application/octet-stream"})
    assert single.status_code == 200
    assert np.array_equal(np.frombuffer(single.content, "<u2").reshape(16, 16), want[1])
    client = DICOMwebClient(server.dicomweb_url, headers=server.headers)
    frames = client.retrieve_instance_frames(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, [4])
    assert np.array_equal(np.frombuffer(frames[0], "<u2").reshape(16, 16), want[3])


def test_compressed_frame_as_stored_names_its_transfer_syntax(server: YunyingServer) -> None:
    path = pydicom_path("JPEG2000.dcm")
    ds = pydicom.dcmread(path)
    resp = web.post(server.dicomweb_url + "/studies", content=(m := multipart(Path(path).read_bytes()))[0],
                      headers={"Content-Type": m[1]})
    assert resp.status_code == 200
    [(ctype, data)] = parts(web.get(url(server, ds, "/frames/1"), headers={"Accept": OCTET_ANY}))
    assert ctype == f"application/octet-stream; transfer-syntax={ds.file_meta.TransferSyntaxUID}"
    assert data == next(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1))


def test_frame_errors(server: YunyingServer) -> None:
    ds = make_ct()
    stow(server, ds)
    assert "1 frame" in refusal(web.get(url(server, ds, "/frames/2"), headers={"Accept": OCTET_ANY}), 404)
    assert "start at 1" in refusal(web.get(url(server, ds, "/frames/0"), headers={"Accept": OCTET_ANY}), 400)
    assert "'a,b'" in refusal(web.get(url(server, ds, "/frames/a,b"), headers={"Accept": OCTET_ANY}), 400)
    assert "acceptable" in refusal(web.get(url(server, ds, "/frames/1"), headers={"Accept": "text/html"}), 406)


def test_unknown_uids_are_404(server: YunyingServer) -> None:
    ds = make_ct()
    stow(server, ds)
    bad = generate_uid()
    for path in (f"/studies/{bad}", f"/studies/{bad}/metadata", f"/studies/{ds.StudyInstanceUID}/series/{bad}",
                 f"/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{bad}",
                 f"/studies/{bad}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"):
        resp = web.get(server.dicomweb_url + path)
        assert resp.status_code == 404, path
        assert resp.json()["status"] == 404


def test_study_retrieve_default_is_explicit_le_and_406_for_unknown(server: YunyingServer) -> None:
    study = generate_uid()
    items = [make_ct(study, number=i) for i in range(3)]
    stow(server, *items)
    resp = web.get(f"{server.dicomweb_url}/studies/{study}", headers={"Accept": 'multipart/related; type="application/dicom"'})
    got = parts(resp)
    assert len(got) == 3
    assert all(ct == "application/dicom; transfer-syntax=1.2.840.10008.1.2.1" for ct, _ in got)
    ds = pydicom.dcmread(pydicom.filebase.DicomBytesIO(got[0][1]))
    assert ds.StudyInstanceUID == study
    resp = web.get(f"{server.dicomweb_url}/studies/{study}", headers={"Accept": "image/png"})
    assert "acceptable" in refusal(resp, 406)
    resp = web.get(f"{server.dicomweb_url}/studies/{study}",
                     headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=1.2.3.4'})
    assert "transfer-syntax" in refusal(resp, 406)


def test_metadata_has_bulkdata_uris_that_resolve(server: YunyingServer) -> None:
    ds = make_ct(rows=16, cols=16)
    stow(server, ds)
    # raw HTTP: dicomweb-client sends a Host header without the port, so its URIs would lack it too
    [meta] = web.get(url(server, ds, "/metadata")).json()
    uri = meta["7FE00010"]["BulkDataURI"]
    assert uri.startswith(server.dicomweb_url + "/studies/")
    [(_ctype, data)] = parts(web.get(uri, headers={"Accept": 'multipart/related; type="application/octet-stream"'}))
    assert data == ds.PixelData


def test_series_metadata_streams_many_instances(server: YunyingServer) -> None:
    study, series = generate_uid(), generate_uid()
    items = [make_ct(study, series, number=i) for i in range(1, 301)]
    for k in range(0, 300, 100):
        stow(server, *items[k:k + 100])
    resp = web.get(f"{server.dicomweb_url}/studies/{study}/series/{series}/metadata", timeout=60)
    assert resp.status_code == 200 and "content-length" not in resp.headers  # streamed (chunked)
    meta = resp.json()
    assert len(meta) == 300
    assert [m["00200013"]["Value"][0] for m in meta] == list(range(1, 301))


def test_etag_and_cache_control_give_304(server: YunyingServer) -> None:
    ds = make_ct()
    stow(server, ds)
    for tail, accept in (("/frames/1", OCTET_ANY), ("/metadata", "application/dicom+json"), ("", "*/*")):
        first = web.get(url(server, ds, tail), headers={"Accept": accept})
        assert first.status_code == 200 and "max-age" in first.headers["cache-control"]
        again = web.get(url(server, ds, tail), headers={"Accept": accept, "If-None-Match": first.headers["etag"]})
        assert again.status_code == 304 and again.content == b""


def test_delete_instance_series_study(server: YunyingServer) -> None:
    study, series = generate_uid(), generate_uid()
    a, b, c = make_ct(study, series, number=1), make_ct(study, series, number=2), make_ct(study, number=3)
    stow(server, a, b, c)
    base = server.dicomweb_url
    assert web.delete(url(server, a)).status_code == 204
    assert web.get(url(server, a)).status_code == 404
    [st] = web.get(f"{base}/studies", params={"StudyInstanceUID": study}).json()
    assert st["00201208"]["Value"] == [2]
    assert web.delete(f"{base}/studies/{study}/series/{series}").status_code == 204
    [st] = web.get(f"{base}/studies", params={"StudyInstanceUID": study}).json()
    assert st["00201208"]["Value"] == [1] and st["00201206"]["Value"] == [1]
    assert web.delete(f"{base}/studies/{study}").status_code == 204
    assert web.get(f"{base}/studies", params={"StudyInstanceUID": study}).json() == []
    assert web.delete(f"{base}/studies/{study}").status_code == 404


def test_method_not_allowed_names_allow(server: YunyingServer) -> None:
    resp = web.put(server.dicomweb_url + "/studies")
    assert resp.status_code == 405 and "GET" in resp.headers["allow"] and "POST" in resp.headers["allow"]


def test_repeated_metadata_follows_every_change(server: YunyingServer) -> None:
    """Metadata answers may be cached, but never across a store, a replacement or a delete."""
    study, series = generate_uid(), generate_uid()
    a = make_ct(study, series, number=1)
    stow(server, a)
    url = f"{server.dicomweb_url}/studies/{study}/series/{series}/metadata"
    assert len(web.get(url).json()) == 1
    assert len(web.get(url).json()) == 1
    stow(server, make_ct(study, series, number=2))
    assert len(web.get(url).json()) == 2
    a.PatientName = "Renamed^Patient"
    stow(server, a)
    names = {m["00100010"]["Value"][0]["Alphabetic"] for m in web.get(url).json()}
    assert "Renamed^Patient" in names
    assert web.delete(url.removesuffix("/metadata")).status_code == 204
    assert web.get(url).status_code == 404
