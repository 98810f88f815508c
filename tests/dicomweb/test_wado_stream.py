"""Whole-instance retrieves streamed with reads ahead, and a repeat sent with its digests known
(dicomweb/wado_stream.py, issue 9 part 4): the same bytes and correct digests every time, a
changed answer never reuses an old digest, and a client leaving mid-answer harms nothing."""
from __future__ import annotations

import base64
import hashlib
import socket
from collections.abc import Iterator

import httpx
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient

from benchmarks.net import YunyingServer
from tests.dicomweb.helpers import make_ct, multipart, part10

ACCEPT_DICOM = "multipart/related; type=application/dicom; transfer-syntax=*"


def sha256(body: bytes) -> str:
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"


@pytest.fixture(scope="module")
def series(server: YunyingServer) -> Iterator[tuple[YunyingServer, str, list[pydicom.Dataset]]]:
    first = make_ct(patient_id="P-STREAM", rows=64, cols=64, number=1)
    more = [make_ct(first.StudyInstanceUID, first.SeriesInstanceUID, patient_id="P-STREAM", rows=64, cols=64,
                    number=n) for n in range(2, 6)]
    body, ctype = multipart(*(part10(ds) for ds in [first, *more]))
    r = httpx.post(server.dicomweb_url + "/studies", content=body, headers={**server.headers, "Content-Type": ctype})
    assert r.status_code == 200
    yield server, f"/studies/{first.StudyInstanceUID}/series/{first.SeriesInstanceUID}", [first, *more]


def _get(server: YunyingServer, path: str, **headers: str) -> tuple[httpx.Response, bytes]:
    with httpx.Client(base_url=server.dicomweb_url, headers=server.headers, timeout=30) as c, \
            c.stream("GET", path, headers={"Accept": ACCEPT_DICOM, **headers}) as r:
        return r, b"".join(r.iter_raw())


def test_a_repeat_is_the_same_body_with_the_same_digest(series: tuple[YunyingServer, str, list[pydicom.Dataset]]) -> None:
    server, path, datasets = series
    (first, body1), (again, body2) = _get(server, path), _get(server, path)
    assert first.status_code == again.status_code == 200
    assert body1 == body2 and first.headers["content-type"] == again.headers["content-type"]
    # the first streamed at once, hashed on the way (nobody asked for its digest); the repeat
    # carries the digest of those same bytes from its first byte
    assert "repr-digest" not in first.headers
    assert again.headers["repr-digest"] == sha256(body1) and int(again.headers["content-length"]) == len(body1)
    for ds in datasets:  # every instance, whole
        assert ds.SOPInstanceUID.encode() in body2
    assert body2.count(b"Content-Type: application/dicom") == len(datasets)


def test_md5_asked_after_a_plain_retrieve_is_computed(series: tuple[YunyingServer, str, list[pydicom.Dataset]]) -> None:
    server, path, _ = series
    _get(server, path)
    r, body = _get(server, path, **{"Want-Digest": "md5"})
    assert r.headers["content-md5"] == base64.b64encode(hashlib.md5(body).digest()).decode()
    r, body = _get(server, path, **{"Want-Digest": "md5"})  # now known: sent without a spool
    assert r.headers["content-md5"] == base64.b64encode(hashlib.md5(body).digest()).decode()
    assert r.headers["repr-digest"] == sha256(body)


def test_an_encoded_repeat_carries_the_digest_of_the_encoded_bytes(
        series: tuple[YunyingServer, str, list[pydicom.Dataset]]) -> None:
    server, path, _ = series
    _get(server, path)  # the identity body's digest is known now
    r, body = _get(server, path, **{"Accept-Encoding": "gzip, identity;q=0"})
    assert r.headers["content-encoding"] == "gzip"
    assert r.headers["repr-digest"] == sha256(body) and int(r.headers["content-length"]) == len(body)
    assert r.headers.get_list("repr-digest") == [sha256(body)]


def test_a_changed_series_gets_a_new_digest(fresh_server: YunyingServer) -> None:
    server = fresh_server
    first = make_ct(patient_id="P-CHANGE", rows=32, cols=32)
    body, ctype = multipart(part10(first))
    post = {**server.headers, "Content-Type": ctype}
    assert httpx.post(server.dicomweb_url + "/studies", content=body, headers=post).status_code == 200
    path = f"/studies/{first.StudyInstanceUID}/series/{first.SeriesInstanceUID}"
    _, before = _get(server, path)
    r, _ = _get(server, path)
    assert r.headers["repr-digest"] == sha256(before)  # known now
    second = make_ct(first.StudyInstanceUID, first.SeriesInstanceUID, patient_id="P-CHANGE", rows=32, cols=32,
                     number=2)
    body, ctype = multipart(part10(second))
    assert httpx.post(server.dicomweb_url + "/studies", content=body,
                      headers={**post, "Content-Type": ctype}).status_code == 200
    r, after = _get(server, path)
    assert after != before and r.headers.get("repr-digest") in (None, sha256(after))  # never the old one
    r, again = _get(server, path)
    assert again == after and r.headers["repr-digest"] == sha256(after)
    assert int(r.headers["content-length"]) == len(after)


