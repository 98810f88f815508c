"""DIMSE peers: where each AE title listens, which hospital it belongs to, what it may see.

Two forms, mixable in one peers file (issue 11, part 8):
    {"CT1": ["10.0.0.5", 104]}                                   # the default hospital
    {"PACS2": {"host": "10.0.1.9", "port": 104, "hospital": "h2",
               "department": "radiology", "see": ["h2", "h3"]}}   # or "see": "all"
    {"PACS3": {"host": "10.0.2.1", "port": 2762, "tls": true}}  # C-MOVE to it over DICOM TLS
    {"RIS": {"host": "10.0.0.7", "port": 104, "person_matching": true}}  # C-FIND by person (issue 15)
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
    tls: bool  # we reach it over DICOM TLS (issue 12 part 7)
    person_matching: bool  # its C-FIND PatientID + issuer stands for every ID linked to the person

    def __new__(cls, host: str, port: int, hospital: str = DEFAULT_HOSPITAL,
                department: str | None = None, see: frozenset[str] | None = frozenset(),
                tls: bool = False, person_matching: bool = False) -> Self:
        self = super().__new__(cls, (host, port))
        self.hospital, self.department, self.see, self.tls = hospital, department, see, tls
        self.person_matching = person_matching
        return self

    def __reduce__(self) -> Any:  # copies and pickles keep the hospital
        return (Peer, (self[0], self[1], self.hospital, self.department, self.see, self.tls,
                       self.person_matching))

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
    if not isinstance(value, dict) or set(value) - {"host", "port", "hospital", "department", "see", "tls",
                                                     "person_matching"}:
        return None
    tls, persons = value.get("tls", False), value.get("person_matching", False)
    if not isinstance(tls, bool) or not isinstance(persons, bool):
        return None
    host, port = value.get("host"), value.get("port")
    hospital = value.get("hospital", DEFAULT_HOSPITAL)
    department = value.get("department")
    see = value.get("see", [])
    if not _address(host, port) or not _name(hospital) or not (department is None or _name(department)):
        return None
    if see == ALL:
        return Peer(host, port, hospital, department, None, tls, persons)
    if not isinstance(see, list) or not all(_name(h) for h in see):
        return None
    return Peer(host, port, hospital, department, frozenset(see) - {hospital}, tls, persons)


def _address(host: Any, port: Any) -> bool:
    return isinstance(host, str) and bool(host) and isinstance(port, int) and not isinstance(port, bool) \
        and 0 < port < 65536


def _name(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 64 and value.strip() == value
