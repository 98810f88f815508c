"""Errors of the index package; the edges map them to HTTP 400 / DIMSE 0xC000."""
from __future__ import annotations


class InvalidQueryValue(ValueError):
    """A malformed matching value of a supported key (PS3.4 C.2.2.2, PS3.18 8.3.4)."""

    def __init__(self, tag: str, reason: str) -> None:
        super().__init__(f"{tag}: {reason}")
        self.tag = tag
        self.reason = reason
