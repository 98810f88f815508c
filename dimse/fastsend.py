"""C-STORE sub-operations from bytes already encoded (the archive's stored Part 10 bytes).

pynetdicom 3.0.4's `send_c_store` wants a Dataset: for a C-MOVE/C-GET of stored instances
that meant dcmread + encode per instance (~1.5-2 ms for a 512x512 CT), and its DIMSE layer
then hands each P-DATA PDU (16 KiB with DCMTK's default) one at a time to the DUL thread,
which sends one per reactor loop.  Here the data set bytes are the stored ones (bit-exact as
received) and the whole message, every PDU of it, is written with one `sendall` from the
calling thread.  The state machine is not involved: sending P-DATA in Sta6 leaves the state
unchanged (PS3.8 Table 9-10, DT-1), and nothing else writes on the association while a
C-STORE sub-operation waits for its response (pynetdicom pauses the reactor for it).
"""
from __future__ import annotations

import logging
import struct
import threading
import time
from io import BytesIO
from typing import Any

from pydicom import Dataset
from pynetdicom.association import Association
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode

log = logging.getLogger("yunying.dimse")

_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


class PreEncoded(Dataset):
    """What a C-MOVE/C-GET handler yields for an instance whose bytes are already encoded.

    Carries only SOP Class/Instance UID (pynetdicom needs them, and lists the instance UID on
    failure) plus `body`: the data set encoded in `transfer_syntax`, without the file meta.
    """

    def __init__(self, sop_class: str, sop_instance: str, transfer_syntax: str, body: bytes | memoryview) -> None:
        super().__init__()
        self.SOPClassUID = sop_class
        self.SOPInstanceUID = sop_instance
        # Not elements: Dataset.__setattr__ keeps non-keyword names as plain attributes.
        self.yy_transfer_syntax = str(transfer_syntax)
        self.yy_body = body


def part10_body(data: bytes) -> memoryview:
    """The data set bytes of a Part 10 file (after the preamble and the group 0002 meta)."""
    view = memoryview(data)
    pos = 132 if data[128:132] == b"DICM" else 0
    end = len(data)
    while pos + 8 <= end:
        group = data[pos] | (data[pos + 1] << 8)
        if group != 0x0002:
            break
        vr = bytes(data[pos + 4:pos + 6])
        if vr in _LONG_VRS:
            length = struct.unpack_from("<I", data, pos + 8)[0]
            pos += 12 + length
        else:
            length = struct.unpack_from("<H", data, pos + 6)[0]
            pos += 8 + length
    return view[pos:]


def _pdus(context_id: int, command: bytes, body: memoryview, max_pdu: int) -> list[bytes | memoryview]:
    """P-DATA-TF PDUs of one message, one PDV each (PS3.8 9.3.5, E.2): command, then data set."""
    out: list[bytes | memoryview] = []
    step = (max_pdu - 6) if max_pdu else max(len(command), len(body), 1)

    def add(data: bytes | memoryview, kind: int) -> None:  # kind: 0 data set, 1 command
        n = len(data)
        start = 0
        while True:
            chunk = data[start:start + step]
            last = start + step >= n
            header = 2 if last else 0
            out.append(struct.pack(">BBIIBB", 0x04, 0, len(chunk) + 6, len(chunk) + 2,
                                   context_id, kind | header))
            out.append(chunk)
            start += step
            if last:
                break

    add(command, 1)
    if len(body):
        add(body, 0)
    return out


def send_pre_encoded(assoc: Association, ds: PreEncoded, msg_id: int = 1, priority: int = 2,
                     originator_aet: str | None = None, originator_id: int | None = None) -> Dataset:
    """`Association.send_c_store` for a PreEncoded data set; same return and failure contract."""
    if not assoc.is_established:
        raise RuntimeError("The association with a peer SCP must be established before "
                           "sending a C-STORE request")
    context = assoc._get_valid_context(ds.SOPClassUID, ds.yy_transfer_syntax, "scu",
                                       allow_conversion=False)
    req = C_STORE()
    req.MessageID = msg_id
    req.Priority = priority
    req.MoveOriginatorApplicationEntityTitle = originator_aet
    req.MoveOriginatorMessageID = originator_id
    req.AffectedSOPClassUID = ds.SOPClassUID
    req.AffectedSOPInstanceUID = ds.SOPInstanceUID
    req.DataSet = BytesIO(b"")
    msg = C_STORE_RQ()
    msg.primitive_to_message(req)
    msg.command_set.CommandDataSetType = 0x0001  # a data set follows
    command = encode(msg.command_set, True, True)
    assert command is not None
    cx_id = int(context.context_id)  # type: ignore[arg-type]
    pdus = _pdus(cx_id, command, memoryview(ds.yy_body), int(assoc.dimse.maximum_pdu_size or 0))

    # Pause the association's reactor so that it cannot take the response (as pynetdicom
    # does).  When we are not the reactor's own thread (C-MOVE sub-associations, `dimse
    # store`), it stays paused after the response: resuming it means it sleeps 1 ms before
    # it pauses again, a wait the next sub-operation paid (~20 % of the time per instance
    # here).  release()/abort() resume it; nothing else is expected from a Storage SCP.
    in_reactor = threading.current_thread() is assoc
    assoc._reactor_checkpoint.clear()
    while not assoc._is_paused:
        time.sleep(0.0001)
    try:
        sock: Any = assoc.dul.socket.socket if assoc.dul.socket else None
        if sock is None:
            raise OSError("no socket")
        sock.sendall(b"".join(pdus))
        assoc.dul._idle_timer.restart()
        _, rsp = assoc.dimse.get_msg(block=True)
    except OSError:
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
        self.pending: list[bytes | memoryview] = []
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
        pdus = _pdus(self.context_id, self.command, memoryview(body), self.max_pdu)
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
            self.sock.sendall(data)
        except OSError:
            self.assoc.dul.event_queue.put("Evt17")  # transport closed, as pynetdicom does
            raise
        self.assoc.dul._idle_timer.restart()
