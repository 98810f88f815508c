"""Small builders for test instances and raw multipart bodies."""
from __future__ import annotations

import io
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT = "1.2.840.10008.5.1.4.1.1.2"


def make_ct(study: str | None = None, series: str | None = None, *, name: str = "Doe^John",
            patient_id: str = "P1", date: str = "20240101", modality: str = "CT", number: int = 1,
            rows: int = 8, cols: int = 8, frames: int = 1, charset: str | list[str] | None = None,
            ideographic: str | None = None, accession: str = "A1", sop: str | None = None) -> pydicom.Dataset:
    """A small, valid single- or multi-frame image instance."""
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CT
    ds.SOPInstanceUID = sop or generate_uid()
    ds.StudyInstanceUID = study or generate_uid()
    ds.SeriesInstanceUID = series or generate_uid()
    if charset:
        ds.SpecificCharacterSet = charset
    ds.PatientName = name if ideographic is None else f"{name}={ideographic}"
    ds.PatientID = patient_id
    ds.StudyDate = date
    ds.StudyTime = "101500"
    ds.AccessionNumber = accession
    ds.Modality = modality
    ds.InstanceNumber = number
    ds.SeriesNumber = 1
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if frames > 1:
        ds.NumberOfFrames = frames
    rng = np.random.default_rng(number)
    ds.PixelData = rng.integers(0, 4096, size=(frames, rows, cols), dtype=np.uint16).tobytes()
    return ds


def part10(ds: pydicom.Dataset) -> bytes:
    """A dataset as Part 10 bytes."""
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def multipart(*bodies: bytes, boundary: str = "XbX", ctype: str = "application/dicom") -> tuple[bytes, str]:
    """A multipart/related body and its Content-Type header."""
    out = b""
    for body in bodies:
        out += f"--{boundary}\r\nContent-Type: {ctype}\r\n\r\n".encode() + body + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, f'multipart/related; type="application/dicom"; boundary={boundary}'


def refusal(resp: Any, status: int) -> str:
    """The reason of an error answer: its status, and the archive's JSON error body naming why."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    assert body["status"] == status and body["error"], body
    return str(body["error"])
