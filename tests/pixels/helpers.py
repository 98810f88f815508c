"""Helpers for the pixel tests: pydicom's own test files (missing_tool names one not on disk)."""
from __future__ import annotations

import shutil
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
from pydicom.encaps import generate_frames

from tests.conftest import missing_tool, pydicom_path
from yunying.pixels import FrameInfo

warnings.filterwarnings("ignore", category=UserWarning, module="pydicom")


def dicom_file(name: str) -> pydicom.Dataset:
    """A pydicom test file read from disk as the archive reads it."""
    path = dicom_path(name)
    # read as the archive reads (yunying.ingest): a pre-Part-10 file such as OT-PAL-8-face.dcm has
    # no preamble and no file meta; its transfer syntax is the encoding pydicom found
    ds = pydicom.dcmread(path, force=True)
    if "TransferSyntaxUID" not in ds.file_meta:
        implicit, little = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = (pydicom.uid.ImplicitVRLittleEndian if implicit else
                                          pydicom.uid.ExplicitVRLittleEndian if little else
                                          pydicom.uid.ExplicitVRBigEndian)
    return ds


def dicom_path(name: str) -> str:
    """Where a pydicom test file is: pydicom's data, pydicom-data, or the copies next to us."""
    copied = Path(__file__).parent / "pydicom-data" / name  # pydicom-data/README.md
    return str(copied) if copied.exists() else pydicom_path(name)


def raw_frames(ds: pydicom.Dataset) -> Iterator[bytes]:
    """Each frame's stored bytes: the bitstream, or the native slice."""
    info = FrameInfo.from_dataset(ds)
    if ds.file_meta.TransferSyntaxUID.is_encapsulated:
        yield from generate_frames(ds.PixelData, number_of_frames=info.number_of_frames)
        return
    size = info.frame_bytes
    for i in range(info.number_of_frames):
        yield ds.PixelData[i * size:(i + 1) * size]


def reference_frames(ds: pydicom.Dataset, raw: bool) -> np.ndarray:
    """pydicom's own decode of every frame, shaped (frames, rows, cols[, samples])."""
    arr = pydicom.pixels.pixel_array(ds, raw=raw)
    if int(ds.get("NumberOfFrames", 1) or 1) == 1:
        arr = arr[None]
    return arr


def dcmtk_frames(name: str, tmp_path: Path) -> np.ndarray:
    """DCMTK's decode of a compressed test file (dcmdjpeg), for files pydicom cannot decode."""
    if shutil.which("dcmdjpeg") is None:
        missing_tool("DCMTK dcmdjpeg is not installed")
    out = tmp_path / "dcmdjpeg.dcm"
    subprocess.run(["dcmdjpeg", str(dicom_path(name)), str(out)], check=True, capture_output=True, timeout=60)
    return reference_frames(pydicom.dcmread(out), raw=True)
