"""Per-association tallies and the one log line per association (AE titles, address, counts)."""
from __future__ import annotations

import logging
import select
import socket
import ssl
import threading
import time
from collections import Counter
from typing import Any

from pynetdicom import _config
from pynetdicom.events import Event
from pynetdicom.transport import AssociationSocket

log = logging.getLogger("yunying.dimse")

_lock = threading.Lock()
_tallies: dict[int, tuple[float, Counter[str]]] = {}


def tally(event: Event, what: str, n: int = 1) -> None:
    """Count one operation outcome ("stored", "store_failed", "find", "moved" ...) on the association."""
    with _lock:
        entry = _tallies.setdefault(id(event.assoc), (time.monotonic(), Counter()))
        entry[1][what] += n


IDLE_WAIT_S = 0.001  # pynetdicom's own idle sleep (DUL._run_loop_delay)


class WakingSocket(AssociationSocket):
    """An AssociationSocket whose `ready` waits for incoming data instead of only polling.

    pynetdicom's DUL loop, when idle, sleeps `_run_loop_delay` (1 ms) and then polls the
    socket with a zero timeout, so every incoming PDU waits up to a millisecond before it is
    read.  With the sleep set to zero and this `ready` waiting up to that same millisecond in
    select(), the loop costs what it did when idle (same wake-ups, same latency for
    primitives queued by other threads) but an incoming PDU is read as soon as it arrives.
    Measured here: C-STORE sub-operations to DCMTK storescp 520 -> 770 instances/s.
    """

    @property
    def ready(self) -> bool:
        sock = self.socket
        if sock is None or self._is_connected is False:
            return False
        try:
            ready, _, _ = select.select([sock], [], [], IDLE_WAIT_S)
        except (OSError, TimeoutError, ValueError):
            self.event_queue.put("Evt17")  # transport connection closed, as pynetdicom does
            return False
        return bool(ready)


def wake_on_data(assoc: Any) -> None:
    """Make the association's DUL read incoming PDUs as they arrive (see WakingSocket)."""
    dul_socket = getattr(assoc.dul, "socket", None)
    if type(dul_socket) is AssociationSocket and not isinstance(dul_socket.socket, ssl.SSLSocket):
        dul_socket.__class__ = WakingSocket
        assoc.dul._run_loop_delay = 0


def set_nodelay(event: Event) -> None:
    """EVT_CONN_OPEN: disable Nagle's algorithm (measured-facts: DCMTK peers stall ~40 ms per
    message), and read incoming PDUs without the DUL's polling delay."""
    sock: Any = getattr(event.assoc.dul.socket, "socket", None)
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # already closed by the peer
            pass
    wake_on_data(event.assoc)


def on_established(event: Event) -> None:
    """EVT_ESTABLISHED: start the tally and log who connected."""
    with _lock:
        _tallies[id(event.assoc)] = (time.monotonic(), Counter())
    rq = event.assoc.requestor
    log.info("association %s -> %s from %s:%s accepted (%d contexts)",
             rq.ae_title, event.assoc.acceptor.ae_title, rq.address, rq.port,
             len(event.assoc.accepted_contexts))


def on_closed(event: Event) -> None:
    """EVT_CONN_CLOSE: log the association's counts (no patient data)."""
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
