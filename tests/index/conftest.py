"""Fixtures for the index tests: a fresh Index and builders of InstanceRecords."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest

from index import Index, InstanceRecord, Origin
from tests.conftest import pydicom_path

CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
CHARSETS = Path(pydicom.__file__).parent / "data" / "charset_files"


def el(vr: str, *vals: Any) -> dict[str, Any]:
    """A DICOM JSON element."""
    return {"vr": vr, "Value": list(vals)} if vals else {"vr": vr}


def make(study: str = "1.2.3", series: str = "1.2.3.1", sop: str = "1.2.3.1.1", *,
         pid: str = "P1", name: str | dict | None = "Doe^John", issuer: str | None = None,
         institution: str = "H1", source: str = "AE1", modality: str = "CT",
         study_date: str | None = "20240101", study_time: str | None = "101010",
         series_number: int | None = 1, instance_number: int | None = 1, sop_class: str = CT,
         json: dict[str, Any] | None = None, storage_key: str | None = None) -> InstanceRecord:
    """A synthetic record; json entries override or add elements."""
    js: dict[str, Any] = {
        "00080005": el("CS", "ISO_IR 192"),
        "00080016": el("UI", sop_class), "00080018": el("UI", sop),
        "0020000D": el("UI", study), "0020000E": el("UI", series),
        "00080060": el("CS", modality), "00100020": el("LO", pid),
        "00280010": el("US", 4), "00280011": el("US", 4), "00280100": el("US", 16),
        "7FE00010": {"vr": "OW", "BulkDataURI": f"yy-bulk:studies/{study}/bulkdata/7FE00010"},
    }
    if name is not None:
        js["00100010"] = el("PN", name if isinstance(name, dict) else {"Alphabetic": name})
    if issuer is not None:
        js["00100021"] = el("LO", issuer)
    if study_date is not None:
        js["00080020"] = el("DA", study_date)
    if study_time is not None:
        js["00080030"] = el("TM", study_time)
    if series_number is not None:
        js["00200011"] = el("IS", series_number)
    if instance_number is not None:
        js["00200013"] = el("IS", instance_number)
    js.update(json or {})
    return InstanceRecord(js, "1.2.840.10008.1.2.1", "native", 1, 100, f"d-{sop}",
                          storage_key or f"k/{sop}", Origin("stow", source, institution),
                          extra={"layout": [1, 2]})


def from_file(path: str | Path, institution: str = "H1") -> InstanceRecord:
    """A record from a real Part 10 file (bulk data above 1 KiB as BulkDataURI)."""
    ds = pydicom.dcmread(path)
    js = ds.to_json_dict(1024, lambda elem: f"yy-bulk:bulk/{elem.tag:08X}")
    return InstanceRecord(js, str(ds.file_meta.TransferSyntaxUID), "native", 1, 1, "d",
                          f"k/{ds.SOPInstanceUID}", Origin("dimse", "MODALITY", institution))


def record_of(name: str) -> InstanceRecord:
    """A record of one of pydicom's test files (charset files included)."""
    return from_file(CHARSETS / name if (CHARSETS / name).exists() else pydicom_path(name))


@pytest.fixture
def ix(tmp_path: Path) -> Iterator[Index]:
    """A fresh index in a temporary directory."""
    index = Index(tmp_path / "index.duckdb")
    yield index
    index.close()
