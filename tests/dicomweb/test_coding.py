"""Content coding (RFC 9110 8.4, 12.5.3): br / zstd / gzip negotiated, streamed, cached, validated."""
from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import brotli
import httpx
import numpy as np
import pydicom
import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st
from pydicom.uid import generate_uid

from benchmarks.net import YunyingServer
from dicomweb.coding import BINARY_ORDER, TEXT_ORDER, kind_of, negotiate
from tests.conftest import start_with_env
from tests.dicomweb.helpers import make_ct, multipart, part10

OCTET_ANY = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
DECODE = {"gzip": gzip.decompress, "br": brotli.decompress,
          "zstd": lambda b: zstandard.ZstdDecompressor().decompressobj().decompress(b)}


def smooth_ct(study: str, series: str, number: int, size: int = 128, frames: int = 1) -> pydicom.Dataset:
    """A CT-like slice: a smooth disc plus a little noise, so it compresses like real pixels."""
    ds = make_ct(study, series, number=number, rows=size, cols=size, frames=frames)
    yy, xx = np.mgrid[:size, :size]
    disc = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 2.5) ** 2) * 1000 + 24
    noise = np.random.default_rng(number).integers(0, 16, size=(frames, size, size))
    ds.PixelData = (disc[None] + noise).astype(np.uint16).tobytes()
    return ds


def stow(server: YunyingServer, *datasets: pydicom.Dataset) -> None:
    body, ctype = multipart(*(part10(d) for d in datasets))
    resp = httpx.post(server.dicomweb_url + "/studies", content=body, timeout=60,
                      headers={**server.headers, "Content-Type": ctype})
    assert resp.status_code == 200, resp.text


def raw_get(server: YunyingServer, url: str, **headers: str) -> tuple[httpx.Response, bytes]:
    """The response and its body exactly as sent (not decoded by httpx)."""
    with httpx.stream("GET", url, headers={**server.headers, **headers}, timeout=60) as resp:
        return resp, b"".join(resp.iter_raw())


def unbound(resp: httpx.Response, body: bytes) -> bytes:
    boundary = resp.headers["content-type"].split("boundary=")[1].encode()
    return body.replace(boundary, b"B")


@pytest.fixture(scope="module")
def series(server: YunyingServer) -> Iterator[tuple[str, str, list[pydicom.Dataset]]]:
    study, series_uid = generate_uid(), generate_uid()
    items = [smooth_ct(study, series_uid, i) for i in range(1, 41)]
    stow(server, *items)
    yield study, series_uid, items


def test_accept_encoding_weights_and_identity() -> None:
    assert negotiate(None).choose(TEXT_ORDER) is None  # no header: identity
    assert negotiate("").choose(TEXT_ORDER) is None and negotiate("").identity
    assert negotiate("gzip, deflate, br, zstd").choose(TEXT_ORDER) == "br"
    assert negotiate("gzip, deflate, br, zstd").choose(BINARY_ORDER) == "zstd"
    assert negotiate("gzip;q=1.0, br;q=0.5").choose(TEXT_ORDER) == "gzip"
    assert negotiate("br;q=0, *").choose(TEXT_ORDER) == "zstd"
    assert negotiate("*;q=0, identity").choose(TEXT_ORDER) is None
    assert negotiate("X-GZIP").choose(TEXT_ORDER) == "gzip"
    assert negotiate("identity;q=1, gzip;q=0.5").choose(TEXT_ORDER) is None
    assert negotiate("gzip;q=0.5").choose(TEXT_ORDER) == "gzip"  # implicit identity does not outrank it
    assert not negotiate("identity;q=0").identity and not negotiate("*;q=0").identity
    assert negotiate("*;q=0, identity;q=0.1").identity
    assert negotiate("br;q=abc, gzip;q=7, zstd").choose(TEXT_ORDER) == "zstd"  # malformed entries ignored


@given(st.text(max_size=60))
def test_any_accept_encoding_parses(header: str) -> None:
    wanted = negotiate(header)
    assert wanted.choose(TEXT_ORDER) in (None, *TEXT_ORDER)


def test_kinds() -> None:
    assert kind_of("application/dicom+json") == "text"
    assert kind_of('multipart/related; type="application/dicom+xml"; boundary=x') == "text"
    assert kind_of('multipart/related; type="application/octet-stream"; boundary=x') == "binary"
    assert kind_of("application/vnd.sun.wadl+xml") == kind_of("text/html; charset=utf-8") == "text"
    assert kind_of("image/jpeg") is None
    assert kind_of('multipart/related; type="application/dicom"; boundary=x') is None


