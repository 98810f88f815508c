"""A CT series whose stored values are known: vertical stripes, each slice shifted, for checking
what the viewer paints against the server's values."""
from __future__ import annotations

import io
import uuid
from typing import Any

import httpx
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from benchmarks.net import YunyingServer

STRIPES = 8
INTERCEPT = -1024.0
HEADER_WINDOW = (-700.0, 800.0)  # center, width: every stripe of every slice inside it
SPACING = 0.5  # mm per pixel
MARKER = 1500  # stored value of the optional top-left square: white under the header window


def stored_pixels(slice_index: int, size: int, marker: bool = False) -> np.ndarray:
    """A slice's stored samples (rows x columns); `marker`: a square in the top-left quarter's
    corner, so that a rotation or flip is seen in the pixels (the stripes alone are symmetric
    top to bottom)."""
    stripe = np.repeat(np.arange(STRIPES), size // STRIPES)
    pixels = np.tile(np.array([stored_value(int(k), slice_index) for k in stripe], dtype="<i2"), (size, 1))
    if marker:
        pixels[: size // 4, : size // 4] = MARKER
    return pixels


def stored_value(stripe: int, slice_index: int) -> int:
    """The raw stored sample of a stripe on a slice."""
    return stripe * 100 + slice_index * 10


def hu(stripe: int, slice_index: int) -> float:
    return stored_value(stripe, slice_index) + INTERCEPT


def grey(value: float, center: float, width: float) -> float:
    """PS3.3 C.11.2.1.2.1 linear VOI to 0..255."""
    g = (value - (center - 0.5)) / (width - 1) + 0.5
    return 255.0 * min(1.0, max(0.0, g))


def ct_slice(i: int, study: str, series: str, size: int = 256, patient: str = "Wang^Xiaodong=王^小东",
             patient_id: str = "", study_date: str = "20240115", z_step: float = 1.0,
             frame_of_reference: str = "", marker: bool = False) -> bytes:
    pixels = stored_pixels(i, size, marker)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = CTImageStorage
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.Modality = "CT"
    ds.PatientName = patient
    ds.PatientID = patient_id or "VIEWER-" + study[-6:]
    ds.PatientSex = "M"
    ds.StudyDate = study_date
    ds.StudyTime = "093000"
    ds.AccessionNumber = "ACC" + study[-6:]
    ds.StudyDescription = "CT CHEST"
    ds.SeriesDescription = "AXIAL"
    ds.InstitutionName = "Test Hospital"
    ds.SeriesNumber = 2
    ds.InstanceNumber = i + 1
    ds.ImagePositionPatient = [0.0, 0.0, -float(i) * z_step]
    if frame_of_reference:
        ds.FrameOfReferenceUID = frame_of_reference
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.SliceLocation = -float(i) * z_step
    ds.SliceThickness = 1.0
    ds.PixelSpacing = [SPACING, SPACING]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = size
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept, ds.RescaleSlope = INTERCEPT, 1.0
    ds.WindowCenter, ds.WindowWidth = HEADER_WINDOW
    ds.PixelData = pixels.tobytes()
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def stow(server: YunyingServer, parts: list[bytes]) -> None:
    boundary = uuid.uuid4().hex
    body = b"".join(b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + p + b"\r\n"
                    for p in parts) + b"--" + boundary.encode() + b"--\r\n"
    headers = {**server.headers, "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'}
    r = httpx.post(f"{server.dicomweb_url}/studies", content=body, headers=headers, timeout=120)
    assert r.status_code == 200, r.text


def store_ct(server: YunyingServer, slices: int = 5, size: int = 256, **kw: Any) -> tuple[str, str]:  # kw: ct_slice's
    """Store a striped CT series; returns (study UID, series UID)."""
    study, series = generate_uid(), generate_uid()
    stow(server, [ct_slice(i, study, series, size, **kw) for i in range(slices)])
    return study, series
