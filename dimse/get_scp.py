"""C-GET SCP (PS3.4 C.4.3): C-STORE sub-operations on the requester's own association."""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pynetdicom.events import Event

from dimse.access import AccessPolicy
from dimse.fastsend import accept_pre_encoded, prepare_pdus
from dimse.retrieve import (
    accepted_syntaxes,
    datasets_to_send,
    direct_pending,
    refused,
    resolve_request,
    sub_operations,
)

if TYPE_CHECKING:
    from index.model import InstanceRow
    from yunying.archive import Archive


def on_c_get(event: Event, archive: Archive, policy: AccessPolicy) -> Iterator[Any]:
    """EVT_C_GET: number of sub-operations, then (status, dataset) per instance."""
    calling = str(event.assoc.requestor.ae_title).strip()
    rows: list[InstanceRow] = []
    failure: tuple[int, str] | None = (0xC001, "calling AE title not authorized to retrieve")
    if policy.may(calling, "get"):
        rows, failure = resolve_request(event, archive, policy.visibility(calling), "get")
    if failure is not None:
        yield from refused(event, "get_refused", failure)
        return
    accept_pre_encoded(event.assoc)
    direct_pending(event.assoc)
    yield len(rows)
    # The storage contexts the requester proposed with the SCP role (PS3.7 D.3.3.4).
    ours = [cx for cx in event.assoc.accepted_contexts if cx.as_scu]
    datasets = datasets_to_send(archive, rows, lambda cls: accepted_syntaxes(ours, cls),
                                prepare=lambda ds: prepare_pdus(event.assoc, ds))
    yield from sub_operations(event, datasets, "get", "got", len(rows))
