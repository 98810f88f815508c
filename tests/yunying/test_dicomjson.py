"""The ingest-time DICOM JSON equals pydicom's reference conversion (PS3.18 Annex F)."""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom import Dataset

from tests.yunying.pydicom_files import FILES
from yunying.dicomjson import BULK_PREFIX, BULK_THRESHOLD, PIXEL_DATA, dataset_json

_SKIPPED = (ValueError, TypeError, OverflowError, struct.error, UnicodeError, LookupError)


def reference_json(ds: Dataset, base: str, path: str = "") -> dict[str, Any]:
    """pydicom's to_json_dict per element, with the same placeholders and the same omissions."""
    out: dict[str, Any] = {}
    for elem in ds:
        tag = f"{elem.tag:08X}"
        if elem.tag.group == 0x0002 or elem.tag == PIXEL_DATA:
            continue
        here = f"{path}{tag}"
        try:
            if elem.VR == "SQ":
                items = [reference_json(item, base, f"{here}.{i}.") for i, item in enumerate(elem.value)]
                out[tag] = {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
            else:
                uri = f"{BULK_PREFIX}{base}{here}"
                def bulk(_elem: Any, u: str = uri) -> str:
                    return u

                out[tag] = elem.to_json_dict(bulk_data_element_handler=bulk, bulk_data_threshold=BULK_THRESHOLD)
                values = out[tag].get("Value")
                if isinstance(values, list) and len(values) > 1:  # PS3.18 F.2.5, where pydicom writes ""
                    out[tag]["Value"] = [None if v in ("", {"Alphabetic": ""}) else v for v in values]
        except (*_SKIPPED, AttributeError):
            continue
    return out


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_equal_to_pydicom(path: Path) -> None:
    ds = pydicom.dcmread(path, force=True)
    assert dataset_json(ds, "b/") == reference_json(ds, "b/")


def test_the_comparison_covers_most_shipped_files() -> None:
    assert len(FILES) >= 70


def test_values_by_vr() -> None:
    ds = Dataset()
    ds.PatientName = "Wang^Wei=王^伟"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.Rows = 512
    ds.PixelSpacing = ["0.5", "0.703125"]
    ds.InstanceNumber = "7"
    ds.FrameIncrementPointer = 0x00181063
    ds.add_new(0x00091010, "OB", b"\x01\x02")  # private, short: inline
    ds.add_new(0x00091011, "OB", b"\0" * 2000)  # long: a bulk data placeholder
    ds.add_new(0x00091012, "LO", None)  # empty: vr only
    js = dataset_json(ds, "b/")
    assert js["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "Wang^Wei", "Ideographic": "王^伟"}]}
    assert js["00080008"] == {"vr": "CS", "Value": ["ORIGINAL", "PRIMARY"]}
    assert js["00280010"] == {"vr": "US", "Value": [512]}
    assert js["00280030"] == {"vr": "DS", "Value": [0.5, 0.703125]}
    assert js["00200013"] == {"vr": "IS", "Value": [7]}
    assert js["00280009"] == {"vr": "AT", "Value": ["00181063"]}
    assert js["00091010"] == {"vr": "OB", "InlineBinary": "AQI="}
    assert js["00091011"] == {"vr": "OB", "BulkDataURI": "yy-bulk:b/00091011"}
    assert js["00091012"] == {"vr": "LO"}
