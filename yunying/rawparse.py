"""One pass over a received instance's bytes: its DICOM JSON, UIDs, image module and the header cut.

The common instance (Part 10 with a complete file meta that agrees with the data set, explicit
VR little endian or an encapsulated syntax, a single-byte or stand-alone character set) is read
here element by element, straight from the bytes to the DICOM JSON: pydicom's reading and its
per-element conversions (RawDataElement -> DataElement -> value -> JSON) cost ~0.9 ms of a 512x512
CT slice's ~3 ms and most of a small instance's (issue 9, benchmarks/write_cpu.py).

Every conversion mirrors pydicom 3's (pydicom.values converters, DataElement._convert, and
yunying.dicomjson's JSON of them). Anything it does not reproduce exactly raises Unusual and the
caller takes the pydicom path (yunying.ingest): other transfer syntaxes, UN or undefined VRs,
ISO 2022 escapes, item-level character sets, unordered tags, numbers pydicom would have to guess,
malformed sequences, values it cannot decode. tests/yunying/test_rawparse.py compares both paths.
"""
from __future__ import annotations

import base64
import functools
import math
import re
import struct
from typing import Any

import pydicom.uid
from pydicom.dataelem import _LUT_DESCRIPTOR_TAGS
from pydicom.uid import UID

from yunying.dicomjson import _INLINE_MAX, BULK_PREFIX, PIXEL_DATA, pn_groups

ITEM, ITEM_END, SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
UNDEFINED = 0xFFFFFFFF
CHARSET = 0x00080005
MAX_DEPTH = 32
LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
SHORT_VRS = frozenset({"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT",
                       "PN", "SH", "SL", "SS", "ST", "TM", "UI", "UL", "US"})
_VR_FORMS = {**{v.encode(): (v, False) for v in SHORT_VRS}, **{v.encode(): (v, True) for v in LONG_VRS if v != "UN"}}
_DEFAULT_TEXT = frozenset({"AS", "CS", "DA", "DT", "TM"})  # pydicom's convert_string, latin-1
_MULTI_TEXT = frozenset({"LO", "SH", "UC"})  # convert_text: the character set, split on backslash
_SINGLE_TEXT = frozenset({"LT", "ST", "UT"})  # convert_single_string
_BINARY = frozenset({"OB", "OD", "OF", "OL", "OV", "OW"})
_NUMBERS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d", "UV": "Q", "SV": "q"}
# pydicom's Python codec for a single-valued Specific Character Set without code extensions
# (pydicom.charset.python_encoding; decode_bytes decodes such values in one call)
ENCODINGS = {"": "iso8859", "ISO_IR 6": "iso8859", "ISO_IR 100": "latin_1", "ISO_IR 192": "UTF8",
             "GB18030": "GB18030", "GBK": "GBK"}
_IS_RE = re.compile(r" *[+-]?[0-9]+ *")
_DS_RE = re.compile(r" *[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)? *")
_META_REQUIRED = (0x0001, 0x0002, 0x0003, 0x0010, 0x0012)
_SYNTAXES_NOT_HERE = {pydicom.uid.ImplicitVRLittleEndian, pydicom.uid.ExplicitVRBigEndian,
                      pydicom.uid.DeflatedExplicitVRLittleEndian, "1.2.840.10008.1.2.1.99"}
# the Image Pixel module attributes the ingest reads (FrameInfo, native_layout), with their VRs
IMAGE = {0x00280002: ("SamplesPerPixel", "US"), 0x00280004: ("PhotometricInterpretation", "CS"),
         0x00280006: ("PlanarConfiguration", "US"), 0x00280008: ("NumberOfFrames", "IS"),
         0x00280010: ("Rows", "US"), 0x00280011: ("Columns", "US"), 0x00280100: ("BitsAllocated", "US"),
         0x00280101: ("BitsStored", "US"), 0x00280102: ("HighBit", "US"),
         0x00280103: ("PixelRepresentation", "US")}
UIDS = {"SOPClassUID": "00080016", "SOPInstanceUID": "00080018", "StudyInstanceUID": "0020000D",
        "SeriesInstanceUID": "0020000E"}


class Unusual(Exception):
    """Something this reader does not reproduce exactly: the caller reads it with pydicom."""


