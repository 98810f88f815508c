"""What C-MOVE and C-GET share: resolving the identifier to instances, and per-instance
transfer syntax negotiation (as stored, else Explicit VR LE, else Implicit VR LE)."""
from __future__ import annotations

import logging
import ssl
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import UID
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_GET, C_MOVE
from pynetdicom.presentation import PresentationContext, build_context

from dimse.associations import tally
from dimse.fastsend import PreEncoded, part10_body, pending_rsp, send_command
from dimse.identifier import (
    InvalidIdentifier,
    RetrieveTarget,
    compile_retrieve,
    root_of,
    study_query,
    study_uids,
)
from dimse.store_scp import status
from dimse.syntaxes import NATIVE, choose_syntax
from index.model import InstanceRow
from yunying.auth.principal import EVERYTHING, Visibility
from yunying.errors import ArchiveError, UnknownResource
from yunying.scope import scoped, visible

if TYPE_CHECKING:
    from yunying.archive import Archive

log = logging.getLogger("yunying.dimse")

MAX_CONTEXTS = 128  # PS3.8 9.3.2.2: presentation context IDs are odd numbers 1-255
# Not a transfer syntax anyone accepts: a stub carrying it fails its C-STORE sub-operation,
# so pynetdicom counts it as failed and lists its SOP Instance UID (PS3.4 C.4.2.1.4.2).
UNSENDABLE = UID("1.2.840.10008.1.2.4.999999")


def resolve(archive: Archive, target: RetrieveTarget, visibility: Visibility = EVERYTHING) -> list[InstanceRow]:
    """The instances a retrieve names that the requester may see; unknown UIDs, and those
    outside its visibility, contribute nothing."""
    if target.patients:
        studies: Iterable[str] = list(study_uids(archive.search(scoped(
            study_query(target.patients, target.issuer, target.studies), visibility))))
    else:
        studies = target.studies
    rows: list[InstanceRow] = []
    for study in studies:
        for series in target.series or (None,):
            if not visible(archive, visibility, study, series):
                continue
            for sop in target.sops or (None,):
                try:
                    rows.extend(archive.instances(study, series, sop))
                except UnknownResource:
                    continue
    return rows


def resolve_request(event: Any, archive: Archive, visibility: Visibility,
                    kind: str) -> tuple[list[InstanceRow], tuple[int, str] | None]:
    """The instances a C-MOVE/C-GET request's identifier names, or, when it cannot be
    resolved, the failure (status, reason) to answer with: the edge, no exception escapes."""
    try:
        target = compile_retrieve(event.identifier, root_of(str(event.request.AffectedSOPClassUID)))
        return resolve(archive, target, visibility), None
    except InvalidIdentifier as exc:
        return [], (exc.status, exc.reason)
    except ArchiveError as exc:
        return [], (exc.dimse_status, exc.reason)
    except Exception as exc:  # noqa: BLE001 - the edge: any failure becomes a status
        calling = str(event.assoc.requestor.ae_title).strip()
        log.error("C-%s from %s: %s while resolving", kind.upper(), calling, type(exc).__name__)
        return [], (0xC001, "internal error while resolving the identifier")


def refused(event: Any, counter: str, failure: tuple[int, str]) -> Iterator[Any]:
    """The rest of a C-MOVE/C-GET handler that answers one failure: pynetdicom wants a
    sub-operation count before any status."""
    tally(event, counter)
    yield 1
    yield status(*failure), None


def contexts_for(rows: Iterable[InstanceRow]) -> list[PresentationContext]:
    """Per SOP class one uncompressed context, plus one per stored encapsulated/other syntax."""
    classes: dict[str, None] = {}
    encoded: dict[tuple[str, str], None] = {}
    for row in rows:
        classes[row.sop_class] = None
        if str(row.transfer_syntax) not in NATIVE:
            encoded[(row.sop_class, str(row.transfer_syntax))] = None
    # uncompressed first, so that every class stays sendable when the limit truncates
    pairs = [(cls, list(NATIVE)) for cls in classes] + [(c, [ts]) for c, ts in encoded]
    return [build_context(cls, syntaxes) for cls, syntaxes in pairs[:MAX_CONTEXTS]]


def accepted_syntaxes(contexts: Iterable[PresentationContext], sop_class: str) -> set[str]:
    return {str(cx.transfer_syntax[0]) for cx in contexts if cx.abstract_syntax == sop_class}


