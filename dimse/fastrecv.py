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
"""
from __future__ import annotations

import logging
import select
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

import pynetdicom

from dimse.associations import SocketOwner
from dimse.fastsend import command_set, send_buffers
from dimse.uids import VERIFICATION
from yunying.logsafe import summary

log = logging.getLogger("yunying.dimse")
PINNED = "3.0.4"
STORAGE_SERVICE = "1.2.840.10008.4.2"
OWNED_IDLE_S = 0.25  # the DUL's loop while this path owns the socket (it only sends queued events then)
POLL_S = 0.5  # how often an idle association looks whether it was aborted or killed meanwhile
MAX_PDU = 64 << 20  # a larger PDU length is garbage, not data (we offer 256 KiB)
MAX_OTHER_PDU = 64 << 10  # A-RELEASE and A-ABORT hold 4 bytes; no other PDU is due once associated
RECV_AT_ONCE = 1 << 20  # a PDU larger than READ_AHEAD is read in pieces of this size as it arrives
READ_AHEAD = (256 << 10) + 6  # one PDU of the largest size we offer (server.py), with its header
C_STORE_RQ, C_ECHO_RQ = 0x0001, 0x0030
NO_DATA_SET = 0x0101


class Malformed(Exception):
    """P-DATA that breaks PS3.8 / PS3.7 encoding: the association is aborted."""


class Request:
    """A received C-STORE-RQ as pynetdicom's C_STORE primitive shows it to handlers."""

    def __init__(self, fields: dict[int, bytes]) -> None:
        self.MessageID = _us(fields, 0x0110)
        self.AffectedSOPClassUID = _text(fields.get(0x0002, b""))
        self.AffectedSOPInstanceUID = _text(fields.get(0x1000, b""))
        self.Priority = _us(fields, 0x0700)
        self.MoveOriginatorApplicationEntityTitle = _text(fields.get(0x1030, b"")) or None


class Context:
    """The presentation context a message came on (what handlers read of pynetdicom's)."""

    def __init__(self, cx: Any) -> None:
        self.context_id = int(cx.context_id)
        self.abstract_syntax = str(cx.abstract_syntax)
        self.transfer_syntax = str(cx.transfer_syntax[0])


class StoreEvent:
    """What an EVT_C_STORE handler reads of pynetdicom's Event: assoc, request, context, data."""

    def __init__(self, assoc: Any, request: Request, context: Context, data: bytearray) -> None:
        self.assoc, self.request, self.context, self._data = assoc, request, context, data

    def encoded_dataset(self, include_meta: bool = False) -> memoryview:
        assert not include_meta, "the lean path hands over the data set only"
        return memoryview(self._data)  # the handler joins it to the file meta: one copy, not two


Handler = Callable[[StoreEvent], Any]  # returns a status: int, or a Dataset with Status (+ ErrorComment)


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


def serve(assoc: Any, handler: Handler) -> None:
    """Serve the association's P-DATA until another PDU arrives or the connection ends
    (EVT_ESTABLISHED, in the association thread: its reactor waits until this returns)."""
    owner = SocketOwner.of(assoc)
    sock: socket.socket | None = getattr(assoc.dul.socket, "socket", None)
    if owner is None or sock is None:
        return
    # the DUL then wakes 4 times a second, not 200: each wake-up took the GIL from the store
    # running in this thread, and on a loaded machine got it back late
    owner.take(wait=OWNED_IDLE_S)
    if owner.reads != 1:  # the DUL read a PDU after the A-ASSOCIATE-RQ: pynetdicom serves it all
        owner.give_back()
        return
    timed_out = False
    try:
        timed_out = Receiver(assoc, sock, handler).run()
    finally:
        if not timed_out:  # else pynetdicom's reactor sees the idle timer expired and aborts
            assoc.dul._idle_timer.restart()
        owner.give_back()


