"""STOW-RS (PS3.18 10.5): response codes of Table 10.5.3-1 and the response body of Table 10.5.3-2."""
from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom.uid import generate_uid

from benchmarks.net import YunyingServer
from tests import web
from tests.conftest import start_with_env
from tests.dicomweb.helpers import make_ct, multipart, part10, refusal

REFERENCED, FAILED, RETRIEVE_URL, FAILURE_REASON = "00081199", "00081198", "00081190", "00081197"


def post(server: YunyingServer, body: bytes, ctype: str, path: str = "/studies") -> httpx.Response:
    return web.post(server.dicomweb_url + path, content=body, timeout=60,
                      headers={"Content-Type": ctype, "Accept": "application/dicom+json"})


def count(server: YunyingServer, study: str) -> int:
    resp = web.get(f"{server.dicomweb_url}/studies/{study}/instances", timeout=30)
    return len(resp.json()) if resp.status_code == 200 and resp.content else 0


def test_many_parts_all_stored_200_with_retrieve_urls(server: YunyingServer) -> None:
    study = generate_uid()
    items = [make_ct(study, number=i) for i in range(1, 6)]
    resp = post(server, *multipart(*(part10(d) for d in items)))
    assert resp.status_code == 200
    body = resp.json()
    refs = body[REFERENCED]["Value"]
    assert {r["00081155"]["Value"][0] for r in refs} == {d.SOPInstanceUID for d in items}
    assert all(r[RETRIEVE_URL]["Value"][0].endswith(f"/instances/{r['00081155']['Value'][0]}") for r in refs)
    assert body[RETRIEVE_URL]["Value"][0].endswith(f"/studies/{study}")
    assert count(server, study) == 5


def test_one_bad_part_never_spoils_the_good_ones_202(server: YunyingServer) -> None:
    study = generate_uid()
    good = make_ct(study)
    resp = post(server, *multipart(part10(good), b"this is not DICOM at all", part10(make_ct(study, number=2))))
    assert resp.status_code == 202
    body = resp.json()
    assert len(body[REFERENCED]["Value"]) == 2
    assert body[FAILED]["Value"][0][FAILURE_REASON]["Value"] == [0xC000]
    assert "Warning" in resp.headers
    assert count(server, study) == 2


def test_wrong_study_in_url_is_409_and_stores_nothing(server: YunyingServer) -> None:
    url_study, other = generate_uid(), generate_uid()
    ds = make_ct(other)
    resp = post(server, *multipart(part10(ds)), path=f"/studies/{url_study}")
    assert resp.status_code == 409
    item = resp.json()[FAILED]["Value"][0]
    assert item["00081155"]["Value"] == [ds.SOPInstanceUID]
    assert item[FAILURE_REASON]["Value"] == [0xA900]
    assert count(server, other) == 0 and count(server, url_study) == 0


def test_post_to_the_right_study_url_is_200(server: YunyingServer) -> None:
    study = generate_uid()
    ds = make_ct(study)
    resp = post(server, *multipart(part10(ds)), path=f"/studies/{study}")
    assert resp.status_code == 200, resp.text
    assert [r["00081155"]["Value"][0] for r in resp.json()[REFERENCED]["Value"]] == [ds.SOPInstanceUID]
    assert FAILED not in resp.json() and count(server, study) == 1


def test_all_parts_garbage_is_400(server: YunyingServer) -> None:
    resp = post(server, *multipart(b"garbage", b"more garbage"))
    assert resp.status_code == 400
    assert len(resp.json()[FAILED]["Value"]) == 2


@pytest.mark.parametrize("ctype", ["application/json", "text/plain",
                                   'multipart/related; type="application/dicom+xml"; boundary=XbX'])
def test_unsupported_media_type_is_415(server: YunyingServer, ctype: str) -> None:
    body, _ = multipart(part10(make_ct()))
    assert refusal(post(server, body, ctype), 415)


def test_malformed_multipart_is_400_and_stores_nothing(server: YunyingServer) -> None:
    study = generate_uid()
    body, ctype = multipart(part10(make_ct(study)))
    truncated = body[: len(body) - 20]  # no closing boundary
    resp = post(server, truncated, ctype)
    assert "closing boundary" in refusal(resp, 400)
    assert count(server, study) == 0
    resp = post(server, body, "multipart/related; type=\"application/dicom\"")  # no boundary
    assert "boundary" in refusal(resp, 400)
    assert count(server, study) == 0


