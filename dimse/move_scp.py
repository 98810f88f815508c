"""C-MOVE SCP (PS3.4 C.4.2): send to a known peer, negotiating each instance's transfer syntax."""
from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.events import Event
from pynetdicom.presentation import build_context

from dimse.access import AccessPolicy
from dimse.associations import tally
from dimse.fastsend import accept_pre_encoded, own_socket, prepare_pdus
from dimse.requestor import HANDLERS
from dimse.retrieve import (
    accepted_syntaxes,
    contexts_for,
    datasets_to_send,
    direct_pending,
    refused,
    resolve_request,
    sub_operations,
)
from dimse.uids import VERIFICATION

if TYPE_CHECKING:
    from yunying.archive import Archive

log = logging.getLogger("yunying.dimse")

def on_c_move(event: Event, archive: Archive, policy: AccessPolicy,
              peers: Mapping[str, tuple[str, int]], tls: ssl.SSLContext | None = None) -> Iterator[Any]:
    """EVT_C_MOVE: destination, number of sub-operations, then (status, dataset) per instance."""
    calling = str(event.assoc.requestor.ae_title).strip()
    dest = str(event.move_destination or "").strip()
    if not policy.may(calling, "move") or dest not in peers:
        # PS3.4 C.4.2.1.5: 0xA801 Refused: Move Destination unknown
        log.info("C-MOVE from %s to unknown destination %r refused", calling, dest)
        tally(event, "move_refused")
        yield None, None
        return
    host, port = peers[dest]
    rows, failure = resolve_request(event, archive, policy.visibility(calling), "move")
    sub: dict[str, Association] = {}

    def grab(e: Event) -> None:
        accept_pre_encoded(e.assoc)
        own_socket(e.assoc)  # responses read by the sending thread itself (fastsend.SocketOwner)
        sub["assoc"] = e.assoc

    contexts = contexts_for(rows) or [build_context(VERIFICATION)]
    options: dict[str, Any] = {"contexts": contexts, "evt_handlers": [*HANDLERS, (evt.EVT_ESTABLISHED, grab)]}
    if getattr(peers[dest], "tls", False):  # a DICOM TLS peer (PS3.15 B.9): our certificate, theirs checked
        if tls is None:
            log.warning("C-MOVE to %s: the peer wants TLS but no tls_cert is configured", dest)
        else:
            options["tls_args"] = (tls, host)
    yield host, port, options
    if failure is not None:
        # pynetdicom only reports a handler's status once the destination is associated
        yield from refused(event, "move_refused", failure)
        return
    yield len(rows)
    log.info("C-MOVE from %s: %d instances to %s", calling, len(rows), dest)
    # The destination is associated by now (pynetdicom associates after the count).
    contexts = sub["assoc"].accepted_contexts if sub else []
    direct_pending(event.assoc)
    datasets = datasets_to_send(archive, rows, lambda cls: accepted_syntaxes(contexts, cls),
                                prepare=(lambda ds: prepare_pdus(sub["assoc"], ds)) if sub else None)
    yield from sub_operations(event, datasets, "move", "moved", len(rows))
