"""The one error catalog: every domain error carries its HTTP status and its DIMSE status."""
from __future__ import annotations

import errno


class ArchiveError(Exception):
    """Base of every refusal the archive reports to a client."""

    http_status = 400
    dimse_status = 0xC000  # PS3.4 C.4.2.1.4 / Annex GG.4: cannot understand

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidInstance(ArchiveError):
    """The bytes are not a DICOM instance we can keep (no UIDs, truncated, unreadable)."""

    http_status, dimse_status = 400, 0xC000


class SOPClassMismatch(ArchiveError):
    """The data set does not match its SOP class (pixel data inconsistent with its attributes)."""

    http_status, dimse_status = 400, 0xA900


class UnsupportedTransferSyntax(ArchiveError):
    """A transfer syntax the archive cannot keep or produce."""

    http_status, dimse_status = 400, 0xC122  # PS3.18 Table I.2-1: referenced TS not supported


class StudyMismatch(ArchiveError):
    """STOW-RS to /studies/{study} with an instance of another study (PS3.18 10.5.3)."""

    http_status, dimse_status = 409, 0xA900


class InstanceConflict(ArchiveError):
    """A SOP Instance UID already stored under another study or series."""

    http_status, dimse_status = 409, 0xC409


class StudyElsewhere(ArchiveError):
    """An instance of a study another hospital owns (issue 11): a study never takes instances
    from two hospitals. The store is refused and the stored study is left as it was."""

    http_status, dimse_status = 409, 0xC409


class OutOfResources(ArchiveError):
    """No room to store (disk full, quota): the sender should retry later (PS3.4 B.2.3 A7xx)."""

    http_status, dimse_status = 507, 0xA700


NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})  # the OS errors that mean OutOfResources


class InvalidQuery(ArchiveError):
    """A malformed value of a supported query key or parameter."""

    http_status, dimse_status = 400, 0xC000

    def __init__(self, param: str, reason: str) -> None:
        super().__init__(f"{param}: {reason}")
        self.param = param


class UnknownResource(ArchiveError):
    """An unknown study, series, instance, frame or bulk data element."""

    http_status, dimse_status = 404, 0xC000


class NotAcceptable(ArchiveError):
    """No representation satisfies the request's Accept (PS3.18 8.7)."""

    http_status, dimse_status = 406, 0xC000


class UnsupportedMediaType(ArchiveError):
    """A request body of a media type the resource does not take."""

    http_status, dimse_status = 415, 0xC000


class PayloadTooLarge(ArchiveError):
    """A request body over the configured limit."""

    http_status, dimse_status = 413, 0xA700


class AccessDenied(ArchiveError):
    """The caller may not do this."""

    http_status, dimse_status = 403, 0xA801
