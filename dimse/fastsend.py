"""C-STORE sub-operations from bytes already encoded (the archive's stored Part 10 bytes).

pynetdicom 3.0.4's `send_c_store` wants a Dataset: for a C-MOVE/C-GET of stored instances
that meant dcmread + encode per instance (~1.5-2 ms for a 512x512 CT), and its DIMSE layer
then hands each P-DATA PDU (16 KiB with DCMTK's default) one at a time to the DUL thread,
which sends one per reactor loop.  Here the data set bytes are the stored ones (bit-exact as
received, in the pieces the archive read them in) and the whole message, every PDU of it,
is written with `sendmsg` from the calling thread, the PDU headers between slices of those
pieces (nothing joined).  The state machine is not involved: sending P-DATA in Sta6 leaves
the state unchanged (PS3.8 Table 9-10, DT-1), and nothing else writes on the association
while a C-STORE sub-operation waits for its response (pynetdicom pauses the reactor for
it).  On a C-MOVE sub-association the sending thread also reads the response itself
(SocketOwner).
"""
from __future__ import annotations

import functools
import logging
import select
import socket
import ssl
import struct
import threading
import time
from io import BytesIO
from typing import Any

from pydicom import Dataset
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_CANCEL
from pynetdicom.dsutils import encode

from dimse.associations import RECV_PREALLOC, SocketOwner

log = logging.getLogger("yunying.dimse")
PAUSE_WAIT_S = 30.0  # longest wait for a reactor to pause when the association has no DIMSE timeout

_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


Buffer = bytes | bytearray | memoryview


class PreEncoded(Dataset):
    """What a C-MOVE/C-GET handler yields for an instance whose bytes are already encoded.

    Carries only SOP Class/Instance UID (pynetdicom needs them, and lists the instance UID on
    failure) plus `body`: the data set encoded in `transfer_syntax`, without the file meta, as
    one buffer or as a list of buffers (sent as they are, never joined).  The UIDs are plain
    attributes, not elements: making two elements cost ~15 µs per sub-operation.
    """

    def __init__(self, sop_class: str, sop_instance: str, transfer_syntax: str,
                 body: Buffer | list[Buffer]) -> None:
        super().__init__()
        # Dataset.__setattr__ is slow and would make keyword names elements: bypass it
        self.__dict__.update(yy_sop_class=str(sop_class), yy_sop_instance=str(sop_instance),
                             yy_transfer_syntax=str(transfer_syntax), yy_body=body)

    SOPClassUID = property(lambda self: self.__dict__["yy_sop_class"])
    SOPInstanceUID = property(lambda self: self.__dict__["yy_sop_instance"])

    def __bool__(self) -> bool:  # pynetdicom sends a pending sub-operation's data set only if truthy
        return True

    def data_pdus(self, context_id: int, max_pdu: int) -> list[Buffer]:
        """The data set's P-DATA-TF PDUs for this context and maximum PDU (kept for reuse)."""
        key, cached = self.__dict__.get("yy_pdus", (None, None))
        if key != (context_id, max_pdu) or cached is None:
            cached = _data_pdus(context_id, self.yy_body, max_pdu)
            self.__dict__["yy_pdus"] = ((context_id, max_pdu), cached)
        return cached


def part10_body(data: Buffer) -> memoryview:
    """The data set bytes of a Part 10 file (after the preamble and the group 0002 meta)."""
    view = memoryview(data).cast("B")
    pos = 132 if view[128:132] == b"DICM" else 0
    end = len(view)
    while pos + 8 <= end:
        group = view[pos] | (view[pos + 1] << 8)
        if group != 0x0002:
            break
        vr = bytes(view[pos + 4:pos + 6])
        if vr in _LONG_VRS:
            length = struct.unpack_from("<I", view, pos + 8)[0]
            pos += 12 + length
        else:
            length = struct.unpack_from("<H", view, pos + 6)[0]
            pos += 8 + length
    return view[pos:]


# -- DIMSE command sets (PS3.7 E.1: group 0000, always Implicit VR Little Endian) ----------

