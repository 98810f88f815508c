"""The attributes rendering reads, taken from stored DICOM JSON instead of a parsed header (design rule 4)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# keyword -> tag of every top-level attribute render() reads for a plain greyscale image
_ATTRIBUTES = {
    "PhotometricInterpretation": "00280004",
    "BitsStored": "00280101",
    "PixelSpacing": "00280030",
    "RescaleSlope": "00281053",
    "RescaleIntercept": "00281052",
    "WindowCenter": "00281050",
    "WindowWidth": "00281051",
    "VOILUTFunction": "00281056",
    "PresentationLUTShape": "20500020",
    "FrameTime": "00181063",
    "CineRate": "00180040",
}
# present -> the full header is needed: Modality / VOI LUT tables (PS3.3 C.11.1-2), functional
# groups (C.7.6.16), palettes (C.7.6.3.1.5), the Presentation LUT Sequence (C.11.4)
_NEEDS_HEADER = frozenset({"00283000", "00283010", "52009229", "52009230", "00281201", "20500010"})
_GREY = ("MONOCHROME1", "MONOCHROME2")
_MULTI = ("PixelSpacing", "WindowCenter", "WindowWidth")  # kept as lists, as pydicom gives them


def display_header(doc: Mapping[str, Any]) -> dict[str, Any] | None:
    """A keyword mapping that render() accepts as the header of a plain greyscale image.

    None when rendering needs more than top-level values: colour, tables, functional groups or
    overlays (60xx,3000) — those images are rendered from their parsed header.
    """
    photometric = (_values(doc, "00280004") or ["MONOCHROME2"])[0]
    if str(photometric).strip().upper() not in _GREY:
        return None
    if not _NEEDS_HEADER.isdisjoint(doc) or any(tag.startswith("60") for tag in doc):
        return None  # 60xx: overlays (PS3.3 C.9.2, groups 6000-601E) or private groups beside them
    header: dict[str, Any] = {}
    for keyword, tag in _ATTRIBUTES.items():
        if values := _values(doc, tag):
            header[keyword] = list(values) if keyword in _MULTI or len(values) > 1 else values[0]
    return header


def _values(doc: Mapping[str, Any], tag: str) -> list[Any] | None:
    element = doc.get(tag)
    return element.get("Value") if isinstance(element, Mapping) else None

