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
from dimse.identifier import InvalidIdentifier, compile_retrieve, root_of
from dimse.requestor import HANDLERS
from dimse.retrieve import (
    accepted_syntaxes,
    contexts_for,
    datasets_to_send,
    direct_pending,
    resolve,
    sub_operations,
)
from dimse.store_scp import status
from dimse.uids import VERIFICATION
from yunying.errors import ArchiveError

if TYPE_CHECKING:
    from yunying.archive import Archive

log = logging.getLogger("yunying.dimse")

PENDING, CANCELLED = 0xFF00, 0xFE00


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
    problem: str | None = None
    status_code = 0xA900
    rows = []
    try:
        rows = resolve(archive, compile_retrieve(event.identifier, root_of(str(event.request.AffectedSOPClassUID))),
                       policy.visibility(calling))
    except InvalidIdentifier as exc:
        problem, status_code = exc.reason, exc.status
    except ArchiveError as exc:
        problem, status_code = exc.reason, exc.dimse_status
    except Exception as exc:  # noqa: BLE001 - the edge: any failure becomes a status
        log.error("C-MOVE from %s: %s while resolving", calling, type(exc).__name__)
        problem, status_code = "internal error while resolving the identifier", 0xC001
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
    if problem is not None:
        # pynetdicom only reports a handler's status once the destination is associated
        tally(event, "move_refused")
        yield 1
        yield status(status_code, problem), None
        return
    yield len(rows)
    log.info("C-MOVE from %s: %d instances to %s", calling, len(rows), dest)
    # The destination is associated by now (pynetdicom associates after the count).
    contexts = sub["assoc"].accepted_contexts if sub else []
    direct_pending(event.assoc)
    datasets = datasets_to_send(archive, rows, lambda cls: accepted_syntaxes(contexts, cls),
                                prepare=(lambda ds: prepare_pdus(sub["assoc"], ds)) if sub else None)
    for code, ds in sub_operations(event, datasets, "move"):
        yield code, ds
        if code == CANCELLED:
            return
    tally(event, "moved", len(rows))
