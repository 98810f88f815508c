"""Deadlines for associations a peer breaks (issue 10 part 4): junk never holds a slot.

pynetdicom's acceptor waits up to the ACSE timeout for the A-ASSOCIATE-RQ even after its DUL
has stopped (the peer sent a TLS ClientHello, garbage or half a PDU and went away), and its
`Association.kill` loops until the DUL reaches Sta1, without a deadline: a DUL blocked in
recv() on a peer that stalls mid-PDU never does. Each such connection kept one of the
maximum_associations slots, so a few hundred bad connections refused every valid peer with
"local limit exceeded". Here, installed when the connection opens:
- the acceptor's wait for the request ends as soon as the DUL has stopped;
- the accepted socket has a read timeout, so a peer that stops in the middle of a PDU is
  treated as a closed connection (pynetdicom's Evt17) after PDU_READ_TIMEOUT_S;
- kill() gives the DUL KILL_GRACE_S, then shuts the socket down (waking a blocked recv) and
  returns.
"""
from __future__ import annotations

import socket
import time
from typing import Any

ACSE_POLL_S = 0.05
PDU_READ_TIMEOUT_S = 60.0  # longest silence inside one PDU (or one send) before the connection is dropped
KILL_GRACE_S = 5.0


def bound_acceptor(assoc: Any) -> None:
    """EVT_CONN_OPEN for an association we accept (runs before its DUL thread starts)."""
    dul = assoc.dul
    raw = getattr(dul.socket, "socket", None)
    if raw is not None:
        try:
            raw.settimeout(PDU_READ_TIMEOUT_S)
        except OSError:
            pass
    receive = dul.receive_pdu

    def receive_pdu(wait: bool = False, timeout: float | None = None) -> Any:
        if not wait:
            return receive(False, None)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            step = ACSE_POLL_S if deadline is None else min(ACSE_POLL_S, deadline - time.monotonic())
            if step <= 0:
                return receive(False, None)
            primitive = receive(True, step)
            if primitive is not None:
                return primitive
            if not dul.is_alive() and dul.to_user_queue.empty():
                return None  # the connection is gone: nothing will ever arrive

    dul.receive_pdu = receive_pdu
    assoc.kill = lambda: bounded_kill(assoc)


def bounded_kill(assoc: Any, grace: float = KILL_GRACE_S) -> None:
    """Association.kill with a deadline: the DUL gets `grace` seconds to stop, then its socket
    is shut down under it."""
    assoc._reactor_checkpoint.set()
    assoc._kill = True
    assoc.is_established = False
    assoc._is_paused = True
    dul = assoc.dul
    deadline = time.monotonic() + grace
    while dul.is_alive():
        if dul.state_machine.current_state == "Sta1":
            dul.kill_dul()
        elif time.monotonic() > deadline:
            dul.kill_dul()
            _shutdown(dul)
            dul.join(1.0)
            return
        time.sleep(0.01)


def _shutdown(dul: Any) -> None:
    raw = getattr(getattr(dul, "socket", None), "socket", None)
    if raw is None:
        return
    try:
        raw.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
