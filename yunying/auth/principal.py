"""Who is asking and what they may see: the contract between identification and authorization.

Every face (DICOMweb, DIMSE, front-end routers) turns its credentials into one `Principal`;
`yunying.auth` decides with it; the index filters with its `Visibility` (issue 11, design.md
"Identity, access and audit"). This module has no dependencies so that every layer can use it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

DEFAULT_HOSPITAL = "default"  # a peer, user or key configured without a hospital belongs here

# Permissions (scopes of system clients use the same names)
DICOMWEB_READ = "dicomweb.read"
DICOMWEB_WRITE = "dicomweb.write"
DICOMWEB_DELETE = "dicomweb.delete"
DOWNLOAD = "download"
ADMIN = "admin"

PrincipalKind = Literal["user", "system", "share", "patient", "peer", "launch", "anonymous"]


@dataclass(frozen=True)
class Visibility:
    """Which studies exist for a principal; everything outside answers 404.

    A study is visible when any clause holds: its origin hospital is in `hospitals` (and, when
    `departments` is not None, its department is one of them), or its UID is in `studies`, or
    (for series-bound grants) the asked series is in `series`. `everything` is for break-glass
    and explicitly platform-wide system clients only. `until` (wall-clock seconds) is when the
    earliest of its grants expires: whoever caches it must look again by then (not compared,
    so one scope per set of studies stays one cache entry in yunying.scope).
    """

    everything: bool = False
    hospitals: frozenset[str] = frozenset()
    departments: frozenset[str] | None = None
    studies: frozenset[str] = frozenset()
    series: frozenset[str] = frozenset()
    until: float | None = field(default=None, compare=False)

    @property
    def is_empty(self) -> bool:
        return not (self.everything or self.hospitals or self.studies or self.series)

    @property
    def shared(self) -> bool:
        """Whether studies or series were shared with the principal (grants, capability tokens)."""
        return bool(self.studies or self.series)

    def grants_only(self) -> Visibility:
        """Only what was shared: the hospitals and departments of roles dropped."""
        return Visibility(studies=self.studies, series=self.series, until=self.until)


EVERYTHING = Visibility(everything=True)
NOTHING = Visibility()


@dataclass(frozen=True)
class Principal:
    """An identified caller: a user, a system client, a share or patient token, a DIMSE peer."""

    kind: PrincipalKind
    id: str  # user id, client id, token id or AE title: never a patient identifier
    hospital: str | None = DEFAULT_HOSPITAL
    roles: frozenset[str] = frozenset()
    permissions: frozenset[str] = frozenset()
    visibility: Visibility = NOTHING
    token_id: str | None = None  # the session / token / key it came with (revocation, audit)
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    def may(self, permission: str) -> bool:
        return permission in self.permissions
