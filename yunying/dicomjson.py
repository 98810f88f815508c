"""The DICOM JSON Model (PS3.18 Annex F) of a received header, made once at ingest.

pydicom's `DataElement.to_json_dict` gives the reference answer, but it rebuilds a set of VRs
and logs for every element: at ingest it was 40 % of the GIL-held time of a STOW (py-spy).
This is the same conversion over pydicom's decoded values with the sets built once;
tests/yunying/test_dicomjson.py proves it equal to pydicom's for every file pydicom ships.
"""
from __future__ import annotations

import base64
import struct
from collections.abc import Sequence
from typing import Any

from pydicom import Dataset
from pydicom.dataelem import DataElement, empty_value_for_VR
from pydicom.errors import BytesLengthException
from pydicom.multival import MultiValue
from pydicom.valuerep import AMBIGUOUS_VR, BYTES_VR, FLOAT_VR, INT_VR, PersonName

BULK_PREFIX = "yy-bulk:"
BULK_THRESHOLD = 1024  # bytes of base64: longer binary values become BulkDataURIs
PIXEL_DATA = 0x7FE00010

_BINARY = frozenset(str(v) for v in (BYTES_VR | AMBIGUOUS_VR)) - {"US or SS"}
_INTS = frozenset(str(v) for v in INT_VR if v != "AT") | {"US or SS"}
_FLOATS = frozenset(str(v) for v in FLOAT_VR)
_INLINE_MAX = (BULK_THRESHOLD // 4) * 3  # base64 makes a value 4/3 longer
# BytesLengthException: a value whose length is no multiple of its VR's size (a cut-off file)
_SKIPPED = (ValueError, TypeError, OverflowError, struct.error, UnicodeError, LookupError,
            BytesLengthException)


def dataset_json(ds: Dataset, base: str, path: str = "") -> dict[str, Any]:
    """The JSON of a data set without group 0002 and PixelData; bulk values as placeholders.

    `base` + the element's tag path is the BulkDataURI placeholder (prefixed `yy-bulk:`); an
    element whose value cannot be decoded is left out of the JSON (it stays in the stored bytes).
    """
    out: dict[str, Any] = {}
    for raw_tag in sorted(ds.keys()):  # not `for elem in ds`: converting a raw element may fail
        tag_int = int(raw_tag)
        if tag_int >> 16 == 0x0002 or tag_int == PIXEL_DATA:
            continue
        tag = f"{tag_int:08X}"
        here = f"{path}{tag}"
        try:
            elem = ds[raw_tag]
            if elem.VR == "SQ":
                items = [dataset_json(item, base, f"{here}.{i}.") for i, item in enumerate(elem.value)]
                out[tag] = {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
            else:
                out[tag] = element_json(elem, f"{BULK_PREFIX}{base}{here}")
        except _SKIPPED:
            continue
    return out


def element_json(elem: DataElement, bulk_uri: str) -> dict[str, Any]:
    """One non-sequence element as pydicom's to_json_dict gives it, with `bulk_uri` for bulk data."""
    vr = str(elem.VR)
    value = elem.value
    out: dict[str, Any] = {"vr": vr}
    if _empty(value):
        return out
    if vr in _BINARY:
        if not isinstance(value, (bytes, bytearray)):
            raise TypeError("binary value is not bytes")
        if len(value) > _INLINE_MAX:
            out["BulkDataURI"] = bulk_uri
        else:
            out["InlineBinary"] = base64.b64encode(value).decode("utf-8")
        return out
    values = list(value) if isinstance(value, (MultiValue, list, tuple)) else [value]
    if vr == "PN":
        out["Value"] = [None if len(values) > 1 and not str(v) else _person_name(v) for v in values]
    elif vr == "AT":
        out["Value"] = [format(v, "08X") for v in values]
    elif vr in _INTS:
        out["Value"] = [int(v) if v is not None else empty_value_for_VR(vr) for v in values]
    elif vr in _FLOATS:
        out["Value"] = [float(v) if v is not None else empty_value_for_VR(vr) for v in values]
    else:  # PS3.18 F.2.5: an empty value among several is null
        out["Value"] = [None if v == "" else v for v in values] if len(values) > 1 else values
    return out


def _empty(value: Any) -> bool:
    """pydicom's `DataElement.is_empty` (VM 0) for a non-sequence value."""
    if value is None:
        return True
    if isinstance(value, (str, bytes, bytearray, PersonName)):
        return not value
    try:
        return len(value) == 0
    except TypeError:
        return False


def _person_name(v: Any) -> dict[str, str]:
    return pn_groups(v.components)


def pn_groups(comps: Sequence[str]) -> dict[str, str]:
    """A PersonName's component groups (at least one) as a DICOM JSON PN value (PS3.18 F.2.2)."""
    out = {"Alphabetic": comps[0]}
    if len(comps) > 1:
        out["Ideographic"] = comps[1]
    if len(comps) > 2:
        out["Phonetic"] = comps[2]
    return out
