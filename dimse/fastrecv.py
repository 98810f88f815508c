"""The lean data path of storage associations: P-DATA read straight from the socket.

pynetdicom spends ~2 ms of CPU per received C-STORE before our handler runs (measured in
benchmarks/floors.py: a no-op pynetdicom SCP tops out near 280-340 CT instances/s on this
machine): the DUL thread decodes each P-DATA PDU into objects, the state machine queues
them, the DIMSE layer rebuilds the command set through pydicom, the reactor polls for it,
and the response travels back the same way.  An association whose accepted contexts are all
storage (we being the SCP) or Verification is served here instead, once pynetdicom has
negotiated it (EVT_ESTABLISHED): the association thread takes the socket (SocketOwner, as
fastsend does for sending), reassembles the PDVs of each message (PS3.8 9.3.5, E.2), decodes
the command set (PS3.7 E.1), calls the same C-STORE handler pynetdicom would have called, and
writes the C-STORE-RSP as one P-DATA-TF PDU.  Every other PDU (A-RELEASE-RQ, A-ABORT, ...)
goes to pynetdicom's DUL as if it had read it, so release, abort and their events stay
pynetdicom's; a malformed P-DATA is pynetdicom's Evt19 (A-ABORT, PS3.8 9.2 AA-8), and an
instance cut off by it, or by the connection closing, is never stored.

It relies on pynetdicom internals (DUL event queue, _decode_pdu, _recv_pdu, _idle_timer,
the association's accepted contexts): PINNED is the version it was written and tested
against; with any other version every association is pynetdicom's as before.

The receive loop itself (dimse/pdata.py) imports no pynetdicom: with ingest worker processes
the association's socket is lent to one of them (`_in_worker`), which parses and writes each
instance itself; this thread then only runs the handler's decision for each message it
reports, and takes the socket back for release or abort.
"""
from __future__ import annotations

import logging
import select
import socket
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import pynetdicom

from dimse.associations import SocketOwner
from dimse.pdata import POLL_S, Cx, Ended, Receiver, Request, Spec
from dimse.uids import VERIFICATION
from yunying.logsafe import summary

log = logging.getLogger("yunying.dimse")
PINNED = "3.0.4"
STORAGE_SERVICE = "1.2.840.10008.4.2"
OWNED_IDLE_S = 0.25  # the DUL's loop while this path owns the socket (it only sends queued events then)
STOP_WAIT_S = 5.0  # how long a lent worker gets to end its loop once the association ended here
__all__ = ["PINNED", "Receiver", "StoreEvent", "eligible", "serve"]


class Context:
    """The presentation context a message came on (what handlers read of pynetdicom's)."""

    def __init__(self, cx: Cx) -> None:
        self.context_id = cx.context_id
        self.abstract_syntax = cx.abstract_syntax
        self.transfer_syntax = cx.transfer_syntax


class StoreEvent:
    """What an EVT_C_STORE handler reads of pynetdicom's Event: assoc, request, context, data.

    From a lent worker (`_in_worker`) there is no data: `written` is what the worker wrote
    (yunying.writing.Written, or the exception writing raised, or None when it wrote nothing)
    and `rewrite` asks it to write the same bytes again."""

    def __init__(self, assoc: Any, request: Request, context: Context, data: bytearray,
                 written: Any = None, rewrite: Callable[[], Any] | None = None) -> None:
        self.assoc, self.request, self.context, self._data = assoc, request, context, data
        self.written, self.rewrite = written, rewrite

    def encoded_dataset(self, include_meta: bool = False) -> memoryview:
        assert not include_meta, "the lean path hands over the data set only"
        return memoryview(self._data)  # the handler joins it to the file meta: one copy, not two


Handler = Callable[[StoreEvent], Any]  # returns a status: int, or a Dataset with Status (+ ErrorComment)
Lease = Callable[[], AbstractContextManager[Any]]  # Archive.lease_worker: a yunying.workers.Leased or None


def eligible(assoc: Any) -> bool:
    """Plain TCP, our pynetdicom, an acceptor whose contexts are all storage SCP or Verification."""
    if pynetdicom.__version__ != PINNED or not assoc.is_acceptor or SocketOwner.of(assoc) is None:
        return False
    from pynetdicom.sop_class import uid_to_service_class

    for cx in assoc.accepted_contexts:
        uid = str(cx.abstract_syntax)
        if uid == VERIFICATION:
            continue
        if getattr(uid_to_service_class(uid), "uid", None) != STORAGE_SERVICE or not cx.as_scp:
            return False
    return bool(assoc.accepted_contexts) and not assoc.acceptor.accepted_common_extended


