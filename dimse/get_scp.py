"""C-GET SCP (PS3.4 C.4.3): C-STORE sub-operations on the requester's own association."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pynetdicom.events import Event

from dimse.access import AccessPolicy
from dimse.associations import tally
from dimse.fastsend import accept_pre_encoded, prepare_pdus
from dimse.identifier import InvalidIdentifier, compile_retrieve, root_of
from dimse.retrieve import (
    accepted_syntaxes,
    datasets_to_send,
    direct_pending,
    resolve,
    sub_operations,
)
from dimse.store_scp import status
from yunying.errors import ArchiveError

if TYPE_CHECKING:
    from yunying.archive import Archive

log = logging.getLogger("yunying.dimse")

PENDING, CANCELLED = 0xFF00, 0xFE00


def on_c_get(event: Event, archive: Archive, policy: AccessPolicy) -> Iterator[Any]:
    """EVT_C_GET: number of sub-operations, then (status, dataset) per instance."""
    calling = str(event.assoc.requestor.ae_title).strip()
    problem, code = None, 0xA900
    rows = []
    if not policy.may(calling, "get"):
        problem, code = "calling AE title not authorized to retrieve", 0xC001
    else:
        try:
            rows = resolve(archive, compile_retrieve(event.identifier, root_of(str(event.request.AffectedSOPClassUID))),
                           policy.visibility(calling))
        except InvalidIdentifier as exc:
            problem, code = exc.reason, exc.status
        except ArchiveError as exc:
            problem, code = exc.reason, exc.dimse_status
        except Exception as exc:  # noqa: BLE001 - the edge: any failure becomes a status
            log.error("C-GET from %s: %s while resolving", calling, type(exc).__name__)
            problem, code = "internal error while resolving the identifier", 0xC001
    if problem is not None:
        tally(event, "get_refused")
        yield 1
        yield status(code, problem), None
        return
    accept_pre_encoded(event.assoc)
    direct_pending(event.assoc)
    yield len(rows)
    # The storage contexts the requester proposed with the SCP role (PS3.7 D.3.3.4).
    ours = [cx for cx in event.assoc.accepted_contexts if cx.as_scu]
    datasets = datasets_to_send(archive, rows, lambda cls: accepted_syntaxes(ours, cls),
                                prepare=lambda ds: prepare_pdus(event.assoc, ds))
    for code, ds in sub_operations(event, datasets, "get"):
        yield code, ds
        if code == CANCELLED:
            return
    tally(event, "got", len(rows))