@pytest.mark.parametrize("coding", ["br", "gzip", "zstd"])
def test_series_metadata_encoded_once_and_kept(server: YunyingServer, series: tuple, coding: str) -> None:
    study, series_uid, items = series
    url = f"{server.dicomweb_url}/studies/{study}/series/{series_uid}/metadata"
    plain, plain_body = raw_get(server, url, **{"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and "content-encoding" not in plain.headers
    assert plain.headers["vary"] == "Accept-Encoding" and not plain.headers["etag"].startswith("W/")
    assert len(json.loads(plain_body)) == len(items)
    resp, body = raw_get(server, url, **{"Accept-Encoding": coding})
    assert resp.headers["content-encoding"] == coding and resp.headers["vary"] == "Accept-Encoding"
    assert DECODE[coding](body) == plain_body  # raw bytes on the wire decode to the same answer
    assert len(body) * 10 < len(plain_body)
    assert int(resp.headers["content-length"]) == len(body)  # the kept answer, not a stream
    assert resp.headers["etag"] == "W/" + plain.headers["etag"]  # the encodings differ: weak validator
    again = httpx.get(url, headers={**server.headers, "Accept-Encoding": coding}, timeout=60)
    assert again.json() == json.loads(plain_body)  # httpx decodes it itself
    cond = httpx.get(url, headers={**server.headers, "Accept-Encoding": coding,
                                   "If-None-Match": resp.headers["etag"]}, timeout=60)
    assert cond.status_code == 304 and cond.headers["etag"] == resp.headers["etag"]
    cond = httpx.get(url, headers={**server.headers, "Accept-Encoding": "identity",
                                   "If-None-Match": plain.headers["etag"]}, timeout=60)
    assert cond.status_code == 304 and cond.headers["etag"] == plain.headers["etag"]


def test_metadata_streamed_when_not_kept_yet_and_follows_changes(server: YunyingServer) -> None:
    study, series_uid = generate_uid(), generate_uid()
    stow(server, *(smooth_ct(study, series_uid, i, size=32) for i in range(1, 31)))
    url = f"{server.dicomweb_url}/studies/{study}/metadata"
    first, body = raw_get(server, url, **{"Accept-Encoding": "gzip, br"})  # a miss: encoded as it streams
    assert first.headers["content-encoding"] == "br" and "content-length" not in first.headers
    docs = json.loads(brotli.decompress(body))
    assert len(docs) == 30
    stow(server, smooth_ct(study, series_uid, 31, size=32))  # a new version of the study: not the kept one
    resp, body = raw_get(server, url, **{"Accept-Encoding": "br"})
    assert len(json.loads(brotli.decompress(body))) == 31 and resp.headers["etag"] != first.headers["etag"]


def test_xml_and_qido_encoded(server: YunyingServer, series: tuple) -> None:
    study, _, items = series
    resp, body = raw_get(server, f"{server.dicomweb_url}/studies/{study}/metadata",
                         **{"Accept-Encoding": "zstd", "Accept": 'multipart/related; type="application/dicom+xml"'})
    assert resp.headers["content-encoding"] == "zstd"
    assert DECODE["zstd"](body).count(b"<NativeDicomModel") == len(items)
    resp, body = raw_get(server, f"{server.dicomweb_url}/studies/{study}/instances",
                         **{"Accept-Encoding": "gzip"})
    assert resp.headers["content-encoding"] == "gzip" and len(json.loads(gzip.decompress(body))) == len(items)


def test_native_frames_encoded_bit_exact(server: YunyingServer) -> None:
    study, series_uid = generate_uid(), generate_uid()
    ds = smooth_ct(study, series_uid, 1, size=256, frames=3)
    stow(server, ds)
    url = f"{server.dicomweb_url}/studies/{study}/series/{series_uid}/instances/{ds.SOPInstanceUID}/frames/"
    for frames in ("1", "1,2,3"):  # one body, and a streamed multipart answer
        plain, plain_body = raw_get(server, url + frames, Accept=OCTET_ANY, **{"Accept-Encoding": "identity"})
        resp, body = raw_get(server, url + frames, Accept=OCTET_ANY, **{"Accept-Encoding": "gzip, deflate, br, zstd"})
        assert resp.status_code == 200 and resp.headers["content-encoding"] == "zstd"
        assert resp.headers["etag"] == "W/" + plain.headers["etag"]
        # the boundary is new per answer; everything else is the same bytes
        assert unbound(resp, DECODE["zstd"](body)) == unbound(plain, plain_body)
        assert len(body) < 0.8 * len(plain_body)


def test_what_does_not_compress_goes_plain(server: YunyingServer) -> None:
    study, series_uid = generate_uid(), generate_uid()
    ds = make_ct(study, series_uid, rows=256, cols=256)  # uniform noise: nothing for zstd to find
    ds.BitsStored, ds.HighBit = 16, 15
    ds.PixelData = np.random.default_rng(7).integers(0, 65536, size=(256, 256), dtype=np.uint16).tobytes()
    stow(server, ds)
    url = f"{server.dicomweb_url}/studies/{study}/series/{series_uid}/instances/{ds.SOPInstanceUID}"
    resp, _ = raw_get(server, url + "/frames/1", Accept=OCTET_ANY, **{"Accept-Encoding": "zstd, gzip"})
    assert resp.status_code == 200 and "content-encoding" not in resp.headers
    resp, _ = raw_get(server, url + "/rendered", Accept="image/jpeg", **{"Accept-Encoding": "zstd, gzip"})
    assert resp.status_code == 200 and "content-encoding" not in resp.headers
    resp, _ = raw_get(server, url + "/metadata", **{"Accept-Encoding": "gzip"})  # ~1 kB: below a packet
    assert resp.status_code == 200


def test_identity_refused(server: YunyingServer, series: tuple) -> None:
    study, series_uid, items = series
    base = f"{server.dicomweb_url}/studies/{study}/series/{series_uid}"
    resp, body = raw_get(server, f"{server.dicomweb_url}/studies?StudyInstanceUID={study}",
                         **{"Accept-Encoding": "identity;q=0, gzip"})  # small, but identity refused
    assert resp.headers["content-encoding"] == "gzip" and len(json.loads(gzip.decompress(body))) == 1
    sop = items[0].SOPInstanceUID
    refused = httpx.delete(f"{base}/instances/{sop}", headers={**server.headers, "Accept-Encoding": "*;q=0"})
    assert refused.status_code == 406 and "Accept-Encoding" in refused.json()["error"]
    kept = httpx.get(f"{base}/instances/{sop}/metadata", headers={**server.headers, "Accept-Encoding": "identity"})
    assert kept.status_code == 200  # refused before anything was done


def test_errors_stay_plain_json(server: YunyingServer) -> None:
    resp = httpx.get(f"{server.dicomweb_url}/studies/1.2.3/series/4.5.6/metadata",
                     headers={**server.headers, "Accept-Encoding": "br"})
    assert resp.status_code == 404 and resp.json()["status"] == 404


def test_compress_frames_off_keeps_pixels_plain(tmp_path: Path) -> None:
    srv = start_with_env(tmp_path / "data", YUNYING_COMPRESS_FRAMES="false")
    try:
        study, series_uid = generate_uid(), generate_uid()
        items = [smooth_ct(study, series_uid, i, size=256) for i in range(1, 4)]
        stow(srv, *items)
        base = f"{srv.dicomweb_url}/studies/{study}/series/{series_uid}"
        resp, _ = raw_get(srv, f"{base}/instances/{items[0].SOPInstanceUID}/frames/1", Accept=OCTET_ANY,
                          **{"Accept-Encoding": "zstd, br, gzip"})
        assert resp.status_code == 200 and "content-encoding" not in resp.headers
        assert resp.headers["vary"] == "Accept-Encoding"
        resp, _ = raw_get(srv, f"{base}/metadata", **{"Accept-Encoding": "zstd, br, gzip"})
        assert resp.headers["content-encoding"] == "br"  # JSON is encoded either way
    finally:
        srv.stop()


@pytest.mark.parametrize("accept_encoding", [None, b"identity", b"br;q=0, identity", b"gzip"])
def test_an_answer_no_coding_can_apply_to_passes_as_it_is_with_vary(accept_encoding: bytes | None) -> None:
    """The fast path (no Accept-Encoding, or one naming no coding of ours): the bytes untouched,
    Vary added to a cacheable answer (and merged with the one it has), not to an error."""
    import asyncio

    from starlette.responses import Response

    from dicomweb.coding import ContentCoding

    def answers(status: int, vary: str | None) -> list[dict]:
        async def app(scope: dict, receive: object, send: object) -> None:
            await Response(b"{}" * 3000, status_code=status, media_type="application/json",
                           headers={"Vary": vary} if vary else None)(scope, receive, send)  # type: ignore[arg-type]
        sent: list[dict] = []

        async def send(message: dict) -> None:
            sent.append(message)
        headers = [(b"accept-encoding", accept_encoding)] if accept_encoding else []
        scope = {"type": "http", "method": "GET", "path": "/x", "headers": headers}
        asyncio.run(ContentCoding(app)(scope, None, send))  # type: ignore[arg-type]
        return sent

    if accept_encoding == b"gzip":  # the other path, for contrast
        assert dict(answers(200, None)[0]["headers"])[b"content-encoding"] == b"gzip"
        return
    start, body = answers(200, None)
    assert dict(start["headers"])[b"vary"] == b"Accept-Encoding" and body["body"] == b"{}" * 3000
    assert b"content-encoding" not in dict(start["headers"])
    assert dict(answers(200, "Origin")[0]["headers"])[b"vary"] == b"Origin, Accept-Encoding"
    assert b"vary" not in dict(answers(404, None)[0]["headers"])
