"""C-FIND / C-MOVE / C-GET identifiers (PS3.4 C.4) turned into typed queries; no SQL here.

Matching itself is index/parse's, shared with QIDO-RS; DIMSE lists use backslash.
"""
from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pydicom import Dataset
from pydicom.charset import convert_encodings
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag

from index.errors import InvalidQueryValue
from index.parse import parse_match, supported_match_tags
from index.query import Level, Match, Query
from yunying import lenient  # noqa: F401 - query values in ISO 2022 IR 58 decode right (issue 10)

PATIENT_ROOT, STUDY_ROOT = "patient", "study"
LEVELS: dict[str, tuple[Level, ...]] = {
    PATIENT_ROOT: ("PATIENT", "STUDY", "SERIES", "IMAGE"),
    STUDY_ROOT: ("STUDY", "SERIES", "IMAGE"),
}
UNIQUE_KEY = {"PATIENT": "00100020", "STUDY": "0020000D", "SERIES": "0020000E", "IMAGE": "00080018"}
KEYWORD = {"00100020": "PatientID", "0020000D": "StudyInstanceUID",
           "0020000E": "SeriesInstanceUID", "00080018": "SOPInstanceUID"}
QUERY_RETRIEVE_LEVEL = 0x00080052
# Keys the SCP fills in itself rather than matching (PS3.4 C.4.1.2.3, C.6.1.1.x)
OWN_KEYS = {0x00080005, QUERY_RETRIEVE_LEVEL, 0x00080054, 0x00080056}
ISSUER_OF_PATIENT_ID = "00100021"

# PS3.4 C.4.1.1.4 / C.4.2.1.5: Identifier Does Not Match SOP Class
IDENTIFIER_MISMATCH = 0xA900


class InvalidIdentifier(Exception):
    """An identifier we refuse, with the status and the ErrorComment to send."""

    def __init__(self, reason: str, status: int = IDENTIFIER_MISMATCH) -> None:
        super().__init__(reason)
        self.reason, self.status = reason, status


def root_of(sop_class: str) -> str:
    """'patient' or 'study' for a Q/R information model SOP class UID (PS3.4 C.6)."""
    return PATIENT_ROOT if str(sop_class).startswith("1.2.840.10008.5.1.4.1.2.1.") else STUDY_ROOT


def level_of(identifier: Dataset, root: str) -> Level:
    """The QueryRetrieveLevel, checked against the information model."""
    raw = str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()
    if raw not in LEVELS[root]:
        raise InvalidIdentifier(f"QueryRetrieveLevel {raw or '(missing)'!s:.16} not valid in {root} root")
    return raw  # type: ignore[return-value]


def raw_value(elem: DataElement) -> str:
    """The element's value as the string a query parser takes; multiple values joined by backslash."""
    value = elem.value
    if value is None or value == "" or elem.VR == "SQ":
        return ""
    if isinstance(value, (MultiValue, list, tuple)):
        return "\\".join("" if v is None else str(v) for v in value)
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    return str(value).strip()


def tag_hex(elem: DataElement) -> str:
    return f"{int(elem.tag):08X}"


def _higher_levels(level: Level, root: str) -> tuple[Level, ...]:
    levels = LEVELS[root]
    return levels[: levels.index(level)]


def _single_uid(identifier: Dataset, tag: str, why: str) -> str:
    elem = identifier.get(int(tag, 16))
    raw = raw_value(elem) if elem is not None else ""
    if not raw or "\\" in raw or "*" in raw or "?" in raw:
        raise InvalidIdentifier(f"{KEYWORD[tag]} must be one value {why}")
    return raw


def _patient_left_out(identifier: Dataset, tag: str) -> bool:
    """PatientID absent or empty above a Patient Root query: universal matching, as Orthanc and
    dcm4chee answer the many workstations that send it so (issue 10 part 10)."""
    elem = identifier.get(int(tag, 16))
    return tag == UNIQUE_KEY["PATIENT"] and (elem is None or not raw_value(elem))


