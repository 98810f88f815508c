"""A download of a study larger than the server may hold in memory: the ZIP is written as the
instances are read (yunying.portal.downloads), so the server's peak resident memory grows by far
less than the study, and the ZIP still holds every stored instance, byte for byte, at the File
IDs its DICOMDIR names. The bound is generous (half the study) and read from /proc, never timed.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import httpx
import pydicom
import pytest
import pyzipper
from pydicom.uid import generate_uid

from benchmarks.net import YunyingServer
from tests.frontends.phantom import ct_slice, stow
from tests.portal.test_downloads import patient_of

SLICES, SIZE = 96, 512  # 96 slices of 512 x 512 x 2 bytes: 48 MiB of pixels


def status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM of a process, in bytes."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: int(v.split()[0]) * 1024 for k, _, v in (line.partition(":") for line in lines)
            if k in ("VmRSS", "VmHWM")}


def peak_growth(srv: YunyingServer, request: dict, headers: dict[str, str]) -> tuple[int, httpx.Response]:
    """The server's peak resident memory growth while it answers one POST /api/portal/downloads."""
    pid = srv.proc.pid
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # the high-water mark starts again from now
    before = status(pid)
    made = httpx.post(srv.http_url + "/api/portal/downloads", json=request, headers=headers, timeout=300)
    growth = status(pid)["VmHWM"] - before["VmRSS"]
    print(f"{request}: peak RSS +{growth / 2**20:.1f} MiB")  # shown with pytest -s
    return growth, made


@pytest.fixture(scope="module")
def big(srv: YunyingServer) -> tuple[str, dict[str, bytes]]:
    """A stored CT larger than the memory bound: (study UID, SOP Instance UID -> the bytes sent)."""
    if not os.access(f"/proc/{srv.proc.pid}/clear_refs", os.W_OK):
        pytest.fail("/proc/<pid>/clear_refs is not writable: the peak memory cannot be measured")
    study, series = generate_uid(), generate_uid()
    sent: dict[str, bytes] = {}
    for start in range(0, SLICES, 8):  # small requests: storing is not what is measured
        parts = [ct_slice(i, study, series, SIZE) for i in range(start, start + 8)]
        stow(srv, parts)
        sent.update({str(pydicom.dcmread(io.BytesIO(p), stop_before_pixels=True).SOPInstanceUID): p for p in parts})
    return study, sent


def test_a_big_study_downloads_as_a_valid_zip_in_bounded_memory(
        srv: YunyingServer, big: tuple[str, dict[str, bytes]]) -> None:
    study, sent = big
    size = sum(len(p) for p in sent.values())
    patient = patient_of(srv, study, "13100000011")
    growth, made = peak_growth(srv, {"study": study}, patient)
    assert made.status_code == 201, made.text
    # the old builder held every dataset of the study at once: it grew by more than the study
    assert growth < size / 2, f"peak RSS grew {growth / 2**20:.1f} MiB for a {size / 2**20:.1f} MiB study"

    got = made.json()
    with httpx.stream("GET", f"{srv.http_url}/api/portal/downloads/{got['id']}", headers=patient,
                      timeout=120) as z:
        assert z.status_code == 200
        body = z.read()
    assert len(body) == got["size"]
    with pyzipper.AESZipFile(io.BytesIO(body)) as archive:
        archive.setpassword(got["password"].encode())
        assert archive.testzip() is None  # every member's CRC and AES authentication code hold
        dicomdir = pydicom.dcmread(io.BytesIO(archive.read("DICOM/DICOMDIR")))
        named = {"DICOM/" + "/".join(r.ReferencedFileID): str(r.ReferencedSOPInstanceUIDInFile)
                 for r in dicomdir.DirectoryRecordSequence if r.DirectoryRecordType == "IMAGE"}
        members = set(archive.namelist()) - {"DICOM/DICOMDIR"}
        assert set(named) == members and sorted(named.values()) == sorted(sent)
        for name, uid in named.items():
            assert archive.read(name) == sent[uid], name  # the stored bytes, as sent


def test_the_jpeg_zip_of_a_big_study_is_drawn_one_image_at_a_time(
        srv: YunyingServer, big: tuple[str, dict[str, bytes]]) -> None:
    from PIL import Image

    study, sent = big
    size = sum(len(p) for p in sent.values())
    patient = patient_of(srv, study, "13100000012")
    growth, made = peak_growth(srv, {"study": study, "contents": "jpeg"}, patient)
    assert made.status_code == 201, made.text
    assert growth < size / 2, f"peak RSS grew {growth / 2**20:.1f} MiB for a {size / 2**20:.1f} MiB study"
    got = made.json()
    z = httpx.get(f"{srv.http_url}/api/portal/downloads/{got['id']}", headers=patient, timeout=120)
    with pyzipper.AESZipFile(io.BytesIO(z.content)) as archive:
        archive.setpassword(got["password"].encode())
        names = archive.namelist()
        assert len(names) == SLICES and all(n.startswith("JPEG/") for n in names)
        image = Image.open(io.BytesIO(archive.read(names[0])))
        assert image.format == "JPEG" and image.size == (SIZE, SIZE)
