"""Helpers for the pixel tests: pydicom's own test files, skipped by name when not on disk."""
from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.encaps import generate_frames

from yunying.pixels import FrameInfo

warnings.filterwarnings("ignore", category=UserWarning, module="pydicom")


def dicom_file(name: str) -> pydicom.Dataset:
    """A pydicom test file read from disk, or a skip naming it when only a download would have it."""
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name}: not available offline (pydicom downloads it from pydicom-data)")
    return pydicom.dcmread(path)


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
