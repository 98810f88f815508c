"""Per-association tallies and the one log line per association (AE titles, address, counts)."""
from __future__ import annotations

import logging
import os
import select
import socket
import ssl
import threading
import time
import weakref
from collections import Counter
from queue import Empty
from typing import Any

from pynetdicom import _config
from pynetdicom.events import Event
from pynetdicom.transport import AssociationSocket

from dimse.deadlines import bound_acceptor

log = logging.getLogger("yunying.dimse")

_lock = threading.Lock()
_tallies: dict[int, tuple[float, Counter[str]]] = {}


def tally(event: Event, what: str, n: int = 1) -> None:
    """Count one operation outcome ("stored", "store_failed", "find", "moved" ...) on the association."""
    with _lock:
        entry = _tallies.setdefault(id(event.assoc), (time.monotonic(), Counter()))
        entry[1][what] += n


RECV_PREALLOC = 1 << 20  # bytes: PDUs up to this are read into one preallocated buffer
IDLE_WAIT_S = 0.001  # pynetdicom's own idle sleep (DUL._run_loop_delay)
REACTOR_WAIT_S = 0.005  # how long an acceptor's reactor waits for a request per loop


class _Waker:
    """A pipe the DUL's select() also watches: written when a primitive is queued for sending.

    Its descriptors are plain integers, and another thread may wake it after the association
    closed it: without the lock and the `_closed` check, that write went to whatever the
    number had been reused for since, e.g. the socket of the next association (a stray b"x"
    that made its DUL read garbage and abort it; found by CI).
    """

    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        os.set_blocking(self.r, False)
        os.set_blocking(self.w, False)
        self._closed = False
        self._lock = threading.Lock()

    def wake(self) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                os.write(self.w, b"x")
            except (BlockingIOError, OSError):  # already pending
                pass

    def drain(self) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                os.read(self.r, 4096)
            except (BlockingIOError, OSError):
                pass

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                os.close(self.r)
                os.close(self.w)


class WakingSocket(AssociationSocket):
    """An AssociationSocket whose `ready` waits for incoming data instead of only polling.

    pynetdicom's DUL loop, when idle, sleeps `_run_loop_delay` (1 ms), then looks for a
    primitive to send, then polls the socket with a zero timeout: every incoming PDU, and
    every message another thread queues (a C-FIND response, a C-MOVE pending response),
    waited up to a millisecond.  With the sleep set to zero, this `ready` waits in select()
    up to that same millisecond for incoming data *or* a queued primitive (`_Waker`), so the
    idle loop costs what it did and both directions go as soon as there is something to do.
    Measured here: C-STORE sub-operations to DCMTK storescp 520 -> 770 instances/s.
    """

    _yy_waker: _Waker

    def recv(self, nr_bytes: int) -> bytearray:
        """`nr_bytes` from the socket (fewer only if the peer closed it), as pynetdicom's recv.

        pynetdicom reads in 4 KiB pieces, each its own recv() call and bytearray extension: a
        512x512 CT slice was ~130 calls and most of the DUL thread's ~2 ms per C-STORE. This
        reads into one buffer of the full size; a length beyond RECV_PREALLOC (a peer ignoring
        our maximum PDU size, or garbage) is read in pieces, so memory follows the bytes that
        actually arrive, never the length a PDU header claims.
        """
        sock = self.socket
        if sock is None:
            raise OSError("the association's socket is closed")
        if nr_bytes > RECV_PREALLOC:
            out = bytearray()
            while len(out) < nr_bytes:
                piece = sock.recv(min(RECV_PREALLOC, nr_bytes - len(out)))
                if not piece:
                    break
                out += piece
            return out
        buf = bytearray(nr_bytes)
        view = memoryview(buf)
        got = 0
        while got < nr_bytes:
            n = sock.recv_into(view[got:], nr_bytes - got)
            if not n:  # the peer closed the connection: what was read, as pynetdicom returns
                view.release()
                del buf[got:]
                return buf
            got += n
        return buf

    @property
    def ready(self) -> bool:
        sock = self.socket
        if sock is None or self._is_connected is False:
            return False
        waker = self._yy_waker
        if waker._closed:  # EVT_CONN_CLOSE ran (in this, the DUL's, thread): poll as before
            time.sleep(IDLE_WAIT_S)
            return False
        try:
            ready, _, _ = select.select([sock, waker.r], [], [], IDLE_WAIT_S)  # type: ignore[type-var]
        except (OSError, TimeoutError, ValueError):
            if waker._closed:
                return False
            self.event_queue.put("Evt17")  # transport connection closed, as pynetdicom does
            return False
        if waker.r in ready:
            waker.drain()  # the DUL loop takes the queued primitive on its next pass
        return sock in ready


