"""Instances converted before the status line (issue 10 part 1).

A multipart answer cannot take back its 200 once streaming has begun, so every instance that
needs another transfer syntax is converted first, into a spool file (memory up to a bound, disk
beyond). One that cannot be converted takes the next syntax the request accepts (PS3.18 8.7.5:
each part may be any acceptable media type, and its Content-Type names the transfer syntax);
when none fits, the whole request is a 406 naming the instance. Instances sent as stored are
read while streaming, as before: reading stored bytes does not fail on content.
"""
from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import pydicom

from dicomweb.http import MediaRange, media_matches
from index.model import InstanceRow
from yunying.archive import Archive
from yunying.errors import ArchiveError, NotAcceptable

EXPLICIT_LE = str(pydicom.uid.ExplicitVRLittleEndian)
SPOOL_MEMORY = 32 << 20  # beyond this the converted parts of one answer go to a temporary file


def accepted_syntaxes(ranges: list[MediaRange], single: bool) -> list[str | None]:
    """The transfer syntaxes an Accept allows for application/dicom parts, preferred first (None = as stored)."""
    out: list[str | None] = []
    for r in ranges:
        inner = r.params.get("type", "application/dicom").lower()
        if r.type == "multipart/related" and inner != "application/dicom":
            continue
        if not (r.type in ("multipart/related", "application/dicom") or media_matches(r.type, "multipart/related")
                or (single and media_matches(r.type, "application/dicom"))):
            continue
        ts = r.params.get("transfer-syntax") or EXPLICIT_LE
        choice = None if ts == "*" else ts
        if choice not in out:
            out.append(choice)
    return out


@dataclass
class Part:
    """One instance of the answer: as stored (read while streaming) or converted into the spool."""

    row: InstanceRow
    transfer_syntax: str | None  # None: as stored
    offset: int = -1
    length: int = 0


def _needs_conversion(row: InstanceRow, ts: str | None) -> bool:
    return ts is not None and (ts != row.transfer_syntax or ts == pydicom.uid.DeflatedExplicitVRLittleEndian)


def convert_one(archive: Archive, row: InstanceRow, syntaxes: list[str | None]) -> tuple[bytes, str]:
    """The instance as Part 10 bytes in the first syntax of `syntaxes` it can be converted to."""
    reasons = []
    for ts in syntaxes:
        try:
            return archive.read_part10(row, ts), ts or row.transfer_syntax
        except ArchiveError as exc:
            reasons.append(exc.reason)
    raise NotAcceptable(f"instance {row.sop} cannot be sent in any accepted transfer syntax: {'; '.join(reasons)}")


class Prepared:
    """The parts of one answer, converted ones already in the spool."""

    def __init__(self, archive: Archive, rows: list[InstanceRow], syntaxes: list[str | None]) -> None:
        self.archive = archive
        self.parts: list[Part] = []
        self._spool: IO[bytes] | None = None
        try:
            for row in rows:
                self.parts.append(self._prepare(row, syntaxes))
        except BaseException:
            self.close()
            raise

    def _prepare(self, row: InstanceRow, syntaxes: list[str | None]) -> Part:
        preferred = syntaxes[0] if syntaxes else None
        if not _needs_conversion(row, preferred):
            return Part(row, preferred)
        data, used = convert_one(self.archive, row, syntaxes)
        if self._spool is None:
            self._spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)  # noqa: SIM115 - closed by close()
        offset = self._spool.seek(0, 2)
        self._spool.write(data)
        return Part(row, used, offset, len(data))

    def read(self, part: Part) -> tuple[bytes, str]:
        """(Part 10 bytes, transfer syntax) of one part; runs in a worker thread."""
        if part.offset < 0:
            return self.archive.read_part10(part.row, part.transfer_syntax), part.transfer_syntax or part.row.transfer_syntax
        assert self._spool is not None
        self._spool.seek(part.offset)
        return self._spool.read(part.length), part.transfer_syntax or part.row.transfer_syntax

    def __iter__(self) -> Iterator[Part]:
        return iter(self.parts)

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None
