"""DIMSE peers: where each AE title listens, which hospital it belongs to, what it may see.

Two forms, mixable in one peers file (issue 11, part 8):
    {"CT1": ["10.0.0.5", 104]}                                   # the default hospital
    {"PACS2": {"host": "10.0.1.9", "port": 104, "hospital": "h2",
               "department": "radiology", "see": ["h2", "h3"]}}   # or "see": "all"
A peer stores into its hospital (and department); C-FIND / C-MOVE / C-GET see its hospital's
studies, or the hospitals `see` lists (its own always included), or everything with "all".
"""
from __future__ import annotations

from typing import Any, Self

from yunying.auth.principal import DEFAULT_HOSPITAL, EVERYTHING, Visibility

ALL = "all"


class Peer(tuple[str, int]):
    """(host, port), as peers always were, with the hospital the peer belongs to."""

    hospital: str
    department: str | None
    see: frozenset[str] | None  # hospitals beyond its own; None: everything ("all")

    def __new__(cls, host: str, port: int, hospital: str = DEFAULT_HOSPITAL,
                department: str | None = None, see: frozenset[str] | None = frozenset()) -> Self:
        self = super().__new__(cls, (host, port))
        self.hospital, self.department, self.see = hospital, department, see
        return self

    def __reduce__(self) -> Any:  # copies and pickles keep the hospital
        return (Peer, (self[0], self[1], self.hospital, self.department, self.see))

    @property
    def visibility(self) -> Visibility:
        """What this peer's queries and retrieves see."""
        if self.see is None:
            return EVERYTHING
        return Visibility(hospitals=frozenset({self.hospital}) | self.see)


def parse_peer(value: Any) -> Peer | None:
    """A Peer from either form; None when the value is neither."""
    if isinstance(value, Peer):
        return value
    host: Any
    port: Any
    if isinstance(value, (list, tuple)) and len(value) == 2:
        host, port = value
        return Peer(host, port) if _address(host, port) else None
    if not isinstance(value, dict) or set(value) - {"host", "port", "hospital", "department", "see"}:
        return None
    host, port = value.get("host"), value.get("port")
    hospital = value.get("hospital", DEFAULT_HOSPITAL)
    department = value.get("department")
    see = value.get("see", [])
    if not _address(host, port) or not _name(hospital) or not (department is None or _name(department)):
        return None
    if see == ALL:
        return Peer(host, port, hospital, department, None)
    if not isinstance(see, list) or not all(_name(h) for h in see):
        return None
    return Peer(host, port, hospital, department, frozenset(see) - {hospital})


def _address(host: Any, port: Any) -> bool:
    return isinstance(host, str) and bool(host) and isinstance(port, int) and not isinstance(port, bool) \
        and 0 < port < 65536


def _name(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 64 and value.strip() == value
