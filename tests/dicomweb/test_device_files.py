"""Issue 10 part 2: keep what devices produce. An unknown VR in an ordinary attribute is stored as
received with a warning; an unexpected failure while storing is a 500 / 0x0110, not a 409."""
from __future__ import annotations

import io
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pydicom
import pytest
from pynetdicom import AE

from benchmarks.net import YunyingServer, start_yunying
from tests.dicomweb.helpers import make_ct, multipart, part10
from yunying.ingest import _dataset_start

LONG = {b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"UC", b"UR", b"OD", b"OL", b"OV", b"SV", b"UV"}
WARNING_REASON, FAILURE_REASON = "00081196", "00081197"
DATA_SET_DOES_NOT_MATCH = 0xB007  # PS3.4 B.2.3 warning: stored, but not as its SOP class says


def insert(raw: bytes, tag: int, element: bytes) -> bytes:
    """Insert encoded explicit VR LE element bytes at their ordered place in the top-level data set."""
    pos = _dataset_start(io.BytesIO(raw))
    while pos < len(raw):
        group, elem = struct.unpack_from("<HH", raw, pos)
        if (group << 16 | elem) > tag:
            break
        if raw[pos + 4:pos + 6] in LONG:
            pos += 12 + struct.unpack_from("<I", raw, pos + 8)[0]
        else:
            pos += 8 + struct.unpack_from("<H", raw, pos + 6)[0]
    return raw[:pos] + element + raw[pos:]


def short(tag: int, vr: bytes, value: bytes) -> bytes:
    value += b" " * (len(value) % 2)
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr, len(value)) + value


def with_unknown_vr(ds: pydicom.Dataset) -> bytes:
    """Manufacturer (0008,0070) sent with the VR "XX" (2-byte length, as DCMTK reads unknown VRs)."""
    return insert(part10(ds), 0x00080070, short(0x00080070, b"XX", b"ACME MEDICAL"))


def with_unknown_vr_in_item(ds: pydicom.Dataset) -> bytes:
    """A Referenced Study Sequence item holding an element of VR "QQ"."""
    item = short(0x00081150, b"UI", b"1.2.3\0") + short(0x00081155, b"UI", b"1.2.3.4\0") \
        + short(0x00091010, b"QQ", b"vendor")
    body = struct.pack("<HHI", 0xFFFE, 0xE000, len(item)) + item
    seq = struct.pack("<HH2sHI", 0x0008, 0x1110, b"SQ", 0, len(body)) + body
    return insert(part10(ds), 0x00081110, seq)


def with_bad_length(ds: pydicom.Dataset) -> bytes:
    """Effective Echo Time (0018,9082), an FD, sent with 6 bytes: no whole number of values."""
    return insert(part10(ds), 0x00189082, short(0x00189082, b"FD", b"\x00" * 6))


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YunyingServer]:
    srv = start_yunying(tmp_path_factory.mktemp("devices") / "data", peers={"MODALITY": ("127.0.0.1", 1)})
    yield srv
    srv.stop()


def stow(server: YunyingServer, *raws: bytes) -> httpx.Response:
    body, ctype = multipart(*raws)
    return httpx.post(server.dicomweb_url + "/studies", content=body, timeout=60,
                      headers={**server.headers, "Content-Type": ctype})


@pytest.mark.parametrize("build", [with_unknown_vr, with_unknown_vr_in_item, with_bad_length])
def test_unknown_vr_is_stored_as_received_with_a_warning(archive: YunyingServer,
                                                         build: Callable[[pydicom.Dataset], bytes]) -> None:
    ds = make_ct()
    raw = build(ds)
    resp = stow(archive, raw)
    assert resp.status_code == 202, resp.text  # PS3.18 10.5.3: stored with warnings
    item = resp.json()["00081199"]["Value"][0]
    assert item["00081155"]["Value"] == [ds.SOPInstanceUID]
    assert item[WARNING_REASON]["Value"] == [DATA_SET_DOES_NOT_MATCH]
    assert "VR" in resp.headers["warning"] and ("(0008,0070)" in resp.headers["warning"]
                                                 or "(0009,1010)" in resp.headers["warning"]
                                                 or "(0018,9082)" in resp.headers["warning"])
    url = (f"{archive.dicomweb_url}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
           f"/instances/{ds.SOPInstanceUID}")
    stored = httpx.get(url, headers={**archive.headers, "Accept": "application/dicom; transfer-syntax=*"})
    assert stored.status_code == 200
    start = _dataset_start(io.BytesIO(raw))
    assert stored.content[_dataset_start(io.BytesIO(stored.content)):] == raw[start:]  # byte for byte
    meta = httpx.get(url + "/metadata", headers=archive.headers)
    assert meta.status_code == 200, meta.text
    if build is with_unknown_vr:  # a known tag: read by its dictionary VR
        assert meta.json()[0]["00080070"] == {"vr": "LO", "Value": ["ACME MEDICAL"]}
    converted = httpx.get(url, headers={**archive.headers, "Accept": "application/dicom"})
    assert converted.status_code == 200, converted.text
    assert pydicom.dcmread(io.BytesIO(converted.content)).SOPInstanceUID == ds.SOPInstanceUID


def test_unknown_vr_over_c_store_is_warning_b007(archive: YunyingServer) -> None:
    ds = make_ct()
    raw = with_unknown_vr(ds)
    sent = pydicom.dcmread(io.BytesIO(raw))
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(ds.SOPClassUID, pydicom.uid.ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", archive.dimse_port, ae_title=archive.aet)
    assert assoc.is_established
    try:
        status = assoc.send_c_store(sent)
    finally:
        assoc.release()
    assert status.Status == DATA_SET_DOES_NOT_MATCH, status
    found = httpx.get(f"{archive.dicomweb_url}/studies/{ds.StudyInstanceUID}/instances", headers=archive.headers)
    assert [i["00080018"]["Value"] for i in found.json()] == [[ds.SOPInstanceUID]]


def test_unexpected_failure_is_500_with_0110_and_logged(tmp_path: Path) -> None:
    """The store cannot make the study's folder (a file stands in its place): the server's fault."""
    srv = start_yunying(tmp_path / "data")
    try:
        ds = make_ct()
        blocker = srv.data_dir / "store" / "objects" / ds.StudyInstanceUID
        blocker.write_bytes(b"not a folder")
        resp = stow(srv, part10(ds))
        assert resp.status_code == 500, resp.text
        assert resp.json()["00081198"]["Value"][0][FAILURE_REASON]["Value"] == [0x0110]
        log = srv.log_path.read_text()
        assert "failed unexpectedly: NotADirectoryError" in log and "Doe" not in log  # reason, no patient name
        blocker.unlink()
        assert stow(srv, part10(ds)).status_code == 200  # storing resumes
    finally:
        srv.stop()