class Receiver:
    """The receive loop of one association (PS3.8 9.3.5 P-DATA-TF, PS3.7 E.2 fragments)."""

    def __init__(self, assoc: Any, sock: socket.socket, handler: Handler) -> None:
        self.assoc, self.sock, self.handler = assoc, sock, handler
        self.contexts = {int(cx.context_id): cx for cx in assoc.accepted_contexts}
        self.max_pdu = int(assoc.requestor.maximum_length or 0)
        self.idle_s = assoc.network_timeout
        self._buf = bytearray(READ_AHEAD)
        self._start = self._end = 0  # the unread bytes in _buf
        self._reset()

    def _reset(self) -> None:
        self.command = bytearray()
        self.fields: dict[int, bytes] | None = None
        self.data = bytearray()
        self.context_id = 0

    def run(self) -> bool:
        """True when the peer was idle for the network timeout (pynetdicom then aborts)."""
        while True:
            try:
                header = self._read_header()
                if header is None:
                    return True
                kind, length = header
                if length > (MAX_PDU if kind == 0x04 else MAX_OTHER_PDU):
                    raise Malformed(f"PDU type 0x{kind:02X} of {length} bytes")
                if kind != 0x04:
                    self._to_dul(kind, bytearray(self._take(length)))
                    while self._end > self._start:  # PDUs read with it (a pipelining peer) are the DUL's too
                        kind, _, length = struct.unpack(">BBI", self._take(6))
                        if length > MAX_OTHER_PDU:
                            raise Malformed(f"PDU type 0x{kind:02X} of {length} bytes")
                        self._to_dul(kind, bytearray(self._take(length)))
                    return False
                self._pdu(self._take(length))
            except Malformed as exc:
                log.warning("association from %s aborted: %s", self.assoc.requestor.ae_title, exc)
                self.assoc.dul.event_queue.put("Evt19")  # invalid PDU: A-ABORT (AA-8)
                return False
            except (OSError, ConnectionError):  # closed, reset, or stalled mid-PDU (deadlines.py)
                self.assoc.dul.event_queue.put("Evt17")
                return False

    def _read_header(self) -> tuple[int, int] | None:
        """The next PDU's type and length; None after the network timeout without data."""
        idle_since = time.monotonic()
        while self._end == self._start and not select.select([self.sock], [], [], POLL_S)[0]:
            dul = self.assoc.dul
            if self.assoc._kill or dul._kill_thread or dul.state_machine.current_state != "Sta6":
                raise ConnectionError("association ended locally")  # aborted or shut down meanwhile
            if self.idle_s is not None and time.monotonic() - idle_since > self.idle_s:
                return None
        kind, _, length = struct.unpack(">BBI", self._take(6))
        return kind, length

    def _take(self, size: int) -> memoryview | bytearray:
        """The next `size` bytes of the stream, read through one buffer of READ_AHEAD bytes as
        many at a time as the socket has (a CT slice in 16 KiB PDUs took a select and two recv
        calls per PDU, ~100 system calls per instance, in the process whose GIL every
        association shares). A view, valid until the next call."""
        if size > READ_AHEAD:  # a claimed length is allocated only as its bytes arrive (issue 10 part 4)
            head = bytearray(self._buf[self._start:self._end])
            self._start = self._end = 0
            return head + self._recv_growing(size - len(head))
        if self._end - self._start < size:
            if self._start + size > READ_AHEAD:  # no room behind: the rest moves to a fresh buffer
                rest = self._buf[self._start:self._end]
                self._buf = bytearray(READ_AHEAD)
                self._buf[:len(rest)] = rest
                self._start, self._end = 0, len(rest)
            with memoryview(self._buf) as view:
                while self._end - self._start < size:
                    n = self.sock.recv_into(view[self._end:])
                    if not n:
                        raise ConnectionError("connection closed by the peer")
                    self._end += n
        at = self._start
        self._start += size
        if self._start == self._end:
            self._start = self._end = 0
        return memoryview(self._buf)[at:at + size]

    def _recv_growing(self, size: int) -> bytearray:
        buf = bytearray()
        while len(buf) < size:
            chunk = self.sock.recv(min(size - len(buf), RECV_AT_ONCE))
            if not chunk:
                raise ConnectionError("connection closed by the peer")
            buf += chunk
        return buf

    def _to_dul(self, kind: int, body: bytearray) -> None:
        """Hand a non-P-DATA PDU to pynetdicom exactly as its own read would (DUL._read_pdu_data)."""
        dul = self.assoc.dul
        try:
            pdu, event = dul._decode_pdu(bytearray(struct.pack(">BBI", kind, 0, len(body))) + body)
        except Exception:  # noqa: BLE001 - pynetdicom's read treats any decode failure so
            dul.event_queue.put("Evt19")
            return
        dul.event_queue.put(event)
        dul._recv_pdu.put(pdu)

    def _pdu(self, pdu: memoryview | bytearray) -> None:
        pos, end = 0, len(pdu)
        if end < 6:
            raise Malformed("P-DATA-TF without a PDV item")
        while pos < end:
            if pos + 6 > end:
                raise Malformed("truncated PDV item")
            item_len, cx_id, control = struct.unpack_from(">IBB", pdu, pos)
            if item_len < 2 or pos + 4 + item_len > end:
                raise Malformed("PDV item length beyond its PDU")
            if cx_id not in self.contexts:
                raise Malformed(f"PDV on presentation context {cx_id}, not accepted")
            value = memoryview(pdu)[pos + 6:pos + 4 + item_len]
            pos += 4 + item_len
            if control & 1:
                if self.fields is not None or (self.command and cx_id != self.context_id):
                    raise Malformed("command fragment out of order")
                self.context_id = cx_id
                self.command += value
                if control & 2:
                    self.fields = _parse_command(self.command)
                    if _us(self.fields, 0x0800, NO_DATA_SET) == NO_DATA_SET:
                        self._message()
            else:
                if self.fields is None or cx_id != self.context_id:
                    raise Malformed("data set fragment without its command")
                self.data += value
                if control & 2:
                    self._message()

    def _message(self) -> None:
        fields, cx = self.fields, self.contexts[self.context_id]
        assert fields is not None
        data, self.data = self.data, bytearray()
        self._reset()
        command = _us(fields, 0x0100)
        if command == C_ECHO_RQ:
            self._respond(cx, _response(0x8030, fields, 0x0000, ""))
        elif command == C_STORE_RQ and cx.as_scp and str(cx.abstract_syntax) != VERIFICATION:
            event = StoreEvent(self.assoc, Request(fields), Context(cx), data)
            try:
                code, comment = _status(self.handler(event))
            except Exception as exc:  # noqa: BLE001 - as pynetdicom answers a failing handler
                log.error("C-STORE handler failed: %s", summary(exc))
                code, comment = 0xC211, "internal error while storing"
            self._respond(cx, _response(0x8001, fields, code, comment))
        else:  # pynetdicom aborts on a message it has no service for on this context
            raise Malformed(f"command 0x{command:04X} on a storage association")

    def _respond(self, cx: Any, command: bytes) -> None:
        step = max(self.max_pdu - 6, 1) if self.max_pdu else len(command)
        pdus: list[bytes] = []
        for off in range(0, len(command), step):
            piece = command[off:off + step]
            last = 2 if off + step >= len(command) else 0
            pdus.append(struct.pack(">BBIIBB", 0x04, 0, len(piece) + 6, len(piece) + 2,
                                    int(cx.context_id), 1 | last) + piece)
        send_buffers(self.sock, pdus)  # type: ignore[arg-type]