def test_a_client_leaving_mid_answer_leaves_the_server_serving(
        series: tuple[YunyingServer, str, list[pydicom.Dataset]]) -> None:
    server, path, _ = series
    _get(server, path)  # known digest: the answer streams from its first byte
    host, port = server.dicomweb_url.split("//")[1].split("/")[0].split(":")
    prefix = "/" + server.dicomweb_url.split("//")[1].partition("/")[2]
    with socket.create_connection((host, int(port))) as s:
        auth = "".join(f"{k}: {v}\r\n" for k, v in server.headers.items())
        s.sendall(f"GET {prefix}{path} HTTP/1.1\r\nHost: x\r\nAccept: {ACCEPT_DICOM}\r\n{auth}\r\n".encode())
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
    r, body = _get(server, path)
    assert r.status_code == 200 and r.headers["repr-digest"] == sha256(body)


def test_a_first_retrieve_states_its_length_and_parses(fresh_server: YunyingServer) -> None:
    """The first answer goes out with Content-Length (not chunked), as stored and converted,
    and is whole for a real client (dicomweb-client)."""
    server = fresh_server
    first = make_ct(patient_id="P-LENGTH", rows=48, cols=40, number=1)
    more = [make_ct(first.StudyInstanceUID, first.SeriesInstanceUID, patient_id="P-LENGTH", rows=48, cols=40,
                    frames=n, number=n) for n in (2, 3)]
    body, ctype = multipart(*(part10(ds) for ds in [first, *more]))
    assert httpx.post(server.dicomweb_url + "/studies", content=body,
                      headers={**server.headers, "Content-Type": ctype}).status_code == 200
    path = f"/studies/{first.StudyInstanceUID}/series/{first.SeriesInstanceUID}"
    implicit = "multipart/related; type=application/dicom; transfer-syntax=1.2.840.10008.1.2"
    for accept in (ACCEPT_DICOM, implicit):  # as stored; converted before the status line
        r, raw = _get(server, path, Accept=accept)
        assert r.status_code == 200 and "transfer-encoding" not in r.headers
        assert int(r.headers["content-length"]) == len(raw) and "repr-digest" not in r.headers
        again, raw2 = _get(server, path, Accept=accept)
        assert raw2 == raw and again.headers["repr-digest"] == sha256(raw)
    client = DICOMwebClient(server.dicomweb_url, headers=server.headers)
    got = client.retrieve_series(first.StudyInstanceUID, first.SeriesInstanceUID)
    assert sorted(ds.SOPInstanceUID for ds in got) == sorted(ds.SOPInstanceUID for ds in [first, *more])
    for ds in got:
        sent = next(d for d in [first, *more] if d.SOPInstanceUID == ds.SOPInstanceUID)
        assert ds.PixelData == sent.PixelData


def test_a_first_retrieve_of_unknown_or_unacceptable_is_refused(
        series: tuple[YunyingServer, str, list[pydicom.Dataset]]) -> None:
    server, path, _ = series
    r, body = _get(server, "/studies/1.2.3.999/series/1.2.3.998")
    assert r.status_code == 404 and "repr-digest" not in r.headers and body
    r, _ = _get(server, path, Accept="image/png")
    assert r.status_code == 406 and "repr-digest" not in r.headers


def test_a_client_leaving_a_first_answer_records_no_digest(fresh_server: YunyingServer) -> None:
    """A first answer cut off mid-way (hashed on the way, in a thread) records nothing: the next
    one is streamed and hashed again, whole, and its repeat carries the right digest."""
    server = fresh_server
    first = make_ct(patient_id="P-LEAVE", rows=512, cols=512, frames=8)
    body, ctype = multipart(part10(first))
    assert httpx.post(server.dicomweb_url + "/studies", content=body,
                      headers={**server.headers, "Content-Type": ctype}).status_code == 200
    path = f"/studies/{first.StudyInstanceUID}/series/{first.SeriesInstanceUID}"
    host, port = server.dicomweb_url.split("//")[1].split("/")[0].split(":")
    prefix = "/" + server.dicomweb_url.split("//")[1].partition("/")[2]
    for _ in range(3):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the server cannot push it all out
            s.connect((host, int(port)))
            auth = "".join(f"{k}: {v}\r\n" for k, v in server.headers.items())
            s.sendall(f"GET {prefix}{path} HTTP/1.1\r\nHost: x\r\nAccept: {ACCEPT_DICOM}\r\n{auth}\r\n".encode())
            assert s.recv(65536).startswith(b"HTTP/1.1 200")
    r, whole = _get(server, path)
    assert r.status_code == 200 and "repr-digest" not in r.headers and int(r.headers["content-length"]) == len(whole)
    r, again = _get(server, path)
    assert again == whole and r.headers["repr-digest"] == sha256(whole)


