"""The archive: the single ingest / retrieve / delete path every face uses (design.md).

INTERFACE FIRST: bodies are being written; the signatures below are the contract that
dicomweb/, dimse/ and the CLI code against.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from pydicom import Dataset

from index.model import InstanceRow, Origin
from index.query import Query


@dataclass(frozen=True)
class StoreResult:
    """What happened to one stored instance."""

    sop_class: str
    sop_instance: str
    study: str
    series: str
    outcome: str  # "stored" | "duplicate" (identical resend, nothing changed) | "replaced"
    warnings: list[str] = field(default_factory=list)  # human-readable, no patient data


class Archive:
    """Owns storage/ and index/; thread-safe; every method is synchronous (run it off the event loop)."""

    def __init__(self, data_dir: Path) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Flush and close (graceful shutdown)."""

    def store(self, source: Path | bytes | BinaryIO, origin: Origin,
              expected_study: str | None = None) -> StoreResult:
        """Store one Part 10 file / dataset stream (preamble optional); raises errors.ArchiveError."""
        raise NotImplementedError

    def search(self, query: Query) -> Iterator[dict]:
        """DICOM JSON dicts of the matches, streamed in the index's stable order."""
        raise NotImplementedError

    def instances(self, study: str, series: str | None = None, sop: str | None = None) -> list[InstanceRow]:
        """The instances under a study/series/instance; raises UnknownResource when none."""
        raise NotImplementedError

    def read_dataset(self, row: InstanceRow, transfer_syntax: str | None = None) -> Dataset:
        """The full dataset (file meta included); transcoded when transfer_syntax differs from stored."""
        raise NotImplementedError

    def read_part10(self, row: InstanceRow, transfer_syntax: str | None = None) -> bytes:
        """A Part 10 file of the instance in transfer_syntax (None: as received)."""
        raise NotImplementedError

    def delete(self, study: str, series: str | None = None, sop: str | None = None) -> int:
        """Remove index rows, then bytes; returns the number of instances removed."""
        raise NotImplementedError