def wake_on_data(assoc: Any) -> None:
    """Make the association's DUL read incoming PDUs, and send queued ones, without its
    polling delay (see WakingSocket), and read them only when no other thread owns the socket
    (SocketOwner).  Called at EVT_CONN_OPEN: in the DUL thread for an association we request,
    before the DUL thread starts for one we accept, so the DUL never runs its unguarded read."""
    dul = assoc.dul
    dul_socket = getattr(dul, "socket", None)
    if type(dul_socket) is not AssociationSocket or isinstance(dul_socket.socket, ssl.SSLSocket):
        return
    waker = _Waker()
    weakref.finalize(dul_socket, waker.close)
    dul_socket._yy_waker = waker  # type: ignore[attr-defined]
    dul_socket.__class__ = WakingSocket
    queue = dul.to_provider_queue
    put = queue.put

    def put_and_wake(item: Any, block: bool = True, timeout: float | None = None) -> None:
        put(item, block, timeout)
        waker.wake()

    queue.put = put_and_wake
    dul._run_loop_delay = 0
    dul._yy_owner = SocketOwner(dul, hold=bool(getattr(assoc, "is_acceptor", False)))


OWNED_WAIT_S = 0.005  # the DUL's loop while the socket is owned: fewer wake-ups competing for the GIL
HOLD_S = 2.0  # longest an accepted association's DUL waits for its EVT_ESTABLISHED handler to decide


class SocketOwner:
    """Lets another thread read an association's incoming PDUs itself, the DUL thread not.

    A C-STORE sub-operation's response then goes from the socket straight to the thread that
    waits for it (`fastsend.read_response`): no DUL loop, no state machine, no DIMSE decoding
    and no hand-over between threads (together ~0.3 ms per sub-operation here).  The DUL
    reads a PDU only under `lock`, after looking again that one is there (its select() may
    have seen data the owner has taken since), and never while `owned`; the owner takes
    ownership under the same lock, so the two never read the same socket at once.

    The guard is installed with the wake-ups when the connection opens (wake_on_data), never
    later: installed when ownership was first wanted, a DUL thread already inside pynetdicom's
    own unguarded `_is_transport_event` (waiting in select()) read the first C-STORE response
    itself when the machine was loaded, and the owner waited for it until the DIMSE timeout
    (the C-MOVE requester saw no response at all).
    """

    def __init__(self, dul: Any, hold: bool = False) -> None:
        self.lock = threading.Lock()
        self.owned = False
        # An association we accept: once it is established (Sta6) the DUL reads nothing until
        # the EVT_ESTABLISHED handler took the socket (fastrecv) or let it be (`decide`). Else
        # a peer's first P-DATA, sent as soon as the A-ASSOCIATE-AC arrived, was often read by
        # the DUL before the handler could take the socket, on a loaded machine, and the whole
        # association fell back to pynetdicom (~2 ms more per C-STORE; issue 9).
        self.decided = threading.Event()
        if not hold:
            self.decided.set()
        self._held_since: float | None = None
        self.returned = threading.Event()  # wakes the DUL when the owner gives the socket back
        self.owned_wait = OWNED_WAIT_S  # fastrecv owns a socket for the whole association: longer
        self.reads = 0  # PDUs the DUL has read (under `lock`): fastrecv takes over only after the A-ASSOCIATE-RQ alone
        sock: Any = dul.socket
        check = dul._is_transport_event  # pynetdicom's own

        def is_transport_event() -> bool:
            if dul.state_machine.current_state == "Sta13":  # association gone: read or close as ever
                return bool(check())
            if self.owned:  # nothing to read; queued events are still served
                self.returned.wait(self.owned_wait)
                return False
            if not self.decided.is_set() and self.reads and dul.state_machine.current_state == "Sta6":
                now = time.monotonic()
                self._held_since = self._held_since or now
                if now - self._held_since < HOLD_S:
                    self.decided.wait(REACTOR_WAIT_S)  # queued events (a release, an abort) still go out
                    return False
                self.decided.set()  # nobody decided: the DUL reads as ever
            if not sock.ready:  # waits in select() up to IDLE_WAIT_S (WakingSocket)
                return False
            with self.lock:
                raw = sock.socket
                try:
                    if self.owned or raw is None or not select.select([raw], [], [], 0)[0]:
                        return False
                except (OSError, ValueError):  # closed meanwhile: `ready` reports it next pass
                    return False
                dul._read_pdu_data()  # what pynetdicom's does once its socket is ready
                self.reads += 1
                return True

        dul._is_transport_event = is_transport_event

    def take(self, wait: float = OWNED_WAIT_S) -> None:
        """Own the socket; the DUL's loop meanwhile wakes every `wait` seconds (queued events)."""
        with self.lock:
            self.owned_wait = wait
            self.owned = True
            self.returned.clear()
        self.decided.set()

    def give_back(self) -> None:
        self.owned = False
        self.returned.set()
        self.decided.set()

    def decide(self) -> None:
        """The DUL may read again (an accepted association its handler leaves to pynetdicom)."""
        self.decided.set()

    @staticmethod
    def of(assoc: Any) -> SocketOwner | None:
        """The association's owner; None when its socket is not plain TCP with the DUL
        wake-ups (TLS: pynetdicom reads everything)."""
        return getattr(assoc.dul, "_yy_owner", None)


