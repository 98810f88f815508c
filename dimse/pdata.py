"""The P-DATA side of a storage association, without pynetdicom (issue 9).

`Receiver` reads P-DATA-TF PDUs from a socket through one read-ahead buffer, reassembles each
message's command and data set fragments (PS3.8 9.3.5, Annex E), decodes the command set
(PS3.7 E.1, Implicit VR LE), hands each C-STORE to a handler and writes the C-STORE-RSP (a
C-ECHO it answers itself). It stops at the first PDU that is not P-DATA and says why
(`Ended`); what to do then (release, abort: pynetdicom's DUL) is the caller's.

It runs in the server process (`fastrecv.serve`, which also holds everything that touches
pynetdicom's internals) or in an ingest worker process the association's socket was handed to
(`serve_in_worker`): that worker parses and writes each instance itself and asks the server,
over its pipe, only for the decision (re-store rule, index queue, audit), so one association
no longer funnels its bytes through the server's GIL. This module imports no pynetdicom: a
worker does not load it.
"""
from __future__ import annotations

import logging
import select
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

log = logging.getLogger("yunying.dimse")
POLL_S = 0.5  # how often an idle association looks whether it was aborted or killed meanwhile
MAX_PDU = 64 << 20  # a larger PDU length is garbage, not data (we offer 256 KiB)
MAX_OTHER_PDU = 64 << 10  # A-RELEASE and A-ABORT hold 4 bytes; no other PDU is due once associated
RECV_AT_ONCE = 1 << 20  # a PDU larger than READ_AHEAD is read in pieces of this size as it arrives
READ_AHEAD = (256 << 10) + 6  # one PDU of the largest size we offer (server.py), with its header
C_STORE_RQ, C_ECHO_RQ = 0x0001, 0x0030
NO_DATA_SET = 0x0101
VERIFICATION = "1.2.840.10008.1.1"


class Malformed(Exception):
    """P-DATA that breaks PS3.8 / PS3.7 encoding: the association is aborted."""


@dataclass(frozen=True)
class Cx:
    """An accepted presentation context, as plain values (it travels to a worker process)."""

    context_id: int
    abstract_syntax: str
    transfer_syntax: str
    as_scp: bool


@dataclass(frozen=True)
class Ended:
    """Why the receive loop stopped: "pdus" (other PDUs arrived: `pdus`, for the DUL), "abort"
    (malformed P-DATA: A-ABORT, `reason`), "closed" (the connection closed or stalled mid-PDU),
    "idle" (nothing for the network timeout), "stopped" (ended locally)."""

    kind: str
    pdus: tuple[bytes, ...] = ()
    reason: str = ""


Handler = Callable[[dict[int, bytes], Cx, bytearray], tuple[int, str]]  # -> (status, ErrorComment)


class Request:
    """A received C-STORE-RQ as pynetdicom's C_STORE primitive shows it to handlers."""

    def __init__(self, fields: dict[int, bytes]) -> None:
        self.MessageID = us(fields, 0x0110)
        self.AffectedSOPClassUID = text(fields.get(0x0002, b""))
        self.AffectedSOPInstanceUID = text(fields.get(0x1000, b""))
        self.Priority = us(fields, 0x0700)
        self.MoveOriginatorApplicationEntityTitle = text(fields.get(0x1030, b"")) or None