def serve(assoc: Any, handler: Handler, lease: Lease | None = None, worker_args: tuple[Any, ...] = ()) -> None:
    """Serve the association's P-DATA until another PDU arrives or the connection ends
    (EVT_ESTABLISHED, in the association thread: its reactor waits until this returns).
    With `lease`, in a lent worker process when one is free (`worker_args`: the origin and
    the file meta's implementation of what it stores), else here."""
    owner = SocketOwner.of(assoc)
    sock: socket.socket | None = getattr(assoc.dul.socket, "socket", None)
    if owner is None or sock is None:
        return
    # the DUL then wakes 4 times a second, not 200: each wake-up took the GIL from the store
    # running in this thread, and on a loaded machine got it back late
    owner.take(wait=OWNED_IDLE_S)
    if owner.reads != 1:  # the DUL read a PDU after the A-ASSOCIATE-RQ: pynetdicom serves it all
        log.info("association from %s: its DUL read a PDU first, pynetdicom serves it", assoc.requestor.ae_title)
        owner.give_back()
        return
    ended = Ended("closed")
    try:
        contexts = [Cx(int(cx.context_id), str(cx.abstract_syntax), str(cx.transfer_syntax[0]), bool(cx.as_scp))
                    for cx in assoc.accepted_contexts]
        max_pdu = int(assoc.requestor.maximum_length or 0)
        with (lease or (lambda: nullcontext(None)))() as leased:
            if leased is not None:
                spec = Spec(contexts, max_pdu, assoc.network_timeout, *worker_args)
                ended = _in_worker(assoc, sock, handler, leased, spec)
            else:
                def local(fields: dict[int, bytes], cx: Cx, data: bytearray) -> tuple[int, str]:
                    return _answer(handler, StoreEvent(assoc, Request(fields), Context(cx), data))
                ended = Receiver(sock, contexts, max_pdu, assoc.network_timeout, local,
                                 lambda: _ended_here(assoc)).run()
        _hand_back(assoc, ended)
    finally:
        if ended.kind != "idle":  # else pynetdicom's reactor sees the idle timer expired and aborts
            assoc.dul._idle_timer.restart()
        owner.give_back()


def _in_worker(assoc: Any, sock: socket.socket, handler: Handler, leased: Any, spec: Spec) -> Ended:
    """The association served by a lent worker (dimse.pdata.serve_in_worker): here, only the
    handler's decision for each C-STORE it wrote, until it reports how the loop ended."""
    conn = leased.conn
    stop_sent = 0.0
    try:
        leased.call("dimse.pdata:serve_in_worker", (spec,), sock.fileno())
        while True:
            if not select.select([conn], [], [], POLL_S)[0]:  # conn.poll builds a selector per call
                if _ended_here(assoc) and not stop_sent:
                    conn.send(("stop",))
                    stop_sent = time.monotonic()
                elif stop_sent and time.monotonic() - stop_sent > STOP_WAIT_S:
                    raise TimeoutError("the worker did not end its loop")
                continue
            message = conn.recv()
            if message[0] == "end":
                # after a stop the pipe may still hold an answer the worker never read: retire it
                leased.broken = bool(stop_sent)
                return message[1]  # type: ignore[no-any-return]
            _, fields, cx_id, written = message
            cx = next(c for c in spec.contexts if c.context_id == cx_id)

            def rewrite() -> Any:
                conn.send(("rewrite",))
                return conn.recv()[3]
            event = StoreEvent(assoc, Request(fields), Context(cx), bytearray(), written, rewrite)
            conn.send(("rsp", *_answer(handler, event)))
    except (EOFError, OSError, TimeoutError, StopIteration, ValueError, IndexError) as exc:
        # the worker died (or spoke nonsense) mid-association: what it was writing was never
        # acknowledged; the peer gets an A-ABORT and resends (nothing acknowledged is lost)
        log.error("ingest worker serving an association from %s failed (%s): aborting it",
                  assoc.requestor.ae_title, type(exc).__name__)
        leased.broken = True
        return Ended("abort", reason="ingest worker failed")


def _answer(handler: Handler, event: StoreEvent) -> tuple[int, str]:
    try:
        answer = handler(event)
    except Exception as exc:  # noqa: BLE001 - as pynetdicom answers a failing handler
        log.error("C-STORE handler failed: %s", summary(exc))
        return 0xC211, "internal error while storing"
    if isinstance(answer, int):
        return answer, ""
    return int(getattr(answer, "Status", 0xC211)), str(getattr(answer, "ErrorComment", "") or "")


def _ended_here(assoc: Any) -> bool:
    dul = assoc.dul
    return bool(assoc._kill or dul._kill_thread or dul.state_machine.current_state != "Sta6")


def _hand_back(assoc: Any, ended: Ended) -> None:
    """What ended the loop, to pynetdicom's DUL as if it had read it itself."""
    dul = assoc.dul
    if ended.kind == "pdus":
        for pdu in ended.pdus:
            try:
                decoded, event = dul._decode_pdu(bytearray(pdu))  # as DUL._read_pdu_data
            except Exception:  # noqa: BLE001 - pynetdicom's read treats any decode failure so
                dul.event_queue.put("Evt19")
                return
            dul.event_queue.put(event)
            dul._recv_pdu.put(decoded)
    elif ended.kind == "abort":
        log.warning("association from %s aborted: %s", assoc.requestor.ae_title, ended.reason)
        dul.event_queue.put("Evt19")  # invalid PDU: A-ABORT (AA-8)
    elif ended.kind in ("closed", "stopped"):  # closed, reset, or stalled mid-PDU (deadlines.py)
        dul.event_queue.put("Evt17")