def close_waker(assoc: Any) -> None:
    waker = getattr(getattr(assoc.dul, "socket", None), "_yy_waker", None)
    if waker is not None:
        waker.close()


def wait_for_requests(assoc: Any) -> None:
    """An acceptor's reactor sleeps 1 ms per loop before it looks for a request: let its
    non-blocking look wait up to REACTOR_WAIT_S instead, so a request arriving then is served
    at once.  Only the reactor's own non-blocking calls wait (send_* calls block anyway)."""
    dimse = assoc.dimse
    get_msg = dimse.get_msg
    msg_queue = dimse.msg_queue

    def get_msg_waiting(block: bool = False) -> Any:
        if not block and threading.current_thread() is assoc:
            try:
                return msg_queue.get(timeout=REACTOR_WAIT_S)
            except Empty:
                return None, None
        return get_msg(block)

    dimse.get_msg = get_msg_waiting


def set_nodelay(event: Event) -> None:
    """EVT_CONN_OPEN: disable Nagle's algorithm (measured-facts: DCMTK peers stall ~40 ms per
    message), and read incoming PDUs without the DUL's polling delay."""
    sock: Any = getattr(event.assoc.dul.socket, "socket", None)
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # already closed by the peer
            pass
    if event.assoc.is_acceptor:
        bound_acceptor(event.assoc)  # junk never holds a slot (issue 10 part 4)
    wake_on_data(event.assoc)


def on_established(event: Event) -> None:
    """EVT_ESTABLISHED: start the tally and log who connected."""
    with _lock:
        _tallies[id(event.assoc)] = (time.monotonic(), Counter())
    wait_for_requests(event.assoc)
    rq = event.assoc.requestor
    log.info("association %s -> %s from %s:%s accepted (%d contexts)",
             rq.ae_title, event.assoc.acceptor.ae_title, rq.address, rq.port,
             len(event.assoc.accepted_contexts))


def on_closed(event: Event) -> None:
    """EVT_CONN_CLOSE: log the association's counts (no patient data)."""
    close_waker(event.assoc)
    with _lock:
        entry = _tallies.pop(id(event.assoc), None)
    if entry is None:
        return
    started, counts = entry
    rq = event.assoc.requestor
    how = ("released" if event.assoc.is_released else
           "aborted" if event.assoc.is_aborted else "closed")
    summary = " ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "no operations"
    log.info("association %s -> %s from %s:%s %s after %.1fs: %s", rq.ae_title,
             event.assoc.acceptor.ae_title, rq.address, rq.port, how,
             time.monotonic() - started, summary)


def quiet_pynetdicom() -> None:
    """No identifiers (patient data) in pynetdicom's log, which keeps only warnings and errors."""
    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