def _element(elem: int, value: bytes) -> bytes:
    return struct.pack("<HHI", 0x0000, elem, len(value)) + value


def _uid(value: str) -> bytes:
    raw = value.encode("ascii")
    return raw + b"\0" if len(raw) % 2 else raw


def command_set(*elements: tuple[int, bytes]) -> bytes:
    """An encoded command set: the elements (in tag order) after their group length."""
    body = b"".join(_element(elem, value) for elem, value in elements)
    return _element(0x0000, struct.pack("<I", len(body))) + body


def c_store_rq(sop_class: str, sop_instance: str, msg_id: int, priority: int = 2,
               originator_aet: str | None = None, originator_id: int | None = None) -> bytes:
    """C-STORE-RQ command set (PS3.7 Table 9.3-1), as pynetdicom encodes it."""
    us = functools.partial(struct.pack, "<H")
    elements = [(0x0002, _uid(sop_class)), (0x0100, us(0x0001)), (0x0110, us(msg_id)),
                (0x0700, us(priority)), (0x0800, us(0x0001)), (0x1000, _uid(sop_instance))]
    if originator_aet:
        aet = originator_aet.strip().encode("ascii")
        elements.append((0x1030, aet + b" " if len(aet) % 2 else aet))
    if originator_id is not None:
        elements.append((0x1031, us(originator_id)))
    return command_set(*elements)


def pending_rsp(primitive: Any) -> bytes:
    """Pending C-MOVE-RSP / C-GET-RSP command set (PS3.7 Tables 9.3-6, 9.3-4) of a pynetdicom
    C_MOVE / C_GET primitive, as pynetdicom encodes it."""
    from pynetdicom.dimse_primitives import C_MOVE

    us = functools.partial(struct.pack, "<H")
    return command_set(
        (0x0002, _uid(str(primitive.AffectedSOPClassUID))),
        (0x0100, us(0x8021 if isinstance(primitive, C_MOVE) else 0x8010)),
        (0x0120, us(primitive.MessageIDBeingRespondedTo)), (0x0800, us(0x0101)), (0x0900, us(0xFF00)),
        (0x1020, us(primitive.NumberOfRemainingSuboperations or 0)),
        (0x1021, us(primitive.NumberOfCompletedSuboperations or 0)),
        (0x1022, us(primitive.NumberOfFailedSuboperations or 0)),
        (0x1023, us(primitive.NumberOfWarningSuboperations or 0)))


def _fragments(context_id: int, data: list[memoryview], control: int, step: int) -> list[Buffer]:
    """P-DATA-TF PDUs, one PDV each, carrying `data` (several buffers; a fragment may span
    them): PDU headers and slices of the buffers, a scatter list for `sendmsg`."""
    out: list[Buffer] = []
    total = sum(len(p) for p in data)
    sent = part = offset = 0
    while sent < total or (control & 1 and not out):
        size = min(step, total - sent)
        sent += size
        out.append(struct.pack(">BBIIBB", 0x04, 0, size + 6, size + 2, context_id,
                               control | (2 if sent >= total else 0)))
        while size:
            take = min(size, len(data[part]) - offset)
            out.append(data[part][offset:offset + take])
            size -= take
            offset += take
            if offset == len(data[part]):
                part, offset = part + 1, 0
    return out


def _step(max_pdu: int, size: int) -> int:
    """Bytes of data per PDV: the peer's maximum PDU less the PDU and PDV headers (0: no limit)."""
    return max(max_pdu - 6, 1) if max_pdu else max(size, 1)


def _data_pdus(context_id: int, body: Buffer | list[Buffer], max_pdu: int) -> list[Buffer]:
    parts = [memoryview(b).cast("B") for b in (body if isinstance(body, list) else [body])]
    parts = [p for p in parts if len(p)]
    return _fragments(context_id, parts, 0, _step(max_pdu, sum(len(p) for p in parts)))


def message_pdus(context_id: int, command: Buffer, body: Buffer | list[Buffer], max_pdu: int) -> list[Buffer]:
    """P-DATA-TF PDUs of one message (PS3.8 9.3.5, E.2): command, then data set (nothing joined)."""
    cmd = memoryview(command).cast("B")
    return _fragments(context_id, [cmd], 1, _step(max_pdu, len(cmd))) + _data_pdus(context_id, body, max_pdu)


