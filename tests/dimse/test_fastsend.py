"""dimse/fastsend.py without a network: Part 10 body extraction and P-DATA fragmentation."""
from __future__ import annotations

import struct
from io import BytesIO

import pydicom
from conftest import sample_file

from dimse.fastsend import Buffer, PreEncoded, message_pdus, part10_body


def test_part10_body_is_the_data_set_after_the_meta() -> None:
    raw = sample_file("CT_small.dcm").read_bytes()
    body = bytes(part10_body(raw))
    ds = pydicom.dcmread(BytesIO(raw))
    again = BytesIO()
    ds.save_as(again, enforce_file_format=True)
    assert bytes(part10_body(again.getvalue())) == body
    # no preamble: starts with the meta group
    assert bytes(part10_body(raw[128 + 4:])) == body
    from pydicom.filereader import read_dataset
    plain = read_dataset(BytesIO(body), ds.file_meta.TransferSyntaxUID.is_implicit_VR,
                         ds.file_meta.TransferSyntaxUID.is_little_endian)
    assert plain.SOPInstanceUID == ds.SOPInstanceUID


def _parse(pdus: list) -> list[tuple[int, int, bytes, int]]:
    """(context id, message control header, fragment, PDU length) of each P-DATA-TF."""
    out = []
    blob = b"".join(bytes(p) for p in pdus)
    pos = 0
    while pos < len(blob):
        kind, _, length = struct.unpack_from(">BBI", blob, pos)
        assert kind == 0x04
        item_len, cx, mch = struct.unpack_from(">IBB", blob, pos + 6)
        assert item_len == length - 4
        out.append((cx, mch, blob[pos + 12:pos + 6 + length], length))
        pos += 6 + length
    return out


def test_pdus_fragment_command_then_data_set_within_the_maximum() -> None:
    command, body = b"C" * 100, bytes(range(256)) * 40  # 10,240 bytes
    frames = _parse(message_pdus(5, command, memoryview(body), 4096))
    assert [f[0] for f in frames] == [5] * len(frames)
    assert frames[0][1] == 0x03 and frames[0][2] == command  # last (and only) command fragment
    data = frames[1:]
    assert [f[1] for f in data] == [0x00] * (len(data) - 1) + [0x02]
    assert all(f[3] <= 4096 for f in frames)
    assert b"".join(f[2] for f in data) == body


def test_pdus_unlimited_and_exact_multiple() -> None:
    body = b"x" * (4090 * 2)  # exactly two full fragments at a 4096-byte maximum
    frames = _parse(message_pdus(1, b"cmd", memoryview(body), 4096))
    assert [f[1] for f in frames] == [0x03, 0x00, 0x02]
    assert len(_parse(message_pdus(1, b"cmd", memoryview(body), 0))) == 2


def test_pre_encoded_carries_only_the_uids() -> None:
    ds = PreEncoded("1.2.840.10008.5.1.4.1.1.2", "1.2.3", "1.2.840.10008.1.2.1", b"abc")
    assert bool(ds) and ds.SOPInstanceUID == "1.2.3" and ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
    assert hasattr(ds, "SOPInstanceUID") and isinstance(ds, pydicom.Dataset)
    assert bytes(ds.yy_body) == b"abc" and ds.yy_transfer_syntax == "1.2.840.10008.1.2.1"