class Attrs:
    """The few attributes the ingest reads from a header, as pydicom's Dataset.get gives them."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def get(self, name: str, default: Any = None) -> Any:
        return self._values.get(name, default)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None


class Reading:
    """The result of one pass: where things are, and the JSON."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.transfer_syntax = ""
        self.meta_end = 0  # the data set starts here
        self.meta_sop_class = self.meta_sop = ""
        self.json: dict[str, Any] = {}
        self.pixel: tuple[str, int, int, int] | None = None  # VR, value start, value length, value end
        self.encapsulated = False


def read(data: bytes, base: str) -> Reading:
    """The Reading of a Part 10 instance; `base` is the BulkDataURI placeholder base (without
    the study/series/instance part, which is only known after reading: `rebase` adds it)."""
    r = Reading(data)
    _meta(r)
    end, r.json = _elements(r, r.meta_end, len(data), False, "iso8859", base, "", 0)
    if end != len(data):
        raise Unusual("bytes after the data set")
    return r


def _meta(r: Reading) -> None:
    data = r.data
    if len(data) < 144 or data[128:132] != b"DICM" or data[132:140] != b"\x02\x00\x00\x00UL\x04\x00":
        raise Unusual("no standard file meta")
    end = 144 + struct.unpack_from("<I", data, 140)[0]
    pos, meta = 144, {}
    while pos < end:
        group, elem = struct.unpack_from("<HH", data, pos)
        vr = data[pos + 4:pos + 6].decode("latin-1")
        if group != 2 or vr not in LONG_VRS and vr not in SHORT_VRS:
            raise Unusual("file meta element")
        if vr in LONG_VRS:
            length, pos = struct.unpack_from("<I", data, pos + 8)[0], pos + 12
        else:
            length, pos = struct.unpack_from("<H", data, pos + 6)[0], pos + 8
        meta[elem] = data[pos:pos + length]
        pos += length
    if pos != end or end + 8 > len(data) or data[end:end + 2] == b"\x02\x00":
        raise Unusual("file meta group length")
    if any(k not in meta for k in _META_REQUIRED):
        raise Unusual("file meta incomplete")
    ts = _ui(meta[0x0010])
    if not _read_here(ts):
        raise Unusual("transfer syntax")
    r.transfer_syntax, r.meta_end = ts, end
    r.meta_sop_class, r.meta_sop = _ui(meta[0x0002]), _ui(meta[0x0003])


def _ui(raw: bytes) -> str:
    """A single UI value as pydicom reads it (convert_UI, then UID() strips)."""
    text = raw.decode("latin-1").rstrip("\0 ")
    if "\\" in text:
        raise Unusual("several UIDs")
    return text.strip()


@functools.lru_cache(maxsize=256)
def _read_here(ts: str) -> bool:
    """Whether data sets of this transfer syntax are explicit VR little endian, as read here."""
    uid = UID(ts)
    return ts not in _SYNTAXES_NOT_HERE and uid.is_transfer_syntax and (
        ts == pydicom.uid.ExplicitVRLittleEndian or uid.is_encapsulated)


