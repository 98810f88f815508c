"""STOW-RS parts written to files as they arrive (issue 9 part 3), through a real server.

Each part goes to a file of its own in the server's memory folder (tmpfs) and is stored from
there; these tests check what a client sees (bytes kept exactly, read-your-writes with several
clients, clear refusals of broken bodies) and that no part file outlives its request.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pydicom
from dicomweb_client.api import DICOMwebClient
from pydicom.uid import generate_uid

from benchmarks.net import YunyingServer
from tests import web
from tests.dicomweb.helpers import make_ct, multipart, part10, refusal

REFERENCED, FAILED, FAILURE_REASON = "00081199", "00081198", "00081197"


def _post(server: YunyingServer, body: bytes | Iterator[bytes], ctype: str) -> httpx.Response:
    return web.post(server.dicomweb_url + "/studies", content=body, timeout=60,
                    headers={"Content-Type": ctype, "Accept": "application/dicom+json"})


def _count(server: YunyingServer, study: str) -> int:
    resp = web.get(f"{server.dicomweb_url}/studies/{study}/instances", timeout=30)
    return len(resp.json()) if resp.status_code == 200 and resp.content else 0


def _part_files(server: YunyingServer) -> list[Path]:
    """Part files left in the data folder's disk spool. (Memory files stay for the next parts,
    at most KEEP_BYTES of them, until idle: tests/dicomweb/test_stow_spool_files.py.)"""
    spool = server.data_dir / "store" / "tmp"
    return [f for f in spool.iterdir() if f.name.startswith("stow-")] if spool.is_dir() else []


def _memory_files(server: YunyingServer) -> list[Path]:
    return [f for d in Path("/dev/shm").glob(f"yunying-ingest-{server.proc.pid}-stow-*") for f in d.iterdir()]


def _pieces(body: bytes, size: int) -> Iterator[bytes]:
    """The body in small pieces (chunked, no Content-Length): boundaries straddle them."""
    for i in range(0, len(body), size):
        yield body[i:i + size]


def test_parts_arriving_in_small_pieces_are_kept_byte_for_byte(fresh_server: YunyingServer) -> None:
    study = generate_uid()
    sent = [make_ct(study, number=i, rows=64 + i, cols=64) for i in range(3)]
    body, ctype = multipart(*(part10(ds) for ds in sent))
    resp = _post(fresh_server, _pieces(body, 997), ctype)
    assert resp.status_code == 200, resp.text
    client = DICOMwebClient(fresh_server.dicomweb_url, headers=fresh_server.headers)
    for ds in sent:
        got = client.retrieve_instance(study, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        assert got.PixelData == ds.PixelData and got.Rows == ds.Rows
    if Path("/dev/shm").is_dir():  # the parts went through memory files, kept for the next parts
        assert 1 <= len(_memory_files(fresh_server)) <= 3
    assert _part_files(fresh_server) == []


def test_wrong_boundary_is_400_and_stores_nothing(fresh_server: YunyingServer) -> None:
    ds = make_ct()
    body, _ = multipart(part10(ds), boundary="TheRealOne")
    resp = _post(fresh_server, body, 'multipart/related; type="application/dicom"; boundary=NotTheOne')
    assert "closing boundary" in refusal(resp, 400)
    assert _count(fresh_server, ds.StudyInstanceUID) == 0
    assert _part_files(fresh_server) == []


def test_a_body_broken_off_in_a_part_keeps_the_whole_parts_before_it(fresh_server: YunyingServer) -> None:
    study = generate_uid()
    first, second = make_ct(study, number=1), make_ct(study, number=2)
    body, ctype = multipart(part10(first), part10(second))
    cut = body[: len(body) - len(part10(second)) // 2]  # the second part stops halfway
    resp = _post(fresh_server, _pieces(cut, 4096), ctype)
    assert resp.status_code == 202, resp.text
    doc = resp.json()
    assert [r["00081155"]["Value"][0] for r in doc[REFERENCED]["Value"]] == [first.SOPInstanceUID]
    assert doc[FAILED]["Value"][-1][FAILURE_REASON]["Value"] == [0xC000]
    assert _count(fresh_server, study) == 1
    assert _part_files(fresh_server) == []


def test_non_dicom_and_truncated_dicom_parts_fail_alone(fresh_server: YunyingServer) -> None:
    study = generate_uid()
    good, cut = make_ct(study, number=1), make_ct(study, number=2)
    body, ctype = multipart(part10(good), b"\x00" * 200 + b"not DICOM", part10(cut)[:300])
    resp = _post(fresh_server, body, ctype)
    assert resp.status_code == 202, resp.text
    doc = resp.json()
    assert [r["00081155"]["Value"][0] for r in doc[REFERENCED]["Value"]] == [good.SOPInstanceUID]
    assert [f[FAILURE_REASON]["Value"] for f in doc[FAILED]["Value"]] == [[0xC000], [0xC000]]
    assert "2 of 3 instances failed" in resp.headers["Warning"]
    assert _count(fresh_server, study) == 1
    only_bad, ctype = multipart(b"nothing", part10(cut)[:300])
    assert _post(fresh_server, only_bad, ctype).status_code == 400
    assert _count(fresh_server, study) == 1
    assert _part_files(fresh_server) == []


def test_four_clients_read_their_writes(fresh_server: YunyingServer) -> None:
    """Each client searches right after its STOW answer and finds every instance it sent."""
    errors: list[str] = []

    def client_run(k: int) -> None:
        client = DICOMwebClient(fresh_server.dicomweb_url, headers=fresh_server.headers)
        study = generate_uid()
        for batch in range(3):
            sent = [make_ct(study, number=batch * 4 + i) for i in range(4)]
            client.store_instances(sent)
            found = {r["00080018"]["Value"][0] for r in client.search_for_instances(study)}
            missing = {ds.SOPInstanceUID for ds in sent} - found
            if missing:
                errors.append(f"client {k} batch {batch}: {len(missing)} not found")

    threads = [threading.Thread(target=client_run, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert _part_files(fresh_server) == []
    assert len(_memory_files(fresh_server)) <= 16  # reused: at most the parts stored at once


def test_the_stored_instance_is_the_received_one(fresh_server: YunyingServer) -> None:
    """A single application/dicom body: the retrieved instance is the one sent, attributes and pixels."""
    ds = make_ct(rows=128, cols=96)
    resp = _post(fresh_server, part10(ds), "application/dicom")
    assert resp.status_code == 200, resp.text
    client = DICOMwebClient(fresh_server.dicomweb_url, headers=fresh_server.headers)
    got: pydicom.Dataset = client.retrieve_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    assert (got.PatientName, got.Columns, got.PixelData) == (ds.PatientName, ds.Columns, ds.PixelData)
    assert _part_files(fresh_server) == []