def test_command_sets_encode_as_pynetdicom_does() -> None:
    from pynetdicom.dimse_messages import C_GET_RSP, C_MOVE_RSP, C_STORE_RQ
    from pynetdicom.dimse_primitives import C_GET, C_MOVE, C_STORE
    from pynetdicom.dsutils import encode

    from dimse.fastsend import c_store_rq, pending_rsp

    for aet, origin_id in (("YUNYING", 7), ("ODD", 1), (None, None)):
        req = C_STORE()
        req.MessageID, req.Priority = 513, 2
        req.MoveOriginatorApplicationEntityTitle, req.MoveOriginatorMessageID = aet, origin_id
        req.AffectedSOPClassUID, req.AffectedSOPInstanceUID = "1.2.840.10008.5.1.4.1.1.2", "1.2.3.45"
        req.DataSet = BytesIO(b"")
        msg = C_STORE_RQ()
        msg.primitive_to_message(req)
        msg.command_set.CommandDataSetType = 0x0001
        assert c_store_rq("1.2.840.10008.5.1.4.1.1.2", "1.2.3.45", 513, 2, aet, origin_id) == \
            encode(msg.command_set, True, True)
    for primitive, message in ((C_MOVE(), C_MOVE_RSP()), (C_GET(), C_GET_RSP())):
        primitive.MessageIDBeingRespondedTo, primitive.Status = 3, 0xFF00
        primitive.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.2.2.2"
        primitive.NumberOfRemainingSuboperations, primitive.NumberOfCompletedSuboperations = 297, 2
        primitive.NumberOfFailedSuboperations, primitive.NumberOfWarningSuboperations = 1, 0
        message.primitive_to_message(primitive)
        assert pending_rsp(primitive) == encode(message.command_set, True, True)


def test_pdus_fragments_span_the_pieces_of_a_body() -> None:
    pieces: list[Buffer] = [b"head" * 10, b"", memoryview(bytes(range(256)) * 9), b"\x01", b"tail" * 3]
    body = b"".join(bytes(p) for p in pieces)
    for max_pdu in (0, 64, 100, 4096):
        frames = _parse(message_pdus(3, b"command!", pieces, max_pdu))
        data = [f for f in frames if not f[1] & 1]
        assert b"".join(f[2] for f in data) == body
        assert [f[1] for f in data] == [0x00] * (len(data) - 1) + [0x02]
        assert all(f[3] <= max_pdu for f in frames) if max_pdu else len(data) == 1


def test_send_buffers_writes_everything_in_order_through_partial_writes() -> None:
    import socket
    import threading

    from dimse.fastsend import send_buffers

    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # many partial sendmsg calls
    buffers: list[Buffer] = [bytes([i % 251]) * (i * 37 % 5000) for i in range(1500)]  # more than IOV_MAX
    got = bytearray()

    def drain() -> None:
        while chunk := b.recv(65536):
            got.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    send_buffers(a, buffers)
    a.close()
    reader.join(10)
    b.close()
    assert bytes(got) == b"".join(buffers)


def test_a_claimed_pdu_length_is_not_allocated_at_once() -> None:
    """Issue 10 part 4: a P-DATA-TF header claiming 512 MiB, 100 bytes, then the peer closes."""
    import socket
    import tracemalloc

    import pytest

    from dimse.fastsend import read_response

    a, b = socket.socketpair()
    b.sendall(struct.pack(">BBI", 4, 0, 512 << 20) + b"\x00" * 100)
    b.close()
    tracemalloc.start()
    try:
        with pytest.raises(ConnectionError):
            read_response(None, a, timeout=5)  # type: ignore[arg-type]  # no association: the socket alone
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        a.close()
    assert peak < 16 << 20, peak


class _NeverPausing:
    """An association whose reactor never pauses (a stuck or dead reactor thread)."""

    is_established = True
    _is_paused = False
    dimse_timeout = 0.5

    def __init__(self) -> None:
        import threading
        from types import SimpleNamespace

        self._reactor_checkpoint = threading.Event()
        self.dimse = SimpleNamespace(maximum_pdu_size=16384)
        self.aborted = False

    def _get_valid_context(self, *_a: object, **_k: object) -> object:
        from types import SimpleNamespace

        return SimpleNamespace(context_id=1)

    def abort(self) -> None:
        self.aborted = True


def test_waiting_for_the_reactor_to_pause_has_a_deadline() -> None:
    import threading

    from dimse.fastsend import send_pre_encoded

    assoc = _NeverPausing()
    out: list[object] = []
    ds = PreEncoded("1.2.840.10008.5.1.4.1.1.2", "1.2.3", "1.2.840.10008.1.2.1", b"abcd")
    worker = threading.Thread(target=lambda: out.append(send_pre_encoded(assoc, ds)), daemon=True)  # type: ignore[arg-type]  # a stand-in association
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "send_pre_encoded waits forever for a reactor that never pauses"
    assert out == [pydicom.Dataset()] and assoc.aborted
