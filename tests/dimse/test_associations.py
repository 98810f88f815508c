"""The DUL wake-ups and reads we install on pynetdicom's sockets (dimse/associations.py)."""
from __future__ import annotations

import os
import socket
import threading

import pytest

from dimse.associations import RECV_PREALLOC, WakingSocket, _Waker


def test_a_closed_waker_never_touches_its_old_descriptors() -> None:
    """Regression (CI): a wake() after close() wrote b"x" into whatever reused the number."""
    waker = _Waker()
    old = {waker.r, waker.w}
    waker.close()
    a, b = socket.socketpair()  # the lowest free numbers: the two just freed
    try:
        assert {a.fileno(), b.fileno()} == old
        a.setblocking(False)
        b.setblocking(False)
        waker.wake()
        for s in (a, b):
            try:
                got = s.recv(16)
            except BlockingIOError:
                got = b""
            assert got == b"", "wake() wrote into a reused descriptor"
        b.sendall(b"data")
        a.sendall(b"atad")
        waker.drain()
        assert a.recv(16) == b"data" and b.recv(16) == b"atad", "drain() read a reused descriptor"
    finally:
        a.close()
        b.close()


def test_wake_and_close_from_many_threads_do_not_race() -> None:
    """Wakes racing close() neither fail nor write, once closed, into descriptors reused since."""
    wakers = [_Waker() for _ in range(50)]
    errors: list[BaseException] = []

    def hammer(w: _Waker) -> None:
        try:
            for _ in range(200):
                w.wake()
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(w,)) for w in wakers]
    for t in threads:
        t.start()
    for w in wakers:
        w.close()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads) and not errors, errors
    reused = [os.pipe() for _ in range(50)]  # the lowest free numbers: those the wakers had
    try:
        for w in wakers:
            w.wake()
            w.drain()
        for r, _w in reused:
            os.set_blocking(r, False)
            with pytest.raises(BlockingIOError):
                os.read(r, 16)  # nothing was written into a reused descriptor
    finally:
        for r, wr in reused:
            os.close(r)
            os.close(wr)


def _reader(sock: socket.socket) -> WakingSocket:
    reader = WakingSocket.__new__(WakingSocket)  # only recv() is exercised: no association
    reader.socket = sock
    return reader


def test_recv_returns_exactly_what_was_asked_across_many_segments() -> None:
    a, b = socket.socketpair()
    data = os.urandom(300_000)
    def send() -> None:
        for i in range(0, len(data), 7_000):
            b.sendall(data[i:i + 7_000])

    sender = threading.Thread(target=send)
    sender.start()
    try:
        reader = _reader(a)
        assert bytes(reader.recv(6)) == data[:6]
        assert bytes(reader.recv(len(data) - 6)) == data[6:]
    finally:
        sender.join()
        a.close()
        b.close()


def test_recv_of_a_closed_connection_returns_what_arrived() -> None:
    a, b = socket.socketpair()
    b.sendall(b"12345")
    b.close()
    try:
        assert bytes(_reader(a).recv(100)) == b"12345"
    finally:
        a.close()


def test_a_huge_claimed_length_does_not_allocate_it() -> None:
    """A PDU header claiming gigabytes (garbage, or a peer ignoring our maximum PDU size):
    memory follows the bytes that arrive, and a closed connection returns them."""
    a, b = socket.socketpair()

    def send() -> None:
        b.sendall(b"x" * (RECV_PREALLOC + 10))
        b.close()

    sender = threading.Thread(target=send)
    sender.start()
    try:
        got = _reader(a).recv(3_000_000_000)
        assert len(got) == RECV_PREALLOC + 10
    finally:
        sender.join()
        a.close()