def _response(command_field: int, fields: dict[int, bytes], code: int, comment: str) -> bytes:
    """C-STORE-RSP / C-ECHO-RSP command set (PS3.7 Tables 9.3-2, 9.3-13)."""
    us = struct.Struct("<H").pack
    elements = [(0x0002, fields.get(0x0002, b"")), (0x0100, us(command_field)),
                (0x0120, us(_us(fields, 0x0110))), (0x0800, us(NO_DATA_SET)), (0x0900, us(code))]
    if comment:
        raw = comment[:64].encode("ascii", "replace")
        elements.append((0x0902, raw + b" " if len(raw) % 2 else raw))
    if command_field == 0x8001:
        elements.append((0x1000, fields.get(0x1000, b"")))
    return command_set(*elements)


def _status(answer: Any) -> tuple[int, str]:
    if isinstance(answer, int):
        return answer, ""
    code = int(getattr(answer, "Status", 0xC211))
    return code, str(getattr(answer, "ErrorComment", "") or "")


def _parse_command(data: bytearray) -> dict[int, bytes]:
    """Group 0000 elements, Implicit VR Little Endian (PS3.7 E.1), by element number."""
    out: dict[int, bytes] = {}
    pos, end = 0, len(data)
    while pos < end:
        if pos + 8 > end:
            raise Malformed("truncated command element")
        group, elem, length = struct.unpack_from("<HHI", data, pos)
        if group != 0x0000 or pos + 8 + length > end:
            raise Malformed("command set element outside group 0000 or beyond its end")
        out[elem] = bytes(data[pos + 8:pos + 8 + length])
        pos += 8 + length
    if 0x0100 not in out or 0x0110 not in out:
        raise Malformed("command set without CommandField or MessageID")
    return out


def _us(fields: dict[int, bytes], elem: int, default: int = 0) -> int:
    value = fields.get(elem)
    if value is None:
        return default
    if len(value) != 2:
        raise Malformed(f"command element (0000,{elem:04X}) is not US")
    return int(struct.unpack("<H", value)[0])


def _text(value: bytes) -> str:
    return value.decode("ascii", "replace").rstrip("\0 ")
