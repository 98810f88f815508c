"""DIMSE SCU operations as a Python API, for collectors, admins and tests.

One association per operation: a stuck or confused association never outlives its call.
Every association we request sets TCP_NODELAY and carries the pynetdicom reader-race fix
(dimse/requestor.py); every wait is bounded by `Peer.timeout`.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydicom import Dataset
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.events import Event
from pynetdicom.presentation import (
    PresentationContext,
    StoragePresentationContexts,
    build_context,
    build_role,
)

from dimse import uids
from dimse.associations import quiet_pynetdicom
from dimse.fastsend import accept_pre_encoded, own_socket
from dimse.requestor import HANDLERS
from dimse.retrieve import accepted_syntaxes, contexts_for, dataset_to_send
from dimse.syntaxes import NATIVE, STORAGE_SYNTAXES
from index.model import Origin
from yunying.errors import ArchiveError

if TYPE_CHECKING:
    from yunying.archive import Archive

log = logging.getLogger("yunying.dimse")

UNCOMPRESSED = NATIVE
MODELS = {
    ("patient", "find"): uids.PATIENT_ROOT_FIND, ("study", "find"): uids.STUDY_ROOT_FIND,
    ("patient", "move"): uids.PATIENT_ROOT_MOVE, ("study", "move"): uids.STUDY_ROOT_MOVE,
    ("patient", "get"): uids.PATIENT_ROOT_GET, ("study", "get"): uids.STUDY_ROOT_GET,
}


@dataclass(frozen=True)
class Peer:
    """A remote AE and how we call it."""

    host: str
    port: int
    called: str = "ANY-SCP"
    aet: str = "YUNYING"  # our (calling) AE title
    timeout: float = 60.0  # ACSE, DIMSE and network timeouts, seconds


class DimseFailure(Exception):
    """The peer refused the association or answered with a failure status."""

    def __init__(self, message: str, status: int | None = None, comment: str = "") -> None:
        super().__init__(message + (f" (0x{status:04X})" if status is not None else "")
                         + (f": {comment}" if comment else ""))
        self.status, self.comment = status, comment


@dataclass
class RetrieveResult:
    """Final C-MOVE / C-GET (or C-STORE batch) outcome, PS3.4 C.4.2.1.6 counts."""

    status: int
    completed: int = 0
    failed: int = 0
    warning: int = 0
    comment: str = ""
    failed_sops: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == 0x0000


@contextmanager
def associate(peer: Peer, contexts: Sequence[PresentationContext], *,
              ext_neg: list[Any] | None = None, handlers: list[Any] | None = None) -> Iterator[Association]:
    """An established association, released (or aborted after an error) on exit."""
    quiet_pynetdicom()  # response identifiers are patient data
    ae = AE(ae_title=peer.aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = peer.timeout
    ae.requested_contexts = list(contexts)
    assoc = ae.associate(peer.host, peer.port, ae_title=peer.called, ext_neg=ext_neg,
                         evt_handlers=[*HANDLERS, *(handlers or [])])
    if not assoc.is_established:
        why = "rejected" if assoc.is_rejected else "aborted" if assoc.is_aborted else "failed"
        raise DimseFailure(f"association with {peer.called}@{peer.host}:{peer.port} {why}")
    try:
        yield assoc
    except BaseException:
        assoc.abort()
        raise
    else:
        assoc.release()


def _status(rsp: Dataset | None, what: str) -> int:
    """The status of a response; an empty one means a timeout, abort or invalid response."""
    if rsp is None or "Status" not in rsp:
        raise DimseFailure(f"{what}: no valid response (timeout, abort or invalid message)")
    return int(rsp.Status)


def echo(peer: Peer) -> int:
    """C-ECHO; returns the status (0x0000 success)."""
    with associate(peer, [build_context(uids.VERIFICATION)]) as assoc:
        return _status(assoc.send_c_echo(), "C-ECHO")


def find(peer: Peer, identifier: Dataset, root: str = "study") -> Iterator[Dataset]:
    """C-FIND: yield each match; DimseFailure on a failure status."""
    model = MODELS[(root, "find")]
    with associate(peer, [build_context(model, UNCOMPRESSED)]) as assoc:
        for rsp, ident in assoc.send_c_find(identifier, model):
            code = _status(rsp, "C-FIND")
            if code in (0xFF00, 0xFF01):
                if ident is None:
                    raise DimseFailure("C-FIND pending response without an identifier", code)
                yield ident
            elif code == 0x0000:
                return
            elif code == 0xFE00:
                raise DimseFailure("C-FIND cancelled", code)
            else:
                raise DimseFailure("C-FIND failed", code, str(rsp.get("ErrorComment", "")))
        raise DimseFailure("C-FIND ended without a final response")


def _retrieve_result(responses: Iterator[tuple[Dataset, Dataset | None]], what: str) -> RetrieveResult:
    result: RetrieveResult | None = None
    for rsp, ident in responses:
        code = _status(rsp, what)
        result = RetrieveResult(
            code, int(rsp.get("NumberOfCompletedSuboperations", 0) or 0),
            int(rsp.get("NumberOfFailedSuboperations", 0) or 0),
            int(rsp.get("NumberOfWarningSuboperations", 0) or 0), str(rsp.get("ErrorComment", "")))
        if ident is not None and "FailedSOPInstanceUIDList" in ident:
            uids = ident.FailedSOPInstanceUIDList
            result.failed_sops = [str(u) for u in ([uids] if isinstance(uids, str) else uids) if u]
        if code not in (0xFF00, 0xFF01):
            return result
    raise DimseFailure(f"{what} ended without a final response")


def move(peer: Peer, identifier: Dataset, destination: str, root: str = "study") -> RetrieveResult:
    """C-MOVE the identified instances to `destination` (an AE the peer knows)."""
    model = MODELS[(root, "move")]
    with associate(peer, [build_context(model, UNCOMPRESSED)]) as assoc:
        return _retrieve_result(assoc.send_c_move(identifier, destination, model), "C-MOVE")


StoreCallback = Callable[[bytes], int]


def get(peer: Peer, identifier: Dataset, on_instance: StoreCallback | Archive, root: str = "study",
        sop_classes: Sequence[str] | None = None, compressed: bool | Sequence[str] = False) -> RetrieveResult:
    """C-GET; each instance (file meta + data set bytes) goes to `on_instance` or into an archive.

    We offer the SCP role for `sop_classes` (default: pynetdicom's common storage classes) in
    the uncompressed syntaxes; with `compressed`, each class gets a second context offering
    every compressed syntax (or those listed in `compressed`), so a peer can send what it
    stores; the peer picks ONE syntax per context, so list one to insist on it. PS3.8 allows 128 contexts in
    all: 127 classes, or 63 with `compressed`.
    """
    model = MODELS[(root, "get")]
    per_class = 2 if compressed else 1
    classes = list(sop_classes or [str(cx.abstract_syntax) for cx in StoragePresentationContexts])
    classes = classes[: 127 // per_class]
    offered = ([str(ts) for ts in compressed] if not isinstance(compressed, bool) else
               [ts for ts in STORAGE_SYNTAXES if ts not in UNCOMPRESSED] if compressed else [])
    contexts = [build_context(model, UNCOMPRESSED)]
    for c in classes:
        contexts.append(build_context(c, UNCOMPRESSED))
        if offered:
            contexts.append(build_context(c, offered))
    roles = [build_role(c, scp_role=True) for c in classes]
    store = on_instance if callable(on_instance) else _into_archive(on_instance, peer.called)

    def on_c_store(event: Event) -> int:
        try:
            return store(event.encoded_dataset())
        except ArchiveError as exc:
            log.info("C-GET from %s: instance refused: %s", peer.called, exc.reason)
            return exc.dimse_status
        except Exception as exc:  # noqa: BLE001 - the edge: any failure becomes a status
            log.error("C-GET from %s: instance failed: %s", peer.called, type(exc).__name__)
            return 0xC000

    with associate(peer, contexts, ext_neg=roles, handlers=[(evt.EVT_C_STORE, on_c_store)]) as assoc:
        return _retrieve_result(assoc.send_c_get(identifier, model), "C-GET")


def _into_archive(archive: Archive, source: str) -> StoreCallback:
    def store(raw: bytes) -> int:
        archive.store(raw, Origin("dimse", source))
        return 0x0000
    return store


def store(peer: Peer, archive: Archive, study: str, series: str | None = None,
          sop_instance: str | None = None) -> RetrieveResult:
    """C-STORE archive content to a peer, each instance as stored when accepted, else uncompressed."""
    rows = archive.instances(study, series, sop_instance)
    result = RetrieveResult(0x0000)
    with associate(peer, contexts_for(rows)) as assoc:
        accept_pre_encoded(assoc)
        own_socket(assoc)  # responses read by this thread (fastsend.SocketOwner)
        for row in rows:
            ds = dataset_to_send(archive, row, accepted_syntaxes(assoc.accepted_contexts, row.sop_class))
            try:
                code = _status(assoc.send_c_store(ds), "C-STORE")
            except (ValueError, AttributeError) as exc:  # no accepted context for it
                log.info("C-STORE of %s to %s not possible: %s", row.sop, peer.called, exc)
                code = 0xA900
            if code == 0x0000:
                result.completed += 1
            elif code in (0x0107, 0x0116) or code >> 12 == 0xB:
                result.warning += 1
            else:
                result.failed += 1
                result.failed_sops.append(row.sop)
    if result.failed:
        result.status = 0xA702 if not (result.completed or result.warning) else 0xB000
    elif result.warning:
        result.status = 0xB000
    return result
