"""Structural check of sequence values (PS3.5 7.5) that pydicom reads leniently.

pydicom reads a defined-length sequence lazily and, unless debugging, never checks that its
items start with the Item tag: garbage in a sequence was stored and came back as an invented
element. Every top-level sequence value still in raw form is walked here: items and
delimiters where PS3.5 7.5 puts them, element headers with known VRs, lengths that stay inside
their item. Undefined-length sequences were already parsed by pydicom (and fail there).
"""
from __future__ import annotations

import struct

from pydicom import Dataset
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement

from yunying.errors import InvalidInstance
from yunying.lenient import unknown_vr_note

ITEM, ITEM_END, SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
UNDEFINED = 0xFFFFFFFF
MAX_DEPTH = 32
LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})
SHORT_VRS = frozenset({b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT",
                       b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US"})


class _Malformed(Exception):
    pass


def check_sequences(ds: Dataset) -> list[str]:
    """Raise InvalidInstance naming the first top-level sequence whose bytes break PS3.5 7.5;
    returns warnings for elements inside items whose VR PS3.5 does not define (kept, read as UN)."""
    notes: list[str] = []
    for elem in ds._dict.values():
        if not isinstance(elem, RawDataElement) or elem.value is None or elem.length == UNDEFINED:
            continue
        if not (elem.VR == "SQ" or (elem.VR is None and _is_sequence(elem.tag))):
            continue
        walker = _Walker(elem.value, elem.is_implicit_VR, elem.is_little_endian)
        try:
            walker.items(0, len(elem.value), 0)
            notes += walker.notes
        except (_Malformed, struct.error) as exc:
            why = str(exc) if isinstance(exc, _Malformed) else "it ends inside an element header"
            raise InvalidInstance(f"sequence ({elem.tag >> 16:04X},{elem.tag & 0xFFFF:04X}) is malformed: "
                                  f"{why}") from None
    return notes


def _undefined_vr(vr: bytes) -> bool:
    """Two capital letters PS3.5 does not define: a vendor's invention, not a broken stream."""
    return len(vr) == 2 and vr.isalpha() and vr.isupper()


def _is_sequence(tag: int) -> bool:
    try:
        return dictionary_VR(tag) == "SQ"
    except KeyError:
        return False


class _Walker:
    def __init__(self, buf: bytes, implicit: bool, little: bool) -> None:
        self.buf = buf
        self.implicit = implicit
        self.e = "<" if little else ">"
        self.notes: list[str] = []

    def _tag(self, pos: int) -> tuple[int, int]:
        group, elem, length = struct.unpack_from(f"{self.e}HHI", self.buf, pos)
        return (group << 16) | elem, length

    def items(self, pos: int, end: int | None, depth: int) -> int:
        """A sequence value from pos: up to end, or (undefined length) through its delimiter."""
        if depth > MAX_DEPTH:
            raise _Malformed(f"sequences nested deeper than {MAX_DEPTH}")
        while end is None or pos < end:
            tag, length = self._tag(pos)
            pos += 8
            if tag == SEQ_END and end is None:
                return pos
            if tag != ITEM:
                raise _Malformed(f"expected an item tag at offset {pos - 8}, found ({tag >> 16:04X},{tag & 0xFFFF:04X})")
            if length == UNDEFINED:
                pos = self.dataset(pos, None, depth)
            else:
                if pos + length > (end if end is not None else len(self.buf)):
                    raise _Malformed(f"item at offset {pos - 8} is longer than its sequence")
                self.dataset(pos, pos + length, depth)
                pos += length
        if pos != end:
            raise _Malformed("the last item runs past the sequence length")
        return pos

    def dataset(self, pos: int, end: int | None, depth: int) -> int:
        """An item's data set: up to end, or (undefined length) through the item delimiter."""
        limit = end if end is not None else len(self.buf)
        while pos < limit:
            tag, length = self._tag(pos)
            if tag == ITEM_END and end is None:
                return pos + 8
            if tag >> 16 == 0xFFFE:
                raise _Malformed(f"delimiter ({tag >> 16:04X},{tag & 0xFFFF:04X}) inside an item at offset {pos}")
            if self.implicit:
                vr, pos = None, pos + 8
            else:
                vr = bytes(self.buf[pos + 4:pos + 6])
                if vr in LONG_VRS:
                    (length,) = struct.unpack_from(f"{self.e}I", self.buf, pos + 8)
                    pos += 12
                elif vr in SHORT_VRS or _undefined_vr(vr):
                    if vr not in SHORT_VRS:  # read with a 2-byte length, as pydicom and DCMTK do
                        self.notes.append(unknown_vr_note(tag, vr.decode()))
                    (length,) = struct.unpack_from(f"{self.e}H", self.buf, pos + 6)
                    pos += 8
                else:
                    raise _Malformed(f"unknown VR {vr!r} at offset {pos}")
            sequence = vr == b"SQ" or (vr is None and _is_sequence(tag))
            if length == UNDEFINED:
                if sequence or vr is None or vr == b"UN":  # UN of undefined length: implicit VR SQ (PS3.5 6.2.2)
                    implicit, self.implicit = self.implicit, self.implicit or vr == b"UN"
                    pos = self.items(pos, None, depth + 1)
                    self.implicit = implicit
                elif vr in (b"OB", b"OW"):  # encapsulated pixel data (e.g. an icon image)
                    pos = self._fragments(pos)
                else:
                    raise _Malformed(f"undefined length for VR {vr!r} at offset {pos}")
                continue
            if pos + length > limit:
                raise _Malformed(f"element at offset {pos} runs past its item")
            if sequence:
                self.items(pos, pos + length, depth + 1)
            pos += length
        if end is None:
            raise _Malformed("an item of undefined length has no item delimiter")
        if pos != end:
            raise _Malformed("the last element runs past its item")
        return pos

    def _fragments(self, pos: int) -> int:
        while True:
            tag, length = self._tag(pos)
            pos += 8
            if tag == SEQ_END:
                return pos
            if tag != ITEM or length == UNDEFINED or pos + length > len(self.buf):
                raise _Malformed(f"bad fragment at offset {pos - 8}")
            pos += length