def prepare_pdus(assoc: Association, ds: Any) -> None:
    """Fragment a PreEncoded data set for the association ahead of its sub-operation (in a
    reader thread: ~60 µs less on the sending thread per 512x512 CT)."""
    if isinstance(ds, PreEncoded):
        try:
            cx_id = context_id(assoc, ds)
        except ValueError:
            return
        ds.data_pdus(cx_id, int(assoc.dimse.maximum_pdu_size or 0))


def context_id(assoc: Association, ds: PreEncoded) -> int:
    """The accepted context (SCU role) for a PreEncoded data set; ValueError when there is none.
    Kept per association: pynetdicom's lookup walks every accepted context (a C-GET requester
    proposes ~120) and builds UIDs, twice per sub-operation; the contexts never change once
    the association is established."""
    key = (ds.SOPClassUID, ds.yy_transfer_syntax)
    known: dict[tuple[str, str], int] = assoc.__dict__.setdefault("_yy_context_ids", {})
    cx_id = known.get(key)
    if cx_id is None:
        context = assoc._get_valid_context(key[0], key[1], "scu", allow_conversion=False)
        cx_id = known[key] = int(context.context_id)  # type: ignore[arg-type]
    return cx_id


IOV_MAX = 512  # well under Linux's 1024 buffers per sendmsg


def send_buffers(sock: socket.socket, buffers: list[Buffer], timeout: float | None = None) -> None:
    """Write every buffer, in order, with as few system calls as the kernel allows (no join).

    With `timeout` (the DIMSE timeout), a peer that reads nothing for that long gets its
    connection shut down (TimeoutError): a blocking send would wait for it forever, and the
    C-MOVE/C-GET/C-FIND with it."""
    pending = [b if isinstance(b, bytes) else memoryview(b).cast("B") for b in buffers if len(b)]
    if isinstance(sock, ssl.SSLSocket):  # DICOM TLS: no sendmsg; TLS copies into records anyway
        for b in pending:
            sock.sendall(b)
        return
    deadline = None if timeout is None else time.monotonic() + timeout
    flags = 0 if deadline is None else socket.MSG_DONTWAIT
    while pending:
        try:
            sent = sock.sendmsg(pending[:IOV_MAX], [], flags)
        except BlockingIOError:
            sent = 0
        if not sent and deadline is not None:  # the peer's window is full: wait, bounded
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([], [sock], [], left)[1]:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                raise TimeoutError("the peer read nothing within the DIMSE timeout")
            continue
        while sent and pending:
            if sent >= len(pending[0]):
                sent -= len(pending.pop(0))
            else:
                pending[0] = memoryview(pending[0])[sent:]
                sent = 0


# -- reading a response without the DUL thread --------------------------------------------

def own_socket(assoc: Association) -> bool:
    """Own a requested association's socket from now until it is released or aborted (a
    Storage SCP sends nothing unasked); False when that is not possible."""
    owner = SocketOwner.of(assoc)
    if owner is None:
        return False
    owner.take()
    for name in ("release", "abort"):
        original = getattr(assoc, name)

        def give_back(*args: Any, _original: Any = original, _name: str = name, **kwargs: Any) -> Any:
            owner.give_back()  # the DUL reads the A-RELEASE-RP, or closes
            if _name == "release" and getattr(assoc, "_yy_dead", False):
                # the peer aborted or the connection broke under a sub-operation: a release
                # would wait out the ACSE timeout for an A-RELEASE-RP that cannot come, while the
                # C-MOVE requester waits for its final response
                try:
                    return assoc.abort()
                except Exception:  # noqa: BLE001 - the transport is gone already
                    assoc.kill()
                    return None
            return _original(*args, **kwargs)

        setattr(assoc, name, give_back)
    return True


class _Unexpected(Exception):
    """The peer sent something other than the awaited response; `handled`: given to the DUL."""

    def __init__(self, message: str, handled: bool = False) -> None:
        super().__init__(message)
        self.handled = handled