def test_single_application_dicom_body_is_accepted(server: YunyingServer) -> None:
    ds = make_ct()
    resp = post(server, part10(ds), "application/dicom")
    assert resp.status_code == 200
    assert count(server, ds.StudyInstanceUID) == 1


def test_restore_rule_identical_is_harmless_and_changed_replaces(server: YunyingServer) -> None:
    ds = make_ct()
    assert post(server, *multipart(part10(ds))).status_code == 200
    assert post(server, *multipart(part10(ds))).status_code == 200
    assert count(server, ds.StudyInstanceUID) == 1
    ds.PatientName = "Changed^Name"
    assert post(server, *multipart(part10(ds))).status_code == 200
    client = DICOMwebClient(server.dicomweb_url, headers=server.headers)
    got = client.retrieve_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    assert str(got.PatientName) == "Changed^Name"
    assert count(server, ds.StudyInstanceUID) == 1


def test_same_sop_uid_in_another_study_is_refused(server: YunyingServer) -> None:
    ds = make_ct()
    assert post(server, *multipart(part10(ds))).status_code == 200
    moved = make_ct(sop=ds.SOPInstanceUID)
    resp = post(server, *multipart(part10(moved)))
    assert resp.status_code == 409
    assert resp.json()[FAILED]["Value"][0][FAILURE_REASON]["Value"] == [0xC409]
    assert count(server, moved.StudyInstanceUID) == 0 and count(server, ds.StudyInstanceUID) == 1


def test_pixel_data_shorter_than_its_attributes_is_refused(server: YunyingServer) -> None:
    ds = make_ct()
    ds.PixelData = ds.PixelData[:-10]
    resp = post(server, *multipart(part10(ds)))
    assert resp.status_code == 409
    assert resp.json()[FAILED]["Value"][0][FAILURE_REASON]["Value"] == [0xA900]


def test_missing_uid_is_refused_naming_it(server: YunyingServer) -> None:
    ds = make_ct()
    del ds.SeriesInstanceUID
    resp = post(server, *multipart(part10(ds)))
    assert resp.status_code == 400
    assert "SeriesInstanceUID" in resp.headers["Warning"]


def test_retrieve_urls_follow_the_proxy(server: YunyingServer) -> None:
    body, ctype = multipart(part10(make_ct()))
    resp = web.post(server.dicomweb_url + "/studies", content=body, timeout=30, headers={
        "Content-Type": ctype, "X-Forwarded-Proto": "https", "X-Forwarded-Host": "pacs.example.org",
        "X-Forwarded-Prefix": "/archive"})
    url = resp.json()[REFERENCED]["Value"][0][RETRIEVE_URL]["Value"][0]
    assert url.startswith("https://pacs.example.org/archive/dicomweb/studies/")
    resp = web.post(server.dicomweb_url + "/studies", content=body, timeout=30, headers={
        "Content-Type": ctype, "Forwarded": 'for=1.2.3.4;proto=https;host="web.example.cn"'})
    assert resp.json()[REFERENCED]["Value"][0][RETRIEVE_URL]["Value"][0].startswith("https://web.example.cn/dicomweb/")


def test_over_the_size_limit_is_413_and_stores_nothing(tmp_path: Path) -> None:
    srv = start_with_env(tmp_path / "data", YUNYING_MAX_UPLOAD_BYTES="20000")
    try:
        ds = make_ct(rows=128, cols=128)
        body, ctype = multipart(part10(ds))
        assert "20000-byte limit" in refusal(post(srv, body, ctype), 413)
        # chunked upload, no Content-Length: refused while streaming
        resp = web.post(srv.dicomweb_url + "/studies", content=iter([body[:10000], body[10000:]]),
                          headers={"Content-Type": ctype}, timeout=30)
        assert "20000-byte limit" in refusal(resp, 413)
        assert count(srv, ds.StudyInstanceUID) == 0
    finally:
        srv.stop()
