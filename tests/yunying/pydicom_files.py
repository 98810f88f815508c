"""pydicom's shipped test files that pydicom itself can read: the corpus both ingest-time
conversions (DICOM JSON, the one-pass parse) are compared against pydicom on."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.data import get_testdata_files


def _readable(path: Path) -> bool:
    """pydicom (the reference) reads it; the few it cannot have no reference to compare with."""
    try:
        list(pydicom.dcmread(path, force=True).keys())
    except Exception:  # noqa: BLE001 - pydicom's deliberately broken files
        return False
    return True


FILES = [p for p in sorted(Path(p) for p in get_testdata_files("*.dcm")) if _readable(p)]