def compile_find(identifier: Dataset, root: str) -> Query:
    """A C-FIND identifier as a Query: matching keys plus return keys (PS3.4 C.4.1.2)."""
    level = level_of(identifier, root)
    supported = set(supported_match_tags(level))
    # Hierarchical model: unique keys of every higher level carry one value (PS3.4 C.4.1.3.1).
    required = {UNIQUE_KEY[lvl] for lvl in _higher_levels(level, root)}
    for tag in sorted(required):
        if not _patient_left_out(identifier, tag):
            _single_uid(identifier, tag, f"for a {level} query ({root} root, hierarchical)")
    matches: list[Match] = []
    includefields: set[str] = set()
    for elem in identifier:
        if int(elem.tag) in OWN_KEYS or elem.tag.group in (0x0000, 0x0002):
            continue
        tag = tag_hex(elem)
        includefields.add(tag)
        raw = raw_value(elem)
        if not raw or (tag not in supported and tag not in required
                       and tag != ISSUER_OF_PATIENT_ID):
            continue  # a return key, or an optional key we do not match on (returned unmatched)
        try:
            match = parse_match(tag, raw, list_sep="\\")
        except InvalidQueryValue as exc:
            raise InvalidIdentifier(f"{elem.keyword or tag}: {exc.reason}") from None
        if match.kind != "universal":
            matches.append(match)
    return Query(level=level, matches=matches, includefields=includefields,
                 patient_root=root == PATIENT_ROOT)


@dataclass(frozen=True)
class RetrieveTarget:
    """What a C-MOVE / C-GET identifier names (PS3.4 C.4.2.2.1): the level and the UIDs at each level."""

    level: Level
    patients: tuple[str, ...] = ()
    issuer: str = ""
    studies: tuple[str, ...] = ()
    series: tuple[str, ...] = ()
    sops: tuple[str, ...] = ()


def _uid_list(identifier: Dataset, tag: str, level: Level) -> tuple[str, ...]:
    elem = identifier.get(int(tag, 16))
    raw = raw_value(elem) if elem is not None else ""
    values = tuple(v.strip() for v in raw.split("\\") if v.strip())
    if not values or any("*" in v or "?" in v for v in values):
        raise InvalidIdentifier(f"{KEYWORD[tag]} required for a {level} retrieve (one or a list)")
    return values


def compile_retrieve(identifier: Dataset, root: str) -> RetrieveTarget:
    """The unique keys of a C-MOVE / C-GET identifier; higher levels single-valued."""
    level = level_of(identifier, root)
    above = {lvl: _single_uid(identifier, UNIQUE_KEY[lvl], f"for a {level} retrieve")
             for lvl in _higher_levels(level, root) if not _patient_left_out(identifier, UNIQUE_KEY[lvl])}
    here = _uid_list(identifier, UNIQUE_KEY[level], level)
    issuer = raw_value(identifier[ISSUER_OF_PATIENT_ID]) if int(ISSUER_OF_PATIENT_ID, 16) in identifier else ""
    pick = lambda lvl: here if lvl == level else ((above[lvl],) if lvl in above else ())
    return RetrieveTarget(level=level, patients=pick("PATIENT"), issuer=issuer,
                          studies=pick("STUDY"), series=pick("SERIES"), sops=pick("IMAGE"))


def _element(tag: int, item: dict) -> DataElement:
    """One DICOM JSON attribute as a DataElement (PS3.18 F.2); no bulk data in C-FIND."""
    vr = item.get("vr", "UN")
    for key in ("Value", "BulkDataURI", "InlineBinary"):
        if key in item:
            return DataElement.from_json(Dataset, f"{tag:08X}", vr, item[key], key,
                                         lambda *_: b"")
    return DataElement(tag, vr, [] if vr == "SQ" else None)


# VRs whose value is text: encoded here as pydicom would write it with ISO_IR 192 (UTF-8)
TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "TM", "UC",
                      "UI", "UR", "UT"})


UTF8 = convert_encodings("ISO_IR 192")


def raw_element(tag: int, vr: str, text: str) -> RawDataElement:
    """A text element already encoded (UTF-8, padded to even length, PS3.5 6.2): pydicom writes
    it as it is, with no conversion or validation (~4x cheaper per C-FIND match)."""
    value = encoded_text(vr, text)
    return RawDataElement(BaseTag(tag), vr, len(value), value, 0, False, True)


def encoded_text(vr: str, text: str) -> bytes:
    """UTF-8, padded to even length as PS3.5 6.2 pads the VR (NUL for UI, space otherwise)."""
    value = text.encode("utf-8")
    if len(value) % 2:
        value += b"\0" if vr == "UI" else b" "
    return value


