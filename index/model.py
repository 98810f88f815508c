"""Records the archive hands to the index, and rows it gets back."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DEFAULT_HOSPITAL = "default"  # yunying.auth.principal.DEFAULT_HOSPITAL (index/ imports nothing of ours)


@dataclass(frozen=True)
class Origin:
    """Where an instance came from (design rule 6), and which hospital owns it (issue 11)."""

    face: str  # "stow" | "dimse" | "import" | a collector's name
    source: str  # calling AE title, or the HTTP client's address / user
    institution: str = ""  # sending institution's name; qualifies PatientID when IssuerOfPatientID is absent
    hospital: str = DEFAULT_HOSPITAL  # the tenant the study belongs to: the storing principal's / peer's
    department: str | None = None  # within the hospital, when the storing side knows it


@dataclass
class InstanceRecord:
    """One stored instance version, as the archive indexes it."""

    json: dict[str, Any]  # DICOM JSON (PS3.18 Annex F); bulk data as BulkDataURI "yy-bulk:<relative path>"
    transfer_syntax: str  # the transfer syntax it was received in
    pixel_form: str  # "none" | "native" | "encapsulated" | "blob"
    frames: int  # number of frames (0 when no pixel data)
    size: int  # bytes received
    digest: str  # hex digest of what was received: ETag and idempotency
    storage_key: str  # key prefix of this version's bytes in storage/
    origin: Origin
    received: datetime = field(default_factory=lambda: datetime.now(UTC))
    extra: dict[str, Any] = field(default_factory=dict)  # storage facts the archive needs back (frame layout ...)


@dataclass(frozen=True)
class InstanceRow:
    """What retrieval needs to find an instance's bytes."""

    study: str
    series: str
    sop: str
    sop_class: str
    transfer_syntax: str
    pixel_form: str
    frames: int
    size: int
    digest: str
    storage_key: str
    extra: dict[str, Any]