def test_a_streamed_body_is_hashed_in_order_off_the_event_loop() -> None:
    """hardening._Hasher: many batches in flight one after another (more than HASH_LAG), views
    and a reused buffer (copied), the digest recorded before the last bytes go."""
    import asyncio
    import os
    from typing import Any

    from dicomweb import hardening

    blob = os.urandom(3 << 20)
    chunks: list[Any] = [memoryview(blob)[i:i + 700_000] for i in range(0, len(blob), 700_000)]
    chunks += [b"x" * 100, os.urandom(1 << 20)] * 4 + [os.urandom(1000)]
    reused = bytearray(b"a" * 5000)
    recorded: list[list[tuple[bytes, bytes]]] = []
    sent: list[bytes] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        size = sum(map(len, chunks)) + len(reused)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(size).encode())]})
        for i, chunk in enumerate(chunks):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if i == 2:
                await send({"type": "http.response.body", "body": reused, "more_body": True})
                reused[:] = b"b" * 5000  # the sender reuses its buffer: what was sent is what is hashed
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            if message["body"] is chunks[-1]:  # the last bytes: a client that has them all may leave at once
                assert recorded, "the last bytes went before the digest was recorded"
            sent.append(bytes(message["body"]))

    scope = {"type": "http", "method": "GET", "path": "/dicomweb/studies/1.2/series/3.4", "headers": [],
             "state": {"digest_record": recorded.append}}
    asyncio.run(hardening.Digests(app)(scope, None, send))
    body = b"".join(sent)
    assert b"a" * 5000 in body and b"b" * 5000 not in body and len(recorded) == 1
    assert dict(recorded[0]) == {b"content-length": str(len(body)).encode(), b"repr-digest": sha256(body).encode()}


def test_a_first_retrieve_of_an_instance_received_without_file_meta_is_whole(fresh_server: YunyingServer) -> None:
    """An instance received as a bare data set is kept with a file meta: its bytes received
    (`row.size`) are fewer than those sent, so the length promised comes from what is stored."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    server = fresh_server
    first = make_ct(patient_id="P-BARE", rows=40, cols=36, number=1)
    bare = make_ct(first.StudyInstanceUID, first.SeriesInstanceUID, patient_id="P-BARE", rows=40, cols=36,
                   frames=2, number=2)
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_dataset(fp, pydicom.Dataset(bare))  # no preamble, no group 0002
    body, ctype = multipart(part10(first), fp.getvalue())
    r = httpx.post(server.dicomweb_url + "/studies", content=body, headers={**server.headers, "Content-Type": ctype})
    assert r.status_code == 200, r.text
    path = f"/studies/{first.StudyInstanceUID}/series/{first.SeriesInstanceUID}"
    r, raw = _get(server, path)
    assert r.status_code == 200 and int(r.headers["content-length"]) == len(raw)
    client = DICOMwebClient(server.dicomweb_url, headers=server.headers)
    got = {ds.SOPInstanceUID: ds for ds in client.retrieve_series(first.StudyInstanceUID, first.SeriesInstanceUID)}
    assert got[bare.SOPInstanceUID].PixelData == bare.PixelData and got[first.SOPInstanceUID].PixelData == first.PixelData


def test_a_first_retrieve_of_compressed_instances_states_its_length_and_sends_them_as_received(
        fresh_server: YunyingServer) -> None:
    """Encapsulated instances go out in pieces (header slices and the kept bitstream, nothing
    joined) with the answer's length known before reading: each part is the file received."""
    from pathlib import Path

    from pydicom.data import get_testdata_file

    server = fresh_server
    for name in ("SC_rgb_jpeg_dcmtk.dcm", "JPEG2000.dcm"):
        data = Path(str(get_testdata_file(name))).read_bytes()
        ds = pydicom.dcmread(str(get_testdata_file(name)))
        body, ctype = multipart(data)
        r = httpx.post(server.dicomweb_url + "/studies", content=body,
                       headers={**server.headers, "Content-Type": ctype})
        assert r.status_code == 200, r.text
        r, raw = _get(server, f"/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}")
        assert r.status_code == 200 and int(r.headers["content-length"]) == len(raw)
        assert "transfer-encoding" not in r.headers and data in raw