def _pn_text(value: Any) -> str | None:
    """A JSON PN value as pydicom's JsonDataElementConverter makes it (PS3.18 F.2.2)."""
    if value is None:
        return ""
    if not isinstance(value, dict):
        return value if isinstance(value, str) else None
    groups = [value.get("Alphabetic", ""), value.get("Ideographic", ""), value.get("Phonetic", "")]
    n = 3 if "Phonetic" in value else 2 if "Ideographic" in value else 1
    return "=".join(groups[:n]) if all(isinstance(g, str) for g in groups) else None


def _raw_of(tag: int, item: dict) -> RawDataElement | None:
    """A text or integer string attribute as a raw element; None for anything else."""
    text = _text_of(item)
    return None if text is None else raw_element(tag, item["vr"], text)


def _text_of(item: dict) -> str | None:
    """The value of a text or integer string DICOM JSON attribute as DICOM text; None otherwise."""
    vr = item.get("vr")
    values = item.get("Value", [])
    if not isinstance(values, list) or len(item) != (2 if "Value" in item else 1):
        return None
    if vr == "PN":
        texts = [_pn_text(v) for v in values]
    elif vr in TEXT_VRS:
        texts = ["" if v is None else v if isinstance(v, str) else None for v in values]
    elif vr == "IS":
        texts = [str(v) if type(v) is int else None for v in values]
    else:
        return None
    if any(t is None for t in texts):
        return None
    return "\\".join(texts)  # type: ignore[arg-type]


ResponseKeys = list[tuple[int, str, str]]  # tag, its 8 hex digits, the VR asked with


def response_keys(identifier: Dataset) -> ResponseKeys:
    """The keys a C-FIND response carries (PS3.4 C.4.1.2.2): the identifier's, less the SCP's own."""
    return [(int(elem.tag), f"{int(elem.tag):08X}", elem.VR) for elem in identifier
            if int(elem.tag) not in OWN_KEYS and elem.tag.group not in (0x0000, 0x0002)]


def response_identifier(result: dict, identifier: Dataset | ResponseKeys, level: Level, retrieve_aet: str,
                        implicit_le: bool | None = None) -> Dataset:
    """The C-FIND response: exactly the requested keys, valued from the DICOM JSON match.

    Only the requested attributes are converted from the JSON (converting the whole match
    with Dataset.from_json cost ~0.4 ms per match here); text ones go in already encoded.
    identifier: the request, or its response_keys (computed once per request).
    implicit_le: the little endian transfer syntax it will be written in (implicit VR or not),
    so that pydicom writes the encoded elements as they are instead of converting them back."""
    keys = response_keys(identifier) if isinstance(identifier, Dataset) else identifier
    rsp = Dataset()
    if implicit_le is not None:
        rsp.set_original_encoding(implicit_le, True, UTF8)
    rsp[0x00080005] = raw_element(0x00080005, "CS", "ISO_IR 192")  # the index's JSON is Unicode (rule 7)
    for tag, hex_tag, vr in keys:
        item = result.get(hex_tag)
        if item is not None:
            rsp[tag] = _raw_of(tag, item) or _element(tag, item)
        elif vr in TEXT_VRS or vr == "IS":
            rsp[tag] = raw_element(tag, vr, "")
        else:
            rsp.add_new(tag, vr, [] if vr == "SQ" else None)
    rsp[QUERY_RETRIEVE_LEVEL] = raw_element(QUERY_RETRIEVE_LEVEL, "CS", level)
    rsp[0x00080054] = raw_element(0x00080054, "AE", retrieve_aet)
    return rsp


_LONG_FORM = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})


def response_bytes(result: dict, keys: ResponseKeys, level: Level, retrieve_aet: str,
                   implicit: bool) -> bytes | None:
    """response_identifier(...) already encoded in little endian (implicit VR or explicit), or
    None when an attribute needs pydicom (a sequence, a binary value): the same bytes pydicom
    writes (tests/dimse/test_identifier.py), without building a Dataset per match."""
    return ResponseEncoder(keys, level, retrieve_aet, implicit).encode(result)


