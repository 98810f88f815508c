"""Property: no request ever gets a 5xx, and refused input changes nothing stored (design rule 5)."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.uid import generate_uid

from benchmarks.net import YunyingServer
from tests import web
from tests.dicomweb.helpers import make_ct, multipart, part10

KEYS = ["PatientName", "PatientID", "StudyDate", "StudyTime", "StudyInstanceUID", "ModalitiesInStudy",
        "AccessionNumber", "00100010", "0020000D", "limit", "offset", "includefield", "fuzzymatching",
        "SeriesNumber", "InstanceNumber", "00400275.00400009", "Modality", "NoSuch", "0010", "x" * 70]
VALUES = st.one_of(st.text(max_size=30), st.sampled_from(
    ["*", "?", "-", "20240101-", "-", "1.2.3", "1.2.,3", "\\", "%", "_", "'", '"', "王*", "a^b=c^d", "9" * 80,
     "00:00", "-1", "1e9", "all", "true"]))
PATHS = ["/studies", "/series", "/instances", "/studies/{s}/series", "/studies/{s}/instances",
         "/studies/{s}/series/{se}/instances"]
ACCEPTS = st.sampled_from([None, "*/*", "application/dicom+json", "application/dicom+xml", "text/html",
                           'multipart/related; type="application/dicom"; transfer-syntax=*',
                           'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.4.50',
                           "image/jpeg;q=0.5, application/octet-stream;q=x", ";;;,,,", "image/*"])


@pytest.fixture(scope="module")
def seeded(server: YunyingServer) -> tuple[YunyingServer, str, str, str]:
    ds = make_ct(frames=2)
    body, ctype = multipart(part10(ds))
    assert web.post(server.dicomweb_url + "/studies", content=body, headers={"Content-Type": ctype}).status_code == 200
    return server, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from(PATHS), params=st.lists(st.tuples(st.sampled_from(KEYS), VALUES), max_size=5),
       accept=ACCEPTS)
def test_qido_never_5xx(seeded: tuple[YunyingServer, str, str, str], path: str,
                        params: list[tuple[str, str]], accept: str | None) -> None:
    server, s, se, _ = seeded
    headers = {"Accept": accept} if accept else {}
    resp = web.get(server.dicomweb_url + path.format(s=s, se=se), params=params, headers=headers, timeout=30)
    assert resp.status_code < 500, (path, params, resp.text)
    if resp.status_code >= 400:
        assert resp.json()["error"]


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(tail=st.sampled_from(["", "/metadata", "/frames/{f}", "/bulkdata/{f}", "/rendered", "/thumbnail"]),
       frames=st.text(alphabet="0123456789,-ab%.", max_size=8), accept=ACCEPTS,
       method=st.sampled_from(["GET", "HEAD", "OPTIONS", "PUT", "PATCH"]))
def test_wado_never_5xx(seeded: tuple[YunyingServer, str, str, str], tail: str, frames: str,
                        accept: str | None, method: str) -> None:
    server, s, se, sop = seeded
    url = f"{server.dicomweb_url}/studies/{s}/series/{se}/instances/{sop}" + tail.format(f=frames or "1")
    headers = {"Accept": accept} if accept else {}
    resp = web.request(method, url, headers=headers, timeout=30)
    assert resp.status_code < 500, (url, accept, resp.text)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(cut=st.integers(min_value=0, max_value=2000), flip=st.integers(min_value=0, max_value=2000),
       junk=st.binary(max_size=64))
def test_damaged_uploads_never_5xx_and_change_nothing(seeded: tuple[YunyingServer, str, str, str], cut: int,
                                                      flip: int, junk: bytes) -> None:
    server, s, _, _ = seeded
    before = web.get(f"{server.dicomweb_url}/studies/{s}/metadata").content
    study = generate_uid()
    raw = bytearray(part10(make_ct(study)))
    raw = raw[: max(0, len(raw) - cut)]
    if raw and flip < len(raw):
        raw[flip] ^= 0xFF
    body, ctype = multipart(bytes(raw) + junk)
    resp = web.post(server.dicomweb_url + "/studies", content=body, headers={"Content-Type": ctype}, timeout=30)
    assert resp.status_code in (200, 202, 400, 409), resp.text
    assert web.get(f"{server.dicomweb_url}/studies/{s}/metadata").content == before
    got = web.get(f"{server.dicomweb_url}/studies", params={"StudyInstanceUID": study}).json()
    if resp.status_code == 202 and "00081198" not in resp.json():  # stored as received, with a warning
        assert len(got) == 1 and resp.json()["00081199"]["Value"][0]["00081196"]["Value"] == [0xB007]
    elif resp.status_code != 200:
        assert got == []
