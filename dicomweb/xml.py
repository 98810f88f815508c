"""DICOM JSON (PS3.18 Annex F) as Native DICOM Model XML (PS3.19 Annex A.1), written as text.

The index keeps DICOM JSON; XML is a second rendering of the same objects, so every metadata and
search answer can be sent in either form without reading the stored bytes again.
"""
from __future__ import annotations

from typing import Any

from pydicom.datadict import keyword_for_tag

NAMESPACE = "http://dicom.nema.org/PS3.19/models/NativeDICOM"  # PS3.19 A.1.6 default namespace
MEDIA_TYPE = "application/dicom+xml"
MULTIPART = f'multipart/related; type="{MEDIA_TYPE}"'
PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")
PN_COMPONENTS = ("FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix")

# XML 1.0 (section 2.2) cannot carry C0 controls other than TAB, LF and CR, not even as character
# references: they become U+FFFD. CR is written as a reference so parsers do not fold it into LF.
_TEXT = {c: "\ufffd" for c in range(32) if c not in (9, 10, 13)}
_TEXT.update({ord("&"): "&amp;", ord("<"): "&lt;", ord(">"): "&gt;", 13: "&#13;",
              0xFFFE: "\ufffd", 0xFFFF: "\ufffd"})
_ATTR = {**_TEXT, ord('"'): "&quot;", 9: "&#9;", 10: "&#10;"}


def text(value: str) -> str:
    """Escape character data."""
    return value.translate(_TEXT)


def attr(value: str) -> str:
    """Escape an attribute value (to go inside double quotes)."""
    return value.translate(_ATTR)


def dataset_xml(dataset: dict[str, Any]) -> bytes:
    """One NativeDicomModel document (UTF-8) for one DICOM JSON object."""
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n', f'<NativeDicomModel xmlns="{NAMESPACE}">']
    _dataset(dataset, out)
    out.append("</NativeDicomModel>\n")
    return "".join(out).encode()


def _dataset(dataset: dict[str, Any], out: list[str]) -> None:
    for tag in sorted(dataset):
        if len(tag) == 8 and all(c in "0123456789abcdefABCDEF" for c in tag):
            _attribute(tag.upper(), dataset[tag], dataset, out)


def _attribute(tag: str, element: dict[str, Any], dataset: dict[str, Any], out: list[str]) -> None:
    vr = str(element.get("vr", "UN"))
    head = f'<DicomAttribute tag="{tag}" vr="{attr(vr)}"'
    group, number = int(tag[:4], 16), int(tag[4:], 16)
    if group % 2:
        creator = _private_creator(dataset, group, number)
        if creator:
            head += f' privateCreator="{attr(creator)}"'
    elif keyword := keyword_for_tag(int(tag, 16)):
        head += f' keyword="{keyword}"'
    if "BulkDataURI" in element:
        out.append(f'{head}><BulkData uri="{attr(str(element["BulkDataURI"]))}"/></DicomAttribute>')
        return
    if "InlineBinary" in element:
        out.append(f'{head}><InlineBinary>{text(str(element["InlineBinary"]))}</InlineBinary></DicomAttribute>')
        return
    values = element.get("Value") or []
    if not values:
        out.append(head + "/>")
        return
    out.append(head + ">")
    for i, value in enumerate(values, 1):
        if vr == "SQ":
            out.append(f'<Item number="{i}">')
            _dataset(value or {}, out)
            out.append("</Item>")
        elif vr == "PN":
            _person_name(i, value, out)
        elif value is None:
            out.append(f'<Value number="{i}"/>')
        else:
            out.append(f'<Value number="{i}">{text(_scalar(value))}</Value>')
    out.append("</DicomAttribute>")


def _scalar(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)  # shortest form that reads back to the same double
    return str(value)


def _person_name(number: int, value: Any, out: list[str]) -> None:
    """PS3.19 A.1.6 PersonName: one element per component group, one per non-empty component."""
    groups = value if isinstance(value, dict) else {}
    out.append(f'<PersonName number="{number}">')
    for group in PN_GROUPS:
        name = groups.get(group)
        if not name:
            continue
        parts = str(name).split("^")
        parts = parts[:4] + ["^".join(parts[4:])] if len(parts) > 5 else parts
        out.append(f"<{group}>")
        out.extend(f"<{c}>{text(p)}</{c}>" for c, p in zip(PN_COMPONENTS, parts) if p)
        out.append(f"</{group}>")
    out.append("</PersonName>")


def _private_creator(dataset: dict[str, Any], group: int, number: int) -> str | None:
    """The Private Creator of a private element (PS3.5 7.8.1): (gggg,00xx) for (gggg,xxyy)."""
    if number < 0x1000:
        return None
    creator = dataset.get(f"{group:04X}{number >> 8:04X}", {}).get("Value")
    return str(creator[0]) if creator and creator[0] is not None else None