def dataset_to_send(archive: Archive, row: InstanceRow, accepted: set[str]) -> Dataset:
    """The instance in a syntax the peer accepted, or a stub that fails the sub-operation.

    The instance is a PreEncoded data set: the stored bytes as received when the peer
    accepted the stored syntax (no decode, no encode), else the archive's transcoded Part 10
    bytes; the association must take PreEncoded (`fastsend.accept_pre_encoded`).
    """
    ts = choose_syntax(row.transfer_syntax, accepted)
    if ts is not None:
        try:
            parts = getattr(archive, "read_part10_parts", None)
            if ts == row.transfer_syntax and parts is not None:
                body = parts(row)  # the meta is within the first piece
                return PreEncoded(row.sop_class, row.sop, ts, [part10_body(body[0]), *body[1:]])
            raw = archive.read_part10(row, None if ts == row.transfer_syntax else ts)
            return PreEncoded(row.sop_class, row.sop, ts, part10_body(raw))
        except ArchiveError as exc:
            log.info("retrieve of %s as %s failed: %s", row.sop, ts, exc.reason)
        except Exception as exc:  # noqa: BLE001 - counted as a failed sub-operation, no PHI
            log.error("retrieve of %s as %s failed: %s", row.sop, ts, type(exc).__name__)
    else:
        log.info("peer accepted no syntax for %s (stored %s)", row.sop_class, row.transfer_syntax)
    stub = Dataset()
    stub.SOPClassUID, stub.SOPInstanceUID = row.sop_class, row.sop
    stub.file_meta = FileMetaDataset()
    stub.file_meta.TransferSyntaxUID = UNSENDABLE
    return stub


PREFETCH = 4  # instances read ahead while the current one is being sent
READERS = 2  # reads overlap: most of a read is file I/O and decoding, outside the GIL


def datasets_to_send(archive: Archive, rows: list[InstanceRow],
                     accepted_for: Callable[[str], set[str]], depth: int = PREFETCH,
                     prepare: Callable[[Dataset], None] | None = None) -> Iterator[Dataset]:
    """dataset_to_send (then `prepare`) for each row, in order, reading the next `depth`
    instances in worker threads while the caller sends the current one (reading a 512x512 CT
    instance takes ~0.5 ms here, most of it Blosc decoding outside the GIL).  Closing the
    iterator (C-CANCEL) drops what was read ahead."""
    if not rows:
        return
    accepted: dict[str, set[str]] = {}

    def syntaxes(sop_class: str) -> set[str]:
        if sop_class not in accepted:
            accepted[sop_class] = accepted_for(sop_class)
        return accepted[sop_class]

    def read(row: InstanceRow, syntaxes: set[str]) -> Dataset:
        ds = dataset_to_send(archive, row, syntaxes)
        if prepare is not None:
            prepare(ds)  # e.g. fragment into PDUs, off the sending thread
        return ds

    pool = ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="dimse-read")
    ahead: deque[Future[Dataset]] = deque()
    todo = iter(rows)
    try:
        for row in todo:
            ahead.append(pool.submit(read, row, syntaxes(row.sop_class)))
            if len(ahead) > depth:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


PENDING_INTERVAL_S = 0.05  # at most one pending C-MOVE/C-GET response per interval (0: after each)


def direct_pending(assoc: Association, interval: float = PENDING_INTERVAL_S) -> None:
    """Write pending C-MOVE/C-GET responses (PS3.4 C.4.2.1.5, C.4.3.1.4) straight to the
    requester's socket: pynetdicom builds each one through pydicom and its DUL thread
    (~0.3 ms per sub-operation here).  Other responses (the final one) take pynetdicom's path,
    after these.  As for DirectResponses: the handler runs in the association's reactor
    thread and the requester waits for the final response, so nobody else writes meanwhile."""
    dimse = assoc.dimse
    sock: Any = getattr(getattr(assoc.dul, "socket", None), "socket", None)
    if getattr(dimse, "_yy_direct_pending", False) or sock is None or isinstance(sock, ssl.SSLSocket):
        return
    original = dimse.send_msg
    last = [0.0]

    def send_msg(primitive: Any, context_id: int) -> None:
        if not isinstance(primitive, (C_MOVE, C_GET)) or primitive.Status != 0xFF00:
            original(primitive, context_id)
            return
        now = time.monotonic()
        done = sum(n or 0 for n in (primitive.NumberOfCompletedSuboperations,
                                    primitive.NumberOfFailedSuboperations,
                                    primitive.NumberOfWarningSuboperations))
        remaining = primitive.NumberOfRemainingSuboperations
        if interval and now - last[0] < interval and done > 1 and remaining:
            return  # pending responses are optional (PS3.4 C.4.2.3): the next one counts these
        last[0] = now
        send_command(assoc, sock, context_id, pending_rsp(primitive))

    dimse.send_msg = send_msg  # type: ignore[method-assign]
    dimse._yy_direct_pending = True  # type: ignore[attr-defined]


def sub_operations(event: Any, datasets: Iterator[Any], kind: str, done: str,
                   count: int) -> Iterator[tuple[int, Any]]:
    """(Pending, instance) per C-MOVE/C-GET sub-operation; (Cancel, None) once C-CANCEL arrives
    (PS3.4 C.4.2.3) and nothing after it; `count` tallied as `done` when all were sent."""
    try:
        for ds in datasets:
            if event.is_cancelled:
                tally(event, f"{kind}_cancelled")
                yield 0xFE00, None
                return
            yield 0xFF00, ds
    finally:
        datasets.close()  # type: ignore[attr-defined]
    tally(event, done, count)