def _elements(r: Reading, pos: int, end: int, in_item: bool, enc: str, base: str, path: str,
              depth: int) -> tuple[int, dict[str, Any]]:
    """The JSON of a data set's elements from `pos` up to `end` (or its item delimiter)."""
    data = r.data
    out: dict[str, Any] = {}
    last = -1
    unpack = struct.unpack_from
    while pos < end:
        if pos + 8 > end:
            raise Unusual("element header cut")
        group, elem = unpack("<HH", data, pos)
        tag = group << 16 | elem
        if group == 0xFFFE:
            if in_item and tag == ITEM_END and unpack("<I", data, pos + 4)[0] == 0:
                return pos + 8, out
            raise Unusual("delimiter out of place")
        if tag <= last or group == 0x0002:
            raise Unusual("tags out of order")
        last = tag
        form = _VR_FORMS.get(data[pos + 4:pos + 6])
        if form is None:
            raise Unusual("VR")
        vr = form[0]
        if form[1]:
            length, start = unpack("<I", data, pos + 8)[0], pos + 12
        else:
            length, start = unpack("<H", data, pos + 6)[0], pos + 8
        key = f"{tag:08X}"
        if length == UNDEFINED:
            if vr == "SQ":
                pos, items = _sequence(r, start, end, None, enc, base, path + key, depth)
                out[key] = {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
                continue
            if tag != PIXEL_DATA or depth or vr not in ("OB", "OW"):
                raise Unusual("undefined length")
            delim = _fragments_end(data, start, end)
            r.pixel, r.encapsulated = (vr, start, delim - start, delim + 8), True
            pos = delim + 8
            continue
        pos = start + length
        if pos > end:
            raise Unusual("value beyond its data set")
        if vr == "SQ":
            _, items = _sequence(r, start, pos, pos, enc, base, path + key, depth)
            out[key] = {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
        elif tag == PIXEL_DATA:
            if depth == 0:
                if vr not in ("OB", "OW"):
                    raise Unusual("PixelData VR")
                r.pixel = (vr, start, length, pos)
        else:
            if tag == CHARSET:
                if depth:
                    raise Unusual("character set in an item")
                enc = _encoding(data[start:pos])
            if tag in _LUT_DESCRIPTOR_TAGS and vr != "US":
                raise Unusual("LUT descriptor")  # pydicom adds 65536 to a negative first value
            out[key] = _value(vr, data, start, length, enc, base, path + key)
    if in_item:
        raise Unusual("item without its delimiter")
    return pos, out


def _sequence(r: Reading, pos: int, end: int, defined_end: int | None, enc: str, base: str,
              here: str, depth: int) -> tuple[int, list[dict[str, Any]]]:
    """Items of a sequence (PS3.5 7.5): up to defined_end, or up to its delimiter."""
    if depth >= MAX_DEPTH:
        raise Unusual("nesting")
    data, items = r.data, list[dict[str, Any]]()
    while True:
        if defined_end is not None and pos == defined_end:
            return pos, items
        if pos + 8 > end:
            raise Unusual("sequence cut")
        tag = struct.unpack_from("<I", data, pos)[0]
        tag = (tag & 0xFFFF) << 16 | tag >> 16
        length = struct.unpack_from("<I", data, pos + 4)[0]
        if tag == SEQ_END and defined_end is None and length == 0:
            return pos + 8, items
        if tag != ITEM:
            raise Unusual("not an item")
        path = f"{here}.{len(items)}."
        if length == UNDEFINED:
            pos, item = _elements(r, pos + 8, end, True, enc, base, path, depth + 1)
        else:
            item_end = pos + 8 + length
            if item_end > end:
                raise Unusual("item beyond its sequence")
            pos, item = _elements(r, pos + 8, item_end, False, enc, base, path, depth + 1)
        items.append(item)


def _fragments_end(data: bytes, pos: int, end: int) -> int:
    """Where the sequence delimiter of encapsulated pixel data starts (items walked, PS3.5 A.4)."""
    while pos + 8 <= end:
        group, elem, length = struct.unpack_from("<HHI", data, pos)
        if (group, elem) == (0xFFFE, 0xE0DD) and length == 0:
            return pos
        if (group, elem) != (0xFFFE, 0xE000) or length == UNDEFINED:
            raise Unusual("encapsulated item")
        pos += 8 + length
    raise Unusual("encapsulated value without its delimiter")


def _encoding(raw: bytes) -> str:
    name = raw.decode("latin-1").rstrip(" \x00")
    if "\\" in name or name not in ENCODINGS:
        raise Unusual("character set")
    return ENCODINGS[name]


def _text(raw: bytes, enc: str) -> str:
    if b"\x1b" in raw:
        raise Unusual("code extensions")
    return raw.decode(enc)  # UnicodeError: pydicom would replace characters, with a warning


def _value(vr: str, data: bytes, start: int, length: int, enc: str, base: str, here: str) -> dict[str, Any]:
    """One element's JSON, as yunying.dicomjson.element_json gives it for pydicom's value
    (`base` + `here`: its BulkDataURI placeholder, should it be bulk data)."""
    if length == 0:
        return {"vr": vr}
    if vr in _BINARY:
        if length > _INLINE_MAX:
            return {"vr": vr, "BulkDataURI": f"{BULK_PREFIX}{base}{here}"}
        return {"vr": vr, "InlineBinary": base64.b64encode(data[start:start + length]).decode()}
    raw = data[start:start + length]
    values: list[Any]
    if vr in _NUMBERS:
        fmt = _NUMBERS[vr]
        size = struct.calcsize("<" + fmt)
        if length % size:
            raise Unusual("number length")
        return {"vr": vr, "Value": list(struct.unpack(f"<{length // size}{fmt}", raw))}
    if vr == "AT":
        if length % 4:
            raise Unusual("AT length")
        pairs = struct.unpack(f"<{length // 2}H", raw)
        return {"vr": vr, "Value": [format(pairs[i] << 16 | pairs[i + 1], "08X") for i in range(0, len(pairs), 2)]}
    if vr == "PN":
        values = _text(raw.rstrip(b"\x00 "), enc).split("\\")
        names = [_person_name(v) for v in values]
        if len(names) == 1:
            return {"vr": vr, "Value": names} if names[0] is not None else {"vr": vr}
        return {"vr": vr, "Value": names}
    if vr == "UI":  # pydicom's UID() strips each value
        values = [v.strip() for v in raw.decode("latin-1").rstrip("\0 ").split("\\")]
    elif vr in _DEFAULT_TEXT:
        values = raw.decode("latin-1").rstrip(" \x00").split("\\")
    elif vr in _MULTI_TEXT:
        values = [v.rstrip("\0 ") for v in _text(raw, enc).split("\\")]
    elif vr in _SINGLE_TEXT:
        values = [_text(raw, enc).rstrip("\0 ")]
    elif vr == "AE":
        values = [v.strip() for v in raw.decode("latin-1").split("\\")]
    elif vr == "UR":
        values = [raw.decode("latin-1").rstrip()]
    elif vr == "IS":
        values = raw.decode("latin-1").rstrip(" \x00").split("\\")
        if values == [""]:
            return {"vr": vr}
        if not all(_IS_RE.fullmatch(v) for v in values):
            raise Unusual("IS")
        return {"vr": vr, "Value": [int(v) for v in values]}
    elif vr == "DS":
        values = raw.decode("latin-1").strip().rstrip(" \x00").split("\\")
        if values == [""]:
            return {"vr": vr}
        if not all(_DS_RE.fullmatch(v) for v in values):
            raise Unusual("DS")
        floats = [float(v) for v in values]
        if not all(map(math.isfinite, floats)):
            raise Unusual("DS out of range")
        return {"vr": vr, "Value": floats}
    else:
        raise Unusual("VR")
    if len(values) == 1:
        return {"vr": vr, "Value": values} if values[0] else {"vr": vr}
    return {"vr": vr, "Value": [None if v == "" else v for v in values]}


def _person_name(value: str) -> dict[str, str] | None:
    """pydicom's PersonName components (trailing empty groups dropped) as DICOM JSON; None if empty."""
    comps = value.split("=")
    while comps and not comps[-1]:
        comps.pop()
    return pn_groups(comps) if comps else None


def single(js: dict[str, Any], key: str) -> Any:
    """The one value of an element, or Unusual (absent, empty or several)."""
    value = js.get(key, {}).get("Value")
    if not value or len(value) != 1 or value[0] is None:
        raise Unusual(f"{key} not single-valued")
    return value[0]


def image_attrs(js: dict[str, Any]) -> Attrs:
    """The Image Pixel attributes present, each single-valued with its dictionary VR (else Unusual)."""
    values: dict[str, Any] = {}
    for tag, (name, vr) in IMAGE.items():
        key = f"{tag:08X}"
        if key in js:
            if js[key]["vr"] != vr:
                raise Unusual(f"{name} VR")
            values[name] = single(js, key)
    return Attrs(values)


def rebase(js: dict[str, Any], old: str, new: str) -> None:
    """Replace the placeholder base of every BulkDataURI (they are rare: most headers have none)."""
    for el in js.values():
        if "BulkDataURI" in el:
            el["BulkDataURI"] = el["BulkDataURI"].replace(old, new, 1)
        elif el.get("vr") == "SQ":
            for item in el.get("Value", ()):
                rebase(item, old, new)

