"""Issue 10 part 6: huge instances in bounded memory. A 1.26 GB instance (2,400 frames) sent by
STOW-RS with a Content-Length is stored with the server's RSS growing less than 1 GiB, frames
byte-exact; many parts in one request are stored as they arrive, under a memory cap."""
from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from pydicom.uid import generate_uid

from benchmarks.net import YunyingServer, peak_rss_bytes, start_yunying
from tests.dicomweb.helpers import make_ct, part10

ROWS = COLS = 512
FRAMES = 2400  # 2,400 x 512 x 512 x 2 bytes = 1.26 GB
BOUNDARY = "huge-boundary"
OCTET = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
BATCH = 100  # frames asked for in one request when checking them all


def frame(i: int) -> bytes:
    """Frame i's pixels: noise (no codec shrinks it), reproducible without keeping it."""
    return np.random.default_rng(i).integers(0, 4096, (ROWS, COLS), dtype=np.uint16).tobytes()


def write_body(path: Path, study: str, frames: int) -> str:
    """A one-part STOW body of a multi-frame instance, written frame by frame; its SOP Instance UID."""
    ds = make_ct(study, rows=ROWS, cols=COLS)
    ds.NumberOfFrames = frames
    del ds.PixelData
    head = part10(ds)
    with open(path, "wb") as fh:
        fh.write(f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode() + head)
        fh.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, frames * ROWS * COLS * 2))
        fh.writelines(frame(i) for i in range(frames))
        fh.write(f"\r\n--{BOUNDARY}--\r\n".encode())
    return str(ds.SOPInstanceUID) + "|" + str(ds.SeriesInstanceUID)


def chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            yield chunk


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmRSS"))


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[YunyingServer]:
    srv = start_yunying(tmp_path / "data")
    yield srv
    srv.stop()


def test_a_1_26_gb_instance_is_stored_in_bounded_memory(archive: YunyingServer, tmp_path: Path) -> None:
    study = generate_uid()
    body = tmp_path / "body"
    sop, series = write_body(body, study, FRAMES).split("|")
    before = rss(archive.pid)
    resp = httpx.post(archive.dicomweb_url + "/studies", content=chunks(body), timeout=900, headers={
        **archive.headers, "Content-Type": f'multipart/related; type="application/dicom"; boundary={BOUNDARY}',
        "Content-Length": str(body.stat().st_size)})
    assert resp.status_code == 200, resp.text
    peak = peak_rss_bytes(archive.pid)
    assert peak is not None
    body.unlink()
    growth = peak - before
    print(f"\nstoring 1.26 GB: server RSS {before / 2**20:.0f} MiB before, peak {peak / 2**20:.0f} MiB")  # -s shows it
    assert growth < 1 << 30, f"RSS grew {growth / 2**20:.0f} MiB storing a 1.26 GB instance"
    url = f"{archive.dicomweb_url}/studies/{study}/series/{series}/instances/{sop}/frames/"
    for first in range(1, FRAMES + 1, BATCH):  # every frame, byte for byte, BATCH at a time
        numbers = range(first, min(first + BATCH, FRAMES + 1))
        got = frames(httpx.get(url + ",".join(map(str, numbers)), headers={**archive.headers, "Accept": OCTET},
                               timeout=120))
        assert len(got) == len(numbers), first
        for n, data in zip(numbers, got):
            assert data == frame(n - 1), f"frame {n} differs"


def frames(resp: httpx.Response) -> list[bytes]:
    """The parts of a multipart/related frames answer, in order."""
    assert resp.status_code == 200, resp.text
    boundary = resp.headers["content-type"].split("boundary=")[1].split(";")[0].strip('"').encode()
    assert resp.content.rstrip().endswith(b"--" + boundary + b"--"), "the answer was cut off"
    return [chunk.partition(b"\r\n\r\n")[2] for chunk in resp.content.split(b"\r\n--" + boundary)[:-1]
            if b"\r\n\r\n" in chunk]


def test_many_parts_are_stored_as_they_arrive_under_a_memory_cap(archive: YunyingServer, tmp_path: Path) -> None:
    """24 parts of 30 MB (each under the 32 MiB in-memory spool size) in one request: 720 MB."""
    study = generate_uid()
    body = tmp_path / "body"
    parts = 24
    with open(body, "wb") as fh:
        for i in range(parts):
            ds = make_ct(study, rows=ROWS, cols=COLS, number=i + 1)
            ds.NumberOfFrames = 57
            ds.PixelData = b"".join(frame(i * 100 + f) for f in range(57))
            fh.write(f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part10(ds) + b"\r\n")
        fh.write(f"--{BOUNDARY}--\r\n".encode())
    before = rss(archive.pid)
    resp = httpx.post(archive.dicomweb_url + "/studies", content=chunks(body), timeout=900, headers={
        **archive.headers, "Content-Type": f'multipart/related; type="application/dicom"; boundary={BOUNDARY}',
        "Content-Length": str(body.stat().st_size)})
    assert resp.status_code == 200, resp.text
    assert len(resp.json()["00081199"]["Value"]) == parts
    peak = peak_rss_bytes(archive.pid)
    assert peak is not None
    growth = peak - before
    print(f"\n24 parts, 720 MB: server RSS {before / 2**20:.0f} MiB before, peak {peak / 2**20:.0f} MiB")
    assert growth < 400 << 20, f"RSS grew {growth / 2**20:.0f} MiB for a 720 MB request"


def test_a_body_that_breaks_off_keeps_and_reports_the_parts_already_stored(archive: YunyingServer) -> None:
    study = generate_uid()
    first, second = make_ct(study, number=1), make_ct(study, number=2)
    body = b"".join(f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part10(ds) + b"\r\n"
                    for ds in (first, second, make_ct(study, number=3)))[:-500]  # the third part is cut off
    resp = httpx.post(archive.dicomweb_url + "/studies", content=body, timeout=60, headers={
        **archive.headers, "Content-Type": f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'})
    assert resp.status_code == 202, resp.text
    stored = {i["00081155"]["Value"][0] for i in resp.json()["00081199"]["Value"]}
    assert stored == {first.SOPInstanceUID, second.SOPInstanceUID}
    assert resp.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0xC000]
    found = httpx.get(f"{archive.dicomweb_url}/studies/{study}/instances", headers=archive.headers).json()
    assert len(found) == 2
