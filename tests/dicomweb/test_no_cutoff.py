"""Issue 10 part 1: every accepted syntax converts to Explicit VR LE exactly, and no failure
surfaces after the status line (decided before the first byte, or a PS3.18 fallback named in
the part's Content-Type)."""
from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from benchmarks.net import YunyingServer, start_yunying
from tests.conftest import pydicom_path
from tests.dicomweb.helpers import make_ct, multipart, part10

# one file per native syntax the archive accepts, plus the odd cases of each
NATIVE_FILES = ["MR_small_bigendian.dcm", "ExplVR_BigEnd.dcm", "ExplVR_BigEndNoMeta.dcm", "rtdose_expb.dcm",
                "liver_expb_1frame.dcm", "SC_rgb_small_odd_big_endian.dcm", "image_dfl.dcm",
                "MR_small_implicit.dcm", "rtdose.dcm", "rtplan.dcm", "ExplVR_LitEndNoMeta.dcm"]
MULTIPART_DICOM = 'multipart/related; type="application/dicom"'
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
_WORD = {"OW": "u2", "OF": "f4", "OL": "u4", "OD": "f8", "OV": "u8"}


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YunyingServer]:
    srv = start_yunying(tmp_path_factory.mktemp("cutoff") / "data")
    yield srv
    srv.stop()


def read(path: str) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path, force=True)


def stow_raw(server: YunyingServer, *raws: bytes) -> None:
    body, ctype = multipart(*raws)
    resp = httpx.post(server.dicomweb_url + "/studies", content=body, timeout=60,
                      headers={**server.headers, "Content-Type": ctype})
    assert resp.status_code == 200, resp.text


def split(resp: httpx.Response) -> list[tuple[str, bytes]]:
    """The parts of a complete multipart/related answer (a cut-off body fails here)."""
    boundary = resp.headers["content-type"].split("boundary=")[1].split(";")[0].strip('"').encode()
    assert resp.content.rstrip().endswith(b"--" + boundary + b"--"), "the multipart body was cut off"
    out = []
    for chunk in resp.content.split(b"--" + boundary)[1:-1]:
        head, _, body = chunk.partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode().strip().split("\r\n"))
        out.append((headers["Content-Type"], body[:-2]))
    return out


def values_equal(got: pydicom.Dataset, want: pydicom.Dataset, little: bool) -> None:
    """Element by element; word-sized binary values compared as numbers, whatever their byte order."""
    for elem in want:
        if elem.tag.group == 0x0002 or elem.tag.element == 0 or elem.tag == 0x7FE00010:
            continue
        assert elem.tag in got, f"{elem.tag} missing"
        other = got[elem.tag]
        if elem.VR == "SQ":
            assert len(other.value) == len(elem.value)
            for a, b in zip(other.value, elem.value):
                values_equal(a, b, little)
        elif elem.VR in _WORD and isinstance(elem.value, bytes):
            kind = _WORD[elem.VR]
            want_arr = np.frombuffer(elem.value, ("<" if little else ">") + kind)
            assert np.array_equal(np.frombuffer(other.value, "<" + kind), want_arr), f"{elem.tag} differs"
        else:
            assert other.value == elem.value, f"{elem.tag} ({elem.keyword}) differs"


@pytest.mark.parametrize("name", NATIVE_FILES)
def test_every_native_syntax_converts_to_explicit_le_exactly(archive: YunyingServer, name: str) -> None:
    path = pydicom_path(name)
    want = read(path)
    stow_raw(archive, Path(path).read_bytes())
    url = (f"{archive.dicomweb_url}/studies/{want.StudyInstanceUID}/series/{want.SeriesInstanceUID}"
           f"/instances/{want.SOPInstanceUID}")
    for accept in (MULTIPART_DICOM, "application/dicom"):
        resp = httpx.get(url, headers={**archive.headers, "Accept": accept}, timeout=60)
        assert resp.status_code == 200, resp.text
        ctype, body = split(resp)[0] if accept == MULTIPART_DICOM else (resp.headers["content-type"], resp.content)
        got = pydicom.dcmread(io.BytesIO(body))
        assert got.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert "transfer-syntax" not in ctype or ctype.endswith(ExplicitVRLittleEndian)
        values_equal(got, want, bool(want.original_encoding[1]))
        if "PixelData" in want:
            assert np.array_equal(got.pixel_array, want.pixel_array)


def _study_8_then_16_bit() -> tuple[pydicom.Dataset, pydicom.Dataset]:
    """An 8-bit image that JPEG baseline can hold, then a 16-bit one it cannot (PS3.5 A.4.1)."""
    study, series = generate_uid(), generate_uid()
    small = make_ct(study, series, number=1)
    small.BitsAllocated, small.BitsStored, small.HighBit = 8, 8, 7
    small.PixelData = np.arange(64, dtype=np.uint8).tobytes()
    return small, make_ct(study, series, number=2)


def test_unencodable_instance_is_406_not_a_cut_off_200(archive: YunyingServer) -> None:
    small, big = _study_8_then_16_bit()
    stow_raw(archive, part10(small), part10(big))
    resp = httpx.get(f"{archive.dicomweb_url}/studies/{small.StudyInstanceUID}", timeout=60,
                     headers={**archive.headers, "Accept": f"{MULTIPART_DICOM}; transfer-syntax={JPEG_BASELINE}"})
    assert resp.status_code == 406, resp.status_code
    assert big.SOPInstanceUID in resp.text


def test_unencodable_instance_falls_back_to_another_accepted_syntax(archive: YunyingServer) -> None:
    """PS3.18 8.7.5: each part may use any media range the request accepts; its Content-Type says which."""
    small, big = _study_8_then_16_bit()
    stow_raw(archive, part10(small), part10(big))
    accept = f"{MULTIPART_DICOM}; transfer-syntax={JPEG_BASELINE}, {MULTIPART_DICOM}; transfer-syntax=*; q=0.5"
    resp = httpx.get(f"{archive.dicomweb_url}/studies/{small.StudyInstanceUID}", timeout=60,
                     headers={**archive.headers, "Accept": accept})
    assert resp.status_code == 200, resp.text
    got = {pydicom.dcmread(io.BytesIO(body)).SOPInstanceUID: (ctype, body) for ctype, body in split(resp)}
    assert got[small.SOPInstanceUID][0].endswith(f"transfer-syntax={JPEG_BASELINE}")
    assert got[big.SOPInstanceUID][0].endswith(f"transfer-syntax={ExplicitVRLittleEndian}")
    back = pydicom.dcmread(io.BytesIO(got[big.SOPInstanceUID][1]))
    assert np.array_equal(back.pixel_array, big.pixel_array)
