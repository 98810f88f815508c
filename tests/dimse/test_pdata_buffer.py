"""The read-ahead buffer of dimse/pdata.py Receiver: messages spanning many PDUs, PDUs larger
than the read-ahead (read straight into a growing buffer), a peer whose writes land at odd
offsets so the unread rest moves to the buffer's front mid-PDU. Bytes received must be the bytes
sent, message by message, over a real loopback socket."""
from __future__ import annotations

import random
import socket
import threading

import pytest

from dimse import pdata
from dimse.fastsend import c_store_rq, message_pdus
from dimse.pdata import Cx, Receiver

CT = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT = "1.2.840.10008.1.2.1"


def _serve(wire: bytes, chunks: list[int]) -> tuple[list[tuple[str, bytes]], pdata.Ended, int]:
    """Feed `wire` in writes of the given sizes (cycled); what the Receiver handed its handler."""
    ours, theirs = socket.socketpair()
    responses = bytearray()

    def peer() -> None:
        pos, i = 0, 0
        while pos < len(wire):
            step = chunks[i % len(chunks)]
            theirs.sendall(wire[pos:pos + step])
            pos, i = pos + step, i + 1
        theirs.shutdown(socket.SHUT_WR)
        while chunk := theirs.recv(1 << 16):
            responses.extend(chunk)

    got: list[tuple[str, bytes]] = []

    def handler(fields: dict[int, bytes], cx: Cx, data: bytearray) -> tuple[int, str]:
        got.append((pdata.text(fields[0x1000]), bytes(data)))
        return 0, ""

    thread = threading.Thread(target=peer, daemon=True)
    thread.start()
    try:
        ended = Receiver(ours, [Cx(1, CT, EXPLICIT, True)], 16384, 10.0, handler, lambda: False).run()
        ours.shutdown(socket.SHUT_WR)
        thread.join(10)
    finally:
        ours.close()
        theirs.close()
    return got, ended, responses.count(b"\x00\x01\x80")  # C-STORE-RSP command fields (0x8001)


@pytest.mark.parametrize("max_pdu", [1009, 16384 + 3, 262144, 3 * (1 << 20) + 5])
def test_messages_over_many_pdus_and_odd_writes_arrive_byte_identical(max_pdu: int) -> None:
    rng = random.Random(max_pdu)
    sizes = [1, 4095, 16383, 262139, 524289, 1 << 20, 3 * (1 << 20) + 1, 77]
    sent = [(f"1.2.3.{i}", rng.randbytes(size)) for i, size in enumerate(sizes)]
    wire = b"".join(b"".join(message_pdus(1, c_store_rq(CT, uid, i + 1), data, max_pdu))
                    for i, (uid, data) in enumerate(sent))
    got, ended, answered = _serve(wire, [4099, 65537, 7, 262151, 131, 300001])
    assert ended.kind == "closed"
    assert [uid for uid, _ in got] == [uid for uid, _ in sent]
    for (uid, data), (_, received) in zip(sent, got, strict=True):
        assert received == data, uid
    assert answered == len(sent)


def test_a_pdu_larger_than_the_read_ahead_grows_its_buffer_as_bytes_arrive(monkeypatch) -> None:
    monkeypatch.setattr(pdata, "RECV_AT_ONCE", 1000)  # many doublings for one 3 MiB PDU
    data = random.Random(3).randbytes(3 * (1 << 20) + 11)
    wire = b"".join(message_pdus(1, c_store_rq(CT, "1.2.3", 1), data, 4 << 20))
    got, ended, _ = _serve(wire, [65536 + 13])
    assert ended.kind == "closed" and got == [("1.2.3", data)]


def test_cut_off_inside_a_large_pdu_stores_nothing() -> None:
    data = bytes(range(256)) * 4096
    wire = b"".join(message_pdus(1, c_store_rq(CT, "1.2.3", 1), data, 4 << 20))
    got, ended, _ = _serve(wire[:-5], [70001])
    assert ended.kind == "closed" and got == []