def _recv_exact(sock: socket.socket, size: int, deadline: float | None) -> bytearray:
    """`size` bytes; a size beyond RECV_PREALLOC (claimed by the peer) grows with what arrives."""
    if size > RECV_PREALLOC:
        out = bytearray()
        while len(out) < size:
            out += _recv_exact(sock, min(RECV_PREALLOC, size - len(out)), deadline)
        return out
    buf = bytearray(size)
    view, got = memoryview(buf), 0
    while got < size:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([sock], [], [], left)[0]:
                raise TimeoutError("no response within the DIMSE timeout")
        n = sock.recv_into(view[got:], size - got)
        if not n:
            raise ConnectionError("connection closed by the peer")
        got += n
    return buf


def _parse_command(data: bytes | bytearray) -> dict[int, bytes]:
    """Elements of an Implicit VR LE command set by element number (group 0000)."""
    out: dict[int, bytes] = {}
    pos = 0
    while pos + 8 <= len(data):
        _, elem, length = struct.unpack_from("<HHI", data, pos)
        out[elem] = bytes(data[pos + 8:pos + 8 + length])
        pos += 8 + length
    return out


def read_response(assoc: Association, sock: socket.socket, timeout: float | None) -> dict[int, bytes]:
    """The next DIMSE response received: P-DATA-TF PDUs read straight from the socket (PS3.8
    9.3.5).  A C-CANCEL-RQ meanwhile (a C-GET requester's) is recorded as pynetdicom records
    it; another PDU goes to the DUL (_Unexpected)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    command = bytearray()
    while True:
        kind, _, length = struct.unpack(">BBI", _recv_exact(sock, 6, deadline))
        pdu = _recv_exact(sock, length, deadline)
        if kind != 0x04:  # what the DUL would have done with it (PS3.8 9.2 state machine)
            dul = assoc.dul
            decoded, event = dul._decode_pdu(bytearray(struct.pack(">BBI", kind, 0, length)) + pdu)
            dul.event_queue.put(event)
            dul._recv_pdu.put(decoded)
            raise _Unexpected(f"PDU type 0x{kind:02X} instead of a response", handled=True)
        pos, last_command = 0, False
        while pos + 6 <= length:
            item_len, _, control = struct.unpack_from(">IBB", pdu, pos)
            if control & 1:
                command += pdu[pos + 6:pos + 4 + item_len]
                last_command = bool(control & 2)
            pos += 4 + item_len
        if last_command:
            fields = _parse_command(command)
            command = bytearray()
            if _us(fields, 0x0100) == 0x0FFF:  # C-CANCEL-RQ (PS3.7 9.3.2.3)
                cancel = C_CANCEL()
                cancel.MessageIDBeingRespondedTo = _us(fields, 0x0120)
                assoc.dimse.cancel_req[cancel.MessageIDBeingRespondedTo] = cancel
                continue
            if _us(fields, 0x0800, 0x0101) != 0x0101:  # no response we await carries a data set
                raise _Unexpected("a message with a data set")
            return fields


def _us(fields: dict[int, bytes], elem: int, default: int = 0) -> int:
    value = fields.get(elem)
    return struct.unpack("<H", value)[0] if value is not None and len(value) == 2 else default


def _status_of(fields: dict[int, bytes], command_field: int, msg_id: int) -> Dataset | None:
    if _us(fields, 0x0100) != command_field or _us(fields, 0x0120) != msg_id or 0x0900 not in fields:
        return None
    status = Dataset()
    status.Status = _us(fields, 0x0900)
    if 0x0902 in fields:
        status.ErrorComment = fields[0x0902].decode("ascii", "replace").rstrip("\0 ")
    return status


def send_pre_encoded(assoc: Association, ds: PreEncoded, msg_id: int = 1, priority: int = 2,
                     originator_aet: str | None = None, originator_id: int | None = None) -> Dataset:
    """`Association.send_c_store` for a PreEncoded data set; same return and failure contract."""
    if not assoc.is_established:
        raise RuntimeError("The association with a peer SCP must be established before "
                           "sending a C-STORE request")
    cx_id = context_id(assoc, ds)
    command = c_store_rq(ds.SOPClassUID, ds.SOPInstanceUID, msg_id, priority, originator_aet, originator_id)
    max_pdu = int(assoc.dimse.maximum_pdu_size or 0)
    cmd = memoryview(command)
    pdus = _fragments(cx_id, [cmd], 1, _step(max_pdu, len(cmd))) + ds.data_pdus(cx_id, max_pdu)

    # Pause the association's reactor so that it cannot take the response (as pynetdicom
    # does).  When we are not the reactor's own thread (C-MOVE sub-associations, `dimse
    # store`), it stays paused after the response: resuming it means it sleeps 1 ms before
    # it pauses again, a wait the next sub-operation paid (~20 % of the time per instance
    # here).  release()/abort() resume it; nothing else is expected from a Storage SCP.
    in_reactor = threading.current_thread() is assoc
    assoc._reactor_checkpoint.clear()
    paused_by = time.monotonic() + (assoc.dimse_timeout or PAUSE_WAIT_S)
    while not assoc._is_paused:
        if time.monotonic() > paused_by:  # a reactor that never pauses: the association is unusable
            log.warning("C-STORE sub-operation %d: the association's reactor did not pause", msg_id)
            assoc._reactor_checkpoint.set()
            assoc.abort()
            return Dataset()
        time.sleep(0.0001)
    dul_socket: Any = assoc.dul.socket
    owner = SocketOwner.of(assoc)
    try:
        sock: Any = dul_socket.socket if dul_socket else None
        if sock is None:
            raise OSError("no socket")
        # C-MOVE: owned since establishment; C-GET (our reactor's thread): for this response
        if owner is not None and (owner.owned or in_reactor):
            held = owner.owned
            if not held:
                owner.take()
            try:
                send_buffers(sock, pdus, assoc.dimse_timeout)
                fields = read_response(assoc, sock, assoc.dimse_timeout)
                handled = False
            except (_Unexpected, TimeoutError, MemoryError) as exc:  # MemoryError: never the server's end
                fields, handled = {}, getattr(exc, "handled", False)
                if handled:
                    assoc._yy_dead = True  # type: ignore[attr-defined]  # e.g. the peer's A-ABORT
                log.warning("C-STORE sub-operation %d: %s", msg_id, exc)
            finally:
                if not held:
                    owner.give_back()
            assoc.dul._idle_timer.restart()
            status = _status_of(fields, 0x8001, msg_id)
            if status is None:  # a failed sub-operation; an association we cannot trust
                assoc._reactor_checkpoint.set()
                if not handled:
                    assoc.abort()
                return Dataset()
            if in_reactor:
                assoc._reactor_checkpoint.set()
            return status
        send_buffers(sock, pdus, assoc.dimse_timeout)
        assoc.dul._idle_timer.restart()
        _, rsp = assoc.dimse.get_msg(block=True)
    except OSError:
        assoc._yy_dead = True  # type: ignore[attr-defined]
        assoc._reactor_checkpoint.set()
        assoc.dul.event_queue.put("Evt17")  # transport closed, as pynetdicom's send() does
        raise
    if rsp is None:
        assoc._reactor_checkpoint.set()
        assoc._handle_no_response()
        return Dataset()
    if in_reactor:
        assoc._reactor_checkpoint.set()
    return assoc._check_received_status(rsp)


def accept_pre_encoded(assoc: Association) -> None:
    """Make `assoc.send_c_store` take PreEncoded data sets (anything else: pynetdicom's path)."""
    if getattr(assoc, "_yy_pre_encoded", False):
        return
    original = assoc.send_c_store

    def send_c_store(dataset: Any, msg_id: int = 1, priority: int = 2,
                     originator_aet: str | None = None, originator_id: int | None = None) -> Dataset:
        if isinstance(dataset, PreEncoded):
            return send_pre_encoded(assoc, dataset, msg_id, priority, originator_aet, originator_id)
        return original(dataset, msg_id=msg_id, priority=priority,
                        originator_aet=originator_aet, originator_id=originator_id)

    assoc.send_c_store = send_c_store  # type: ignore[method-assign]
    assoc._yy_pre_encoded = True  # type: ignore[attr-defined]


class DirectResponses:
    """C-FIND pending responses written straight to the association's socket, batched.

    pynetdicom sends each response as a primitive queued to its DUL thread, which encodes the
    command set, fragments and sends it: ~1 ms per match here, most of a C-FIND's time on
    a study list.  The handler runs in the association's reactor thread and the requester
    waits for the final response before it sends anything else, so nothing else is being
    written on the association meanwhile; the final response still goes through pynetdicom
    after these.  `None` from `for_event` (TLS, no socket, deflate): use pynetdicom's path.
    """

    FLUSH_BYTES = 64 * 1024
    FLUSH_EVERY = 16

    def __init__(self, assoc: Association, sock: Any, context_id: int, ts: Any, command: bytes) -> None:
        self.assoc, self.sock, self.context_id, self.command = assoc, sock, context_id, command
        self.implicit, self.little = bool(ts.is_implicit_VR), bool(ts.is_little_endian)
        self.max_pdu = int(assoc.dimse.maximum_pdu_size or 0)
        self.pending: list[Buffer] = []
        self.count = self.size = 0

    @classmethod
    def for_event(cls, event: Any) -> DirectResponses | None:
        assoc = event.assoc
        dul_socket = getattr(assoc.dul, "socket", None)
        sock = getattr(dul_socket, "socket", None)
        try:
            import ssl

            if sock is None or isinstance(sock, ssl.SSLSocket):
                return None
            context = event.context
            ts = context.transfer_syntax
            if ts.is_deflated:
                return None
            from pynetdicom.dimse_messages import C_FIND_RSP
            from pynetdicom.dimse_primitives import C_FIND

            req = event.request
            rsp = C_FIND()
            rsp.MessageID = req.MessageID
            rsp.MessageIDBeingRespondedTo = req.MessageID
            rsp.AffectedSOPClassUID = req.AffectedSOPClassUID
            rsp.Status = 0xFF00
            rsp.Identifier = BytesIO(b"\x00")
            msg = C_FIND_RSP()
            msg.primitive_to_message(rsp)
            command = encode(msg.command_set, True, True)
            if command is None:
                return None
            return cls(assoc, sock, int(context.context_id), ts, command)
        except Exception:
            log.debug("direct C-FIND responses not possible", exc_info=True)
            return None

    def add(self, identifier: Dataset) -> None:
        """Queue one pending response; written when enough have gathered."""
        body = encode(identifier, self.implicit, self.little, False)
        if body is None:
            raise ValueError("cannot encode a C-FIND response identifier")
        self.add_encoded(body)

    def add_encoded(self, body: bytes) -> None:
        """Queue one pending response whose identifier is already encoded in the context's syntax."""
        pdus = message_pdus(self.context_id, self.command, memoryview(body), self.max_pdu)
        self.pending.extend(pdus)
        self.count += 1
        self.size += len(body) + len(self.command)
        if self.count >= self.FLUSH_EVERY or self.size >= self.FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Write what is queued (raises OSError when the peer is gone)."""
        if not self.pending:
            return
        data = b"".join(self.pending)
        self.pending.clear()
        self.count = self.size = 0
        try:
            send_buffers(self.sock, [data], self.assoc.dimse_timeout)
        except OSError:
            self.assoc.dul.event_queue.put("Evt17")  # transport closed, as pynetdicom does
            raise
        self.assoc.dul._idle_timer.restart()


def send_command(assoc: Association, sock: Any, context_id: int, command: bytes) -> None:
    """Write a message without a data set (a response's command set) on the association's
    socket; a broken or stuck connection becomes Evt17, as pynetdicom's own send makes it."""
    try:
        if sock is None:
            raise OSError("no socket")
        send_buffers(sock, message_pdus(context_id, command, b"", int(assoc.dimse.maximum_pdu_size or 0)),
                     assoc.dimse_timeout)
    except OSError:
        assoc.dul.event_queue.put("Evt17")
        return
    assoc.dul._idle_timer.restart()

