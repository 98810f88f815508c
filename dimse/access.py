"""Device authorization by calling AE title (issue 3, part 3).

Rules: any AE may echo; the AEs in ``settings.peers`` may store, query and retrieve;
``settings.dimse_accept_all`` lets every AE do everything.

Each peer belongs to a hospital (issue 11, yunying.peers): what it stores is that hospital's,
and its C-FIND / C-MOVE / C-GET see that hospital's studies unless its entry says wider. An
AE admitted only by ``dimse_accept_all`` belongs to the default hospital.  An unknown AE that proposes
anything but Verification is rejected at association time (PS3.8 9.3.4: rejected-permanent,
service-user, "calling AE title not recognised"); one that proposes only Verification is
accepted, so C-ECHO works from anywhere.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pynetdicom.events import Event

from dimse.uids import VERIFICATION
from index.model import Origin
from yunying.auth.principal import DICOMWEB_READ, DICOMWEB_WRITE, Principal, Visibility
from yunying.peers import Peer, parse_peer

log = logging.getLogger("yunying.dimse")

# PS3.8 Table 9-21, A-ASSOCIATE-RJ: result, source, reason
REJECTED_PERMANENT = 0x01
SERVICE_USER = 0x01
CALLING_AE_NOT_RECOGNISED = 0x03


@dataclass(frozen=True)
class AccessPolicy:
    """Which calling AE titles may use which DIMSE services."""

    peers: frozenset[str]
    accept_all: bool = False
    hospitals: Mapping[str, Peer] = field(default_factory=dict)  # AE title -> its peers entry

    @classmethod
    def from_peers(cls, peers: Iterable[str] | Mapping[str, object], accept_all: bool = False) -> AccessPolicy:
        entries = {a.strip(): p for a, v in peers.items() if (p := parse_peer(v)) is not None} \
            if isinstance(peers, Mapping) else {}
        return cls(frozenset(p.strip() for p in peers), accept_all, entries)

    def peer(self, aet: str) -> Peer:
        """The peers entry of a calling AE (an AE admitted by accept_all: the default hospital)."""
        return self.hospitals.get(aet.strip()) or _UNLISTED

    def principal(self, aet: str) -> Principal:
        """The calling AE as a principal: its hospital, and what its queries and retrieves see."""
        peer = self.peer(aet)
        return Principal(kind="peer", id=aet.strip(), hospital=peer.hospital,
                         permissions=frozenset({DICOMWEB_READ, DICOMWEB_WRITE}), visibility=peer.visibility)

    def visibility(self, aet: str) -> Visibility:
        return self.peer(aet).visibility

    def origin(self, aet: str) -> Origin:
        """The origin of what a calling AE stores: its hospital and department."""
        peer = self.peer(aet)
        return Origin("dimse", aet.strip(), "", peer.hospital, peer.department)

    def is_known(self, aet: str) -> bool:
        return self.accept_all or aet.strip() in self.peers

    def may(self, aet: str, service: str) -> bool:
        """True when `aet` may use `service` ("echo", "store", "find", "move", "get")."""
        return service == "echo" or self.is_known(aet)

    def on_requested(self, event: Event) -> None:
        """EVT_REQUESTED: reject an unknown AE unless it only proposes Verification."""
        rq = event.assoc.requestor.primitive
        if rq is None:
            return
        aet = str(rq.calling_ae_title).strip()
        if self.is_known(aet):
            return
        proposed = {str(cx.abstract_syntax) for cx in rq.presentation_context_definition_list}
        if proposed <= {VERIFICATION}:
            return
        log.info("association from %r (%s) rejected: calling AE title not recognised",
                 aet, _address(event))
        event.assoc.acse.send_reject(REJECTED_PERMANENT, SERVICE_USER, CALLING_AE_NOT_RECOGNISED)
        # pynetdicom closes the socket right after this handler returns: let the DUL send the
        # A-ASSOCIATE-RJ first (state Sta13, awaiting transport close; PS3.8 Table 9-10).
        deadline = time.monotonic() + 2.0
        while (event.assoc.dul.state_machine.current_state != "Sta13"
               and time.monotonic() < deadline):
            time.sleep(0.001)


def _address(event: Event) -> str:
    addr = event.assoc.requestor.address
    return f"{addr}:{event.assoc.requestor.port}"


_UNLISTED = Peer("", 0)  # an AE admitted by accept_all: the default hospital, seeing only it


def policy_for(peers: Mapping[str, object], accept_all: bool) -> AccessPolicy:
    """The policy the settings describe."""
    return AccessPolicy.from_peers(peers, accept_all)