class Receiver:
    """The receive loop of one association (PS3.8 9.3.5 P-DATA-TF, PS3.7 E.2 fragments)."""

    def __init__(self, sock: socket.socket, contexts: list[Cx], max_pdu: int, idle_s: float | None,
                 handler: Handler, ended: Callable[[], bool]) -> None:
        self.sock, self.handler, self.ended = sock, handler, ended
        self.contexts = {cx.context_id: cx for cx in contexts}
        self.max_pdu, self.idle_s = max_pdu, idle_s
        self._buf = bytearray(READ_AHEAD)
        self._start = self._end = 0  # the unread bytes in _buf
        self._reset()

    def _reset(self) -> None:
        self.command = bytearray()
        self.fields: dict[int, bytes] | None = None
        self.data = bytearray()
        self.context_id = 0

    def run(self) -> Ended:
        while True:
            try:
                header = self._read_header()
                if header is None:
                    return Ended("idle")
                kind, length = header
                if length > (MAX_PDU if kind == 0x04 else MAX_OTHER_PDU):
                    raise Malformed(f"PDU type 0x{kind:02X} of {length} bytes")
                if kind != 0x04:
                    pdus = [struct.pack(">BBI", kind, 0, length) + bytes(self._take(length))]
                    while self._end > self._start:  # PDUs read with it (a pipelining peer) are the DUL's too
                        kind, _, length = struct.unpack(">BBI", self._take(6))
                        if length > MAX_OTHER_PDU:
                            raise Malformed(f"PDU type 0x{kind:02X} of {length} bytes")
                        pdus.append(struct.pack(">BBI", kind, 0, length) + bytes(self._take(length)))
                    return Ended("pdus", tuple(pdus))
                self._pdu(self._take(length))
            except Malformed as exc:
                return Ended("abort", reason=str(exc))
            except Stopped:
                return Ended("stopped")
            except (OSError, ConnectionError, struct.error):  # closed, reset, or stalled mid-PDU (deadlines.py)
                return Ended("closed")

    def _read_header(self) -> tuple[int, int] | None:
        """The next PDU's type and length; None after the network timeout without data."""
        idle_since = time.monotonic()
        while self._end == self._start and not select.select([self.sock], [], [], POLL_S)[0]:
            if self.ended():
                raise Stopped()
            if self.idle_s is not None and time.monotonic() - idle_since > self.idle_s:
                return None
        kind, _, length = struct.unpack(">BBI", self._take(6))
        return kind, length

    def _take(self, size: int) -> memoryview | bytearray:
        """The next `size` bytes of the stream, read through one buffer of READ_AHEAD bytes as
        many at a time as the socket has (a CT slice in 16 KiB PDUs took a select and two recv
        calls per PDU, ~100 system calls per instance). A view, valid until the next call."""
        if size > READ_AHEAD:  # a claimed length is allocated only as its bytes arrive (issue 10 part 4)
            return self._recv_growing(size)
        if self._end - self._start < size:
            with memoryview(self._buf) as view:
                if self._start + size > READ_AHEAD:
                    # no room behind: the unread rest moves to the front of the same buffer (a
                    # memmove of less than one PDU) instead of a fresh zeroed 256 KiB buffer,
                    # which every 256 KiB PDU needed (half the server's GIL samples, CT C-STORE)
                    rest = self._end - self._start
                    view[:rest] = view[self._start:self._end]
                    self._start, self._end = 0, rest
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
        """`size` bytes (the read-ahead ones first) received straight into one buffer that
        doubles as they arrive (no bytes object per recv, no copy to join them)."""
        got = self._end - self._start
        buf = bytearray(min(size, max(RECV_AT_ONCE, got)))
        buf[:got] = memoryview(self._buf)[self._start:self._end]
        self._start = self._end = 0
        while got < size:
            if got == len(buf):
                buf.extend(bytes(min(size, 2 * len(buf)) - len(buf)))
            with memoryview(buf) as view:
                n = self.sock.recv_into(view[got:])
            if not n:
                raise ConnectionError("connection closed by the peer")
            got += n
        return buf

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
                    self.fields = parse_command(self.command)
                    if us(self.fields, 0x0800, NO_DATA_SET) == NO_DATA_SET:
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
        command = us(fields, 0x0100)
        if command == C_ECHO_RQ:
            self._respond(cx, response(0x8030, fields, 0x0000, ""))
        elif command == C_STORE_RQ and cx.as_scp and cx.abstract_syntax != VERIFICATION:
            code, comment = self.handler(fields, cx, data)
            self._respond(cx, response(0x8001, fields, code, comment))
        else:  # pynetdicom aborts on a message it has no service for on this context
            raise Malformed(f"command 0x{command:04X} on a storage association")

    def _respond(self, cx: Cx, command: bytes) -> None:
        step = max(self.max_pdu - 6, 1) if self.max_pdu else len(command)
        pdus: list[bytes] = []
        for off in range(0, len(command), step):
            piece = command[off:off + step]
            last = 2 if off + step >= len(command) else 0
            pdus.append(struct.pack(">BBIIBB", 0x04, 0, len(piece) + 6, len(piece) + 2,
                                    cx.context_id, 1 | last) + piece)
        self.sock.sendall(b"".join(pdus))  # a response is ~100 bytes: one write


