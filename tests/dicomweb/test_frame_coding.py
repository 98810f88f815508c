"""Frames in a content coding made by the route and kept (dicomweb/frame_coding.py), and the
digest of a whole-series retrieve held without a spool (hardening.Digests)."""
from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import Any

import numpy as np
import pytest
from pydicom.uid import generate_uid

from benchmarks.net import YunyingServer
from dicomweb import hardening
from tests.dicomweb.helpers import make_ct
from tests.dicomweb.test_coding import DECODE, OCTET_ANY, raw_get, smooth_ct, stow

SINGLE = "application/octet-stream; transfer-syntax=*"


def sha256(body: bytes) -> str:
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"


@pytest.fixture(scope="module")
def frame_url(server: YunyingServer) -> str:
    study, series_uid = generate_uid(), generate_uid()
    ds = smooth_ct(study, series_uid, 1, size=256)
    stow(server, ds)
    return f"{server.dicomweb_url}/studies/{study}/series/{series_uid}/instances/{ds.SOPInstanceUID}/frames/1"


@pytest.mark.parametrize("accept", [OCTET_ANY, SINGLE])
@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_a_coded_frame_decodes_to_the_plain_answer(server: YunyingServer, frame_url: str, coding: str,
                                                   accept: str) -> None:
    plain, plain_body = raw_get(server, frame_url, Accept=accept, **{"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and "content-encoding" not in plain.headers
    for _ in range(2):  # made, then from the kept copy: the same bytes
        resp, body = raw_get(server, frame_url, Accept=accept, **{"Accept-Encoding": coding})
        assert resp.status_code == 200 and resp.headers["content-encoding"] == coding  # only it was offered
        assert resp.headers["vary"] == "Accept-Encoding"
        assert resp.headers["etag"] == "W/" + plain.headers["etag"]
        assert resp.headers["content-type"] == plain.headers["content-type"]  # one boundary per body
        assert DECODE[coding](body) == plain_body  # byte for byte, framing included
        assert len(body) < 0.8 * len(plain_body)
    if accept == SINGLE:
        assert plain_body == bytes(smooth_ct("1.2", "1.2", 1, size=256).PixelData)  # the stored pixels


def test_browser_header_prefers_zstd_and_revalidates(server: YunyingServer, frame_url: str) -> None:
    resp, _ = raw_get(server, frame_url, Accept=OCTET_ANY, **{"Accept-Encoding": "gzip, deflate, br, zstd"})
    assert resp.headers["content-encoding"] == "zstd"
    again, body = raw_get(server, frame_url, Accept=OCTET_ANY, **{"If-None-Match": resp.headers["etag"],
                                                                   "Accept-Encoding": "gzip, deflate, br, zstd"})
    assert again.status_code == 304 and body == b""


def test_a_coded_frame_digest_is_of_the_coded_bytes(server: YunyingServer, frame_url: str) -> None:
    resp, body = raw_get(server, frame_url, Accept=OCTET_ANY,
                         **{"Accept-Encoding": "br", "Want-Repr-Digest": "sha-256=1"})
    assert resp.headers["content-encoding"] == "br" and resp.headers["repr-digest"] == sha256(body)


def test_identity_refused_and_nothing_acceptable_is_406(server: YunyingServer, frame_url: str) -> None:
    resp, body = raw_get(server, frame_url, Accept=OCTET_ANY, **{"Accept-Encoding": "identity;q=0, compress"})
    assert resp.status_code == 406 and b"Accept-Encoding" in body


def test_identity_refused_codes_even_what_does_not_shrink(server: YunyingServer) -> None:
    study, series_uid = generate_uid(), generate_uid()
    ds = make_ct(study, series_uid, rows=128, cols=128)
    ds.BitsStored, ds.HighBit = 16, 15
    ds.PixelData = np.random.default_rng(3).integers(0, 65536, size=(128, 128), dtype=np.uint16).tobytes()
    stow(server, ds)
    url = f"{server.dicomweb_url}/studies/{study}/series/{series_uid}/instances/{ds.SOPInstanceUID}/frames/1"
    resp, _ = raw_get(server, url, Accept=SINGLE, **{"Accept-Encoding": "gzip"})
    assert "content-encoding" not in resp.headers  # noise: plain, and that is kept
    resp, body = raw_get(server, url, Accept=SINGLE, **{"Accept-Encoding": "identity;q=0, gzip"})
    assert resp.headers["content-encoding"] == "gzip" and DECODE["gzip"](body) == ds.PixelData


def test_a_series_retrieve_digest_matches_its_bytes(server: YunyingServer) -> None:
    study, series_uid = generate_uid(), generate_uid()
    stow(server, *(smooth_ct(study, series_uid, i, size=128) for i in range(1, 6)))
    url = f"{server.dicomweb_url}/studies/{study}/series/{series_uid}"
    accept = "multipart/related; type=application/dicom; transfer-syntax=*"
    first, body = raw_get(server, url, Accept=accept, **{"Accept-Encoding": "identity", "Want-Repr-Digest": "sha-256=1"})
    again, body2 = raw_get(server, url, Accept=accept, **{"Accept-Encoding": "identity"})  # from the memo
    for resp, b in ((first, body), (again, body2)):
        assert resp.status_code == 200 and resp.headers["repr-digest"] == sha256(b)
        assert int(resp.headers["content-length"]) == len(b) and b.count(b"DICM") == 5


def test_a_body_past_the_memory_budget_goes_to_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardening, "HOLD_BYTES", 5000)
    chunks = [bytes([i]) * 3000 for i in range(4)]  # the first fits, the rest spill to a file
    sent: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"x/y")]})
        for i, chunk in enumerate(chunks):
            await send({"type": "http.response.body", "body": chunk, "more_body": i < 3})

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/dicomweb/studies/1.2",
             "headers": [(b"want-repr-digest", b"sha-256=1")]}  # asked for: held until the digest is known
    asyncio.run(hardening.Digests(app)(scope, None, send))
    body = b"".join(m.get("body", b"") for m in sent[1:])
    headers = dict(sent[0]["headers"])
    assert body == b"".join(chunks) and headers[b"repr-digest"].decode() == sha256(body)
    assert headers[b"content-length"] == str(len(body)).encode()
    assert hardening._Held.in_memory == 0  # released once sent
