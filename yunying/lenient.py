"""Device files as they are (issue 10 part 2): an element with a VR PS3.5 does not define.

pydicom reads an unknown explicit VR made of two capital letters with a 2-byte length (as
DCMTK does) but then cannot convert its value, so one vendor's odd attribute used to refuse
the whole instance. Such an element is read as UN here, which pydicom resolves to the
dictionary VR of a known tag (Manufacturer sent as "XX" reads as LO); the stored bytes stay
exactly as received and the store answers with a warning naming the tag.
Registered once for the process when this module is imported (the ingest and the archive do).
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydicom import Dataset
from pydicom.dataelem import RawDataElement
from pydicom.errors import BytesLengthException
from pydicom.hooks import hooks, raw_element_value, raw_element_vr
from pydicom.valuerep import VR

from yunying.charsets import clean_ir58

KNOWN_VRS = frozenset(v.value for v in VR)  # with pydicom's own "OB or OW", "US or SS"


def known_vr(vr: str | None) -> bool:
    return vr is None or vr in KNOWN_VRS


def _vr_or_un(raw: RawDataElement, data: dict[str, Any], **kwargs: Any) -> None:
    if not known_vr(raw.VR):
        raw = raw._replace(VR=VR.UN)
    raw_element_vr(raw, data, **kwargs)


def _value(raw: RawDataElement, data: dict[str, Any], **kwargs: Any) -> None:
    """pydicom's conversion; a value whose length does not fit its VR (a US of 3 bytes) is kept
    as UN bytes, as received, with a warning, instead of failing the whole instance."""
    try:
        raw_element_value(raw, data, **kwargs)
    except BytesLengthException:
        data["VR"], data["value"] = VR.UN, raw.value
        note(f"element {tag_text(raw.tag)} has a length that does not fit its VR {raw.VR}: kept as UN")
        return
    clean_ir58(raw, data)


hooks.register_callback("raw_element_vr", _vr_or_un)
hooks.register_callback("raw_element_value", _value)
_local = threading.local()


@contextmanager
def noting() -> Iterator[list[str]]:
    """Collect the notes conversions make in this thread meanwhile (the ingest keeps them as warnings)."""
    notes: list[str] = []
    _local.notes = notes
    try:
        yield notes
    finally:
        _local.notes = None


def note(text: str) -> None:
    notes = getattr(_local, "notes", None)
    if notes is not None and text not in notes:
        notes.append(text)


def tag_text(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def unknown_vr_note(tag: int, vr: str) -> str:
    """A warning without the value (no patient data)."""
    return f"element {tag_text(tag)} has the undefined VR {vr!r}: kept as received, read as UN or its dictionary VR"


def unknown_vrs(ds: Dataset) -> list[str]:
    """Warnings for the top-level elements of a freshly read data set whose VR is undefined."""
    return [unknown_vr_note(elem.tag, str(elem.VR)) for elem in ds._dict.values()
            if isinstance(elem, RawDataElement) and not known_vr(elem.VR)]
