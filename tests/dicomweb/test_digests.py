"""Integrity headers on downloads (issue 12 part 7): Repr-Digest (RFC 9530) on retrieves and
bulk data, on other answers when asked; Content-MD5 when asked; of the bytes actually sent."""
from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator

import httpx
import pytest

from benchmarks.net import YunyingServer
from tests.dicomweb.helpers import make_ct, multipart, part10

ACCEPT_DICOM = {"Accept": "multipart/related; type=application/dicom; transfer-syntax=*"}
ACCEPT_FRAME = {"Accept": "multipart/related; type=application/octet-stream; transfer-syntax=*"}


@pytest.fixture(scope="module")
def stored(server: YunyingServer) -> Iterator[tuple[YunyingServer, str]]:
    ct = make_ct(patient_id="P-DIGEST", frames=2, rows=64, cols=64)
    body, ctype = multipart(part10(ct))
    r = httpx.post(server.dicomweb_url + "/studies", content=body, headers={**server.headers, "Content-Type": ctype})
    assert r.status_code == 200
    yield server, f"/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}/instances/{ct.SOPInstanceUID}"


def _raw(server: YunyingServer, path: str, **headers: str) -> tuple[httpx.Response, bytes]:
    with httpx.Client(base_url=server.dicomweb_url, headers=server.headers, timeout=30) as c, \
            c.stream("GET", path, headers=headers) as r:
        return r, b"".join(r.iter_raw())


def sha256(body: bytes) -> str:
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"


@pytest.mark.parametrize("coding", ["identity", "gzip"])
def test_a_retrieve_carries_the_digest_of_the_bytes_sent(stored: tuple[YunyingServer, str], coding: str) -> None:
    server, path = stored
    r, body = _raw(server, path, **ACCEPT_DICOM, **{"Accept-Encoding": coding, "Want-Repr-Digest": "sha-256=1"})
    assert r.status_code == 200 and r.headers["repr-digest"] == sha256(body)
    assert int(r.headers["content-length"]) == len(body)
    assert "content-md5" not in r.headers
    r, again = _raw(server, path, **ACCEPT_DICOM, **{"Accept-Encoding": coding})  # unasked: a repeat has it
    assert again == body and r.headers["repr-digest"] == sha256(body)


def test_a_first_retrieve_nobody_asked_a_digest_of_streams_and_its_repeats_carry_it(server: YunyingServer) -> None:
    """Issue 9 part 4: a first retrieve is not held until all of it is read and hashed; it is
    hashed on the way, and every repeat of the same bytes carries the digest from its first byte."""
    ct = make_ct(patient_id="P-DIGEST-2", frames=2, rows=64, cols=64)
    body, ctype = multipart(part10(ct))
    assert httpx.post(server.dicomweb_url + "/studies", content=body,
                      headers={**server.headers, "Content-Type": ctype}).status_code == 200
    path = f"/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}"
    first, body1 = _raw(server, path, **ACCEPT_DICOM, **{"Accept-Encoding": "identity"})
    assert first.status_code == 200 and "repr-digest" not in first.headers and b"DICM" in body1
    again, body2 = _raw(server, path, **ACCEPT_DICOM, **{"Accept-Encoding": "identity"})
    assert body2 == body1 and again.headers["repr-digest"] == sha256(body1)
    assert int(again.headers["content-length"]) == len(body1)


def test_content_md5_when_asked(stored: tuple[YunyingServer, str]) -> None:
    server, path = stored
    r, body = _raw(server, path, **ACCEPT_DICOM, **{"Want-Digest": "MD5", "Accept-Encoding": "identity"})
    assert r.headers["content-md5"] == base64.b64encode(hashlib.md5(body).digest()).decode()


def test_frames_carry_a_digest_only_when_asked(stored: tuple[YunyingServer, str]) -> None:
    server, path = stored
    r, _ = _raw(server, path + "/frames/2", **ACCEPT_FRAME)
    assert r.status_code == 200 and "repr-digest" not in r.headers  # the hot path pays nothing
    r, body = _raw(server, path + "/frames/2", **ACCEPT_FRAME, **{"Want-Repr-Digest": "sha-256=1"})
    assert r.headers["repr-digest"] == sha256(body)


def test_an_error_passes_unchanged(stored: tuple[YunyingServer, str]) -> None:
    server, _ = stored
    r, body = _raw(server, "/studies/1.2.3.999", **ACCEPT_DICOM)
    assert r.status_code == 404 and "repr-digest" not in r.headers and b"error" in body
