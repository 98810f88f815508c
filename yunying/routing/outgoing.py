"""One instance on its way to a destination, and the senders' shape."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from yunying.pixels import syntaxes as ts_

EXPLICIT_LE, IMPLICIT_LE = ts_.EXPLICIT_LE, ts_.IMPLICIT_LE


@dataclass(frozen=True)
class Outgoing:
    sop_class: str
    sop: str
    offer: tuple[str, ...]  # transfer syntaxes to send it in, preferred first
    read: Callable[[str], bytes]  # Part 10 bytes in a syntax of `offer` (a transcoded copy when not as stored)
    size: int = 0  # bytes as stored: a STOW request holds a bounded amount


class Sender(Protocol):
    def __call__(self, destination: dict[str, Any], items: Sequence[Outgoing]) -> dict[str, str | None]:
        """Send; per SOP Instance UID None when the destination took it, else why not (no patient data).
        Raises when nothing could be sent (no association, connection refused ...)."""
        ...


def offer_for(stored: str, policy: str, kind: str) -> tuple[str, ...]:
    """The syntaxes to offer: a named lossy one only; or lossless: as stored, then uncompressed
    (DICOMweb takes what it is given: as stored)."""
    if policy != "lossless":
        return (policy,)
    if kind == "dicomweb":
        return (stored,)
    return tuple(dict.fromkeys((stored, EXPLICIT_LE, IMPLICIT_LE)))