class Stopped(Exception):
    """The server ended the association while this loop served it."""


def response(command_field: int, fields: dict[int, bytes], code: int, comment: str) -> bytes:
    """C-STORE-RSP / C-ECHO-RSP command set (PS3.7 Tables 9.3-2, 9.3-13)."""
    pack = struct.Struct("<H").pack
    elements = [(0x0002, fields.get(0x0002, b"")), (0x0100, pack(command_field)),
                (0x0120, pack(us(fields, 0x0110))), (0x0800, pack(NO_DATA_SET)), (0x0900, pack(code))]
    if comment:
        raw = comment[:64].encode("ascii", "replace")
        elements.append((0x0902, raw + b" " if len(raw) % 2 else raw))
    if command_field == 0x8001:
        elements.append((0x1000, fields.get(0x1000, b"")))
    body = b"".join(struct.pack("<HHI", 0, elem, len(value)) + value for elem, value in elements)
    return struct.pack("<HHII", 0, 0, 4, len(body)) + body  # (0000,0000) group length first


def parse_command(data: bytearray) -> dict[int, bytes]:
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


def us(fields: dict[int, bytes], elem: int, default: int = 0) -> int:
    value = fields.get(elem)
    if value is None:
        return default
    if len(value) != 2:
        raise Malformed(f"command element (0000,{elem:04X}) is not US")
    return int(struct.unpack("<H", value)[0])


def text(value: bytes) -> str:
    return value.decode("ascii", "replace").rstrip("\0 ")


# -- in an ingest worker process ------------------------------------------------------------

@dataclass(frozen=True)
class Spec:
    """What a worker needs of a negotiated storage association (plain values, pickled)."""

    contexts: list[Cx]
    max_pdu: int
    idle_s: float | None
    origin: Any  # index.model.Origin: the calling peer's hospital owns what it stores
    aet: str
    implementation: tuple[str, str]  # the file meta's Implementation Class UID and Version Name


def serve_in_worker(conn: Connection, storage: Any, fd: int, spec: Spec) -> None:
    """yunying.workers.Call target: serve the association's P-DATA on the socket `fd`.

    Per C-STORE: write the instance durably (yunying.writing, as a pooled write), send the
    server ("store", command fields, context id, Written | exception | None) and write the
    status it answers ("rsp", status, comment), or write again when it says "rewrite". Ends
    with ("end", Ended). Closing our copy of the socket leaves the server's open."""
    from yunying.part10 import file_meta
    from yunying.writing import write_instance

    sock = socket.socket(fileno=fd)
    sock.setblocking(True)

    def write(fields: dict[int, bytes], cx: Cx, data: bytearray) -> Any:
        request = Request(fields)
        if request.AffectedSOPClassUID != cx.abstract_syntax:
            return None  # refused by the server's handler (0x0122); nothing written
        raw = file_meta(request.AffectedSOPClassUID, request.AffectedSOPInstanceUID, cx.transfer_syntax,
                        spec.implementation, spec.aet) + data
        try:
            return write_instance(storage, raw, spec.origin, None, sync=not storage.group_sync)
        except Exception as exc:  # noqa: BLE001 - the server maps it to a status
            return exc

    def handler(fields: dict[int, bytes], cx: Cx, data: bytearray) -> tuple[int, str]:
        outcome = write(fields, cx, data)
        while True:
            _send(conn, ("store", fields, cx.context_id, outcome))
            answer = conn.recv()
            if answer[0] == "rsp":
                return int(answer[1]), str(answer[2])
            if answer[0] != "rewrite":
                raise Stopped()
            outcome = write(fields, cx, data)

    try:
        ended = Receiver(sock, spec.contexts, spec.max_pdu, spec.idle_s, handler, conn.poll).run()
    finally:
        sock.close()
    if ended.kind == "stopped" and conn.poll():
        conn.recv()  # the server's ("stop",)
    conn.send(("end", ended))


def _send(conn: Connection, message: tuple[Any, ...]) -> None:
    try:
        conn.send(message)
    except (TypeError, AttributeError, ValueError) as exc:  # an exception that does not pickle
        if not isinstance(message[3], BaseException):
            raise
        log.error("ingest error does not travel: %s", type(exc).__name__)
        conn.send((*message[:3], RuntimeError(f"ingest failed: {type(message[3]).__name__}")))