class ResponseEncoder:
    """response_bytes for every match of one request: the order of the elements, the SCP's own
    elements (character set, level, retrieve AE) and the elements' headers are worked out once
    per request, so a match costs its values' encoding and a join (~3x less than per match)."""

    def __init__(self, keys: ResponseKeys, level: Level, retrieve_aet: str, implicit: bool) -> None:
        self.implicit = implicit
        own = {0x00080005: ("CS", "ISO_IR 192"), QUERY_RETRIEVE_LEVEL: ("CS", level), 0x00080054: ("AE", retrieve_aet)}
        asked = {tag: (hex_tag, vr) for tag, hex_tag, vr in keys if tag not in own}
        self.textual = all(vr in TEXT_VRS or vr == "IS" for _, vr in asked.values())
        self._headers: dict[tuple[int, str], tuple[bytes, bool]] = {}
        # each element in tag order: (its bytes, when the same for every match) or (tag, hex, vr)
        self.plan: list[bytes | tuple[int, str, str]] = []
        self.fits = True  # False: an own value too long for its VR's length field (pydicom's business)
        for tag in sorted({*own, *asked}):
            if tag in asked:
                self.plan.append((tag, *asked[tag]))
                continue
            fixed = self._element(tag, *own[tag])
            if fixed is None:
                self.fits = self.textual = False
            else:
                self.plan.append(fixed)
        self._empty = {tag: self._element(tag, vr, "") for tag, (_, vr) in asked.items()
                       if vr in TEXT_VRS or vr == "IS"}

    def _element(self, tag: int, vr: str, text: str) -> bytes | None:
        value = encoded_text(vr, text)
        header = self._header(tag, vr, len(value))
        return None if header is None else header + value

    def _header(self, tag: int, vr: str, length: int) -> bytes | None:
        prefix, long_length = self._prefix(tag, vr)
        if long_length:
            return prefix + length.to_bytes(4, "little")
        return prefix + length.to_bytes(2, "little") if length <= 0xFFFF else None

    def _prefix(self, tag: int, vr: str) -> tuple[bytes, bool]:
        """The element's header before its length, and whether the length takes 4 bytes."""
        known = self._headers.get((tag, vr))
        if known is None:
            if self.implicit:
                known = (struct.pack("<HH", tag >> 16, tag & 0xFFFF), True)
            elif vr in _LONG_FORM:
                known = (struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr.encode(), 0), True)
            else:
                known = (struct.pack("<HH2s", tag >> 16, tag & 0xFFFF, vr.encode()), False)
            self._headers[(tag, vr)] = known
        return known

    def encode(self, result: dict) -> bytes | None:
        """One match's response identifier; None when pydicom has to encode it."""
        if not self.fits:
            return None
        out: list[bytes] = []
        for step in self.plan:
            if type(step) is bytes:
                out.append(step)
                continue
            tag, hex_tag, vr = step  # type: ignore[misc]
            item = result.get(hex_tag)
            if item is None:
                empty = self._empty.get(tag)
                if empty is None:
                    return None
                out.append(empty)
                continue
            vr = item.get("vr")
            values = item.get("Value")
            # the common case first: one string of a text VR other than PN, nothing else
            if (vr in TEXT_VRS and vr != "PN" and type(values) is list and len(values) == 1
                    and type(values[0]) is str and len(item) == 2):
                text: str | None = values[0]
            else:
                text = _text_of(item)
            if text is None:
                return None
            value = text.encode("utf-8")  # encoded_text, inlined: this runs per attribute per match
            if len(value) & 1:
                value += b"\0" if vr == "UI" else b" "
            prefix, long_length = self._headers.get((tag, vr)) or self._prefix(tag, vr)
            if long_length:
                out += (prefix, len(value).to_bytes(4, "little"), value)
            elif len(value) <= 0xFFFF:
                out += (prefix, len(value).to_bytes(2, "little"), value)
            else:
                return None
        return b"".join(out)


def study_query(patients: Iterable[str], issuer: str, studies: Iterable[str] = ()) -> Query:
    """Patient Root retrieve: the studies of these patients (optionally only these studies)."""
    matches = [_list_match("00100020", tuple(patients))]
    if issuer:
        matches.append(Match("00100021", "single", (issuer,)))
    if tuple(studies):
        matches.append(_list_match("0020000D", tuple(studies)))
    return Query(level="STUDY", matches=matches, includefields={"0020000D"}, patient_root=True)


def _list_match(tag: str, values: tuple[str, ...]) -> Match:
    return Match(tag, "single", values) if len(values) == 1 else Match(tag, "list", values)


def study_uids(results: Iterator[dict]) -> Iterator[str]:
    """StudyInstanceUID of each DICOM JSON study result."""
    for item in results:
        value = item.get("0020000D", {}).get("Value") or []
        if value:
            yield str(value[0])
