"""C-FIND SCP (PS3.4 C.4.1): Patient and Study Root, pending responses streamed from the index."""
from __future__ import annotations

import logging
import ssl
import struct
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.events import Event

from dimse.access import AccessPolicy
from dimse.associations import tally
from dimse.fastsend import DirectResponses, command_set, send_command
from dimse.identifier import (
    InvalidIdentifier,
    ResponseEncoder,
    compile_find,
    response_identifier,
    response_keys,
    root_of,
)
from dimse.persons import OTHER_IDS, PersonMatching, with_other_ids
from dimse.store_scp import status
from yunying.errors import ArchiveError
from yunying.scope import scoped

if TYPE_CHECKING:
    from yunying.archive import Archive

log = logging.getLogger("yunying.dimse")

PENDING, CANCELLED, SUCCESS = 0xFF00, 0xFE00, 0x0000
UNABLE_TO_PROCESS = 0xC001  # PS3.4 C.4.1.1.4: Cxxx unable to process
EARLY_FLUSH = frozenset({0, 2, 6})  # after the 1st, 3rd and 7th match; then DirectResponses' batches


def on_c_find(event: Event, archive: Archive, policy: AccessPolicy, aet: str,
              persons: PersonMatching | None = None) -> Iterator[tuple[Any, Any]]:
    """EVT_C_FIND: yield (status, identifier) pairs; never holds all matches in memory."""
    calling = str(event.assoc.requestor.ae_title).strip()
    if not policy.may(calling, "find"):
        yield status(UNABLE_TO_PROCESS, "calling AE title not authorized to query"), None
        return
    direct_final(event.assoc)
    event.assoc.dimse._yy_find_final_ok = True  # type: ignore[attr-defined]  # until a pending response takes pynetdicom's path
    root = root_of(str(event.request.AffectedSOPClassUID))
    try:
        identifier = event.identifier
        query = compile_find(identifier, root)
    except InvalidIdentifier as exc:
        tally(event, "find_refused")
        yield status(exc.status, exc.reason), None
        return
    except Exception as exc:  # noqa: BLE001 - an identifier pydicom cannot decode
        tally(event, "find_refused")
        log.info("C-FIND from %s: undecodable identifier (%s)", calling, type(exc).__name__)
        yield status(0xA900, "identifier cannot be decoded"), None
        return
    members: list[tuple[str, str]] = []
    if persons is not None and policy.peer(calling).person_matching:  # issue 15: one ID + issuer, every linked one
        try:
            query, members = persons.expand(query, policy.visibility(calling))
        except Exception as exc:  # noqa: BLE001 - the app-state store away: say so, do not guess
            log.error("C-FIND from %s: person look-up failed: %s", calling, type(exc).__name__)
            yield status(UNABLE_TO_PROCESS, "patient master index unavailable"), None
            return
    rows = archive.search(scoped(query, policy.visibility(calling)))  # filtered in the index query
    results = with_other_ids(rows, members, int(OTHER_IDS, 16) in identifier) if members else rows
    ts = event.context.transfer_syntax
    implicit_le = bool(ts.is_implicit_VR) if ts.is_little_endian else None
    direct: DirectResponses | None = None
    keys = response_keys(identifier)
    # a sequence or binary key goes through pydicom for every match: do not try bytes first
    encoder = ResponseEncoder(keys, query.level, aet, implicit_le) if implicit_le is not None else None
    if encoder is not None and not encoder.textual:
        encoder = None
    sent = 0
    try:
        for result in results:
            if event.is_cancelled:
                if direct is not None:
                    direct.flush()
                tally(event, "find_cancelled")
                yield CANCELLED, None
                return
            if sent == 0:  # built at the first match: a query matching nothing never pays for it
                direct = _direct(event)
            body = encoder.encode(result) if direct is not None and encoder is not None else None
            if body is not None:
                direct.add_encoded(body)  # type: ignore[union-attr]
            else:
                rsp = response_identifier(result, keys, query.level, aet, implicit_le)
                if direct is not None:
                    direct.add(rsp)
                else:  # queued to pynetdicom's DUL thread: the final must queue behind it
                    event.assoc.dimse._yy_find_final_ok = False  # type: ignore[attr-defined]
                    yield PENDING, rsp
            if sent in EARLY_FLUSH and direct is not None:
                # the first matches go out at once, then in growing batches: the requester decodes
                # them (~0.3 ms a response with pynetdicom) while the next ones are found and encoded
                direct.flush()
            sent += 1
        if direct is not None:
            direct.flush()
    except OSError:  # the requester went away while we wrote responses
        log.info("C-FIND from %s: connection lost after %d matches", calling, sent)
        tally(event, "find_failed")
        return
    except ArchiveError as exc:
        log.info("C-FIND from %s refused: %s", calling, exc.reason)
        tally(event, "find_refused")
        _flush_quietly(direct)
        yield status(exc.dimse_status, exc.reason), None
        return
    except Exception as exc:  # noqa: BLE001 - the edge: any failure becomes a status
        log.error("C-FIND from %s failed after %d matches: %s", calling, sent, type(exc).__name__)
        tally(event, "find_failed")
        _flush_quietly(direct)
        yield status(UNABLE_TO_PROCESS, "internal error while searching"), None
        return
    finally:
        close = getattr(rows, "close", None)
        if close is not None:
            close()
        tally(event, "find_matches", sent)
    tally(event, "find")
    yield SUCCESS, None


# (0000,0120) MessageIDBeingRespondedTo in an implicit VR little endian command set
_RESPONDED_TO = bytes.fromhex("0000200102000000")
_commands: weakref.WeakKeyDictionary[Any, dict[tuple[int, str], tuple[DirectResponses, int]]] = \
    weakref.WeakKeyDictionary()


def _direct(event: Event) -> DirectResponses | None:
    """DirectResponses.for_event, its response command set encoded once per association and
    SOP class (~0.3 ms with pynetdicom's message classes): only the message ID differs."""
    req = event.request
    key = (int(event.context.context_id), str(req.AffectedSOPClassUID))
    known = _commands.setdefault(event.assoc, {})
    if key not in known:
        direct = DirectResponses.for_event(event)
        at = direct.command.find(_RESPONDED_TO) if direct is not None else -1
        if direct is not None and at >= 0:
            known[key] = (direct, at + len(_RESPONDED_TO))
        return direct
    template, at = known[key]
    command = bytearray(template.command)
    struct.pack_into("<H", command, at, req.MessageID or 0)
    return DirectResponses(template.assoc, template.sock, template.context_id,
                           event.context.transfer_syntax, bytes(command))


def final_rsp(sop_class: str, msg_id: int) -> bytes:
    """The final Success C-FIND-RSP command set (PS3.7 Table 9.3-2), as pynetdicom encodes it."""
    uid = sop_class.encode("ascii")
    return command_set((0x0002, uid + b"\0" if len(uid) % 2 else uid), (0x0100, struct.pack("<H", 0x8020)),
                       (0x0120, struct.pack("<H", msg_id)), (0x0800, struct.pack("<H", 0x0101)),
                       (0x0900, struct.pack("<H", SUCCESS)))


def direct_final(assoc: Any) -> None:
    """Write C-FIND's final Success straight to the requester's socket, as the pending responses
    before it (DirectResponses): pynetdicom encodes it through pydicom and its DUL thread, about
    a quarter of the server's CPU per C-FIND on a study list (py-spy). Installed once per
    association, over pynetdicom's send of that response only, so it still goes out where
    pynetdicom sends it: after the handler's last yield, i.e. after the audit record is
    journaled (dimse/audit_hooks.py). Other responses, TLS, and a query whose pending responses
    were queued to pynetdicom (a deflated syntax): pynetdicom's path, in order behind them."""
    dimse = assoc.dimse
    sock: Any = getattr(getattr(assoc.dul, "socket", None), "socket", None)
    if getattr(dimse, "_yy_direct_find_final", False) or sock is None or isinstance(sock, ssl.SSLSocket):
        return
    original = dimse.send_msg
    outgoing = assoc.dul.to_provider_queue

    def send_msg(primitive: Any, context_id: int) -> None:
        if (type(primitive) is C_FIND and getattr(dimse, "_yy_find_final_ok", False)
                and primitive.Status == SUCCESS and primitive.Identifier is None
                and primitive.MessageIDBeingRespondedTo is not None and primitive.AffectedSOPClassUID
                and getattr(primitive, "ErrorComment", None) is None
                and getattr(primitive, "OffendingElement", None) is None
                and outgoing.empty()):  # nothing of pynetdicom's still waiting to go out before it
            dimse._yy_find_final_ok = False  # set again by the next C-FIND's handler
            send_command(assoc, sock, context_id,
                         final_rsp(str(primitive.AffectedSOPClassUID), primitive.MessageIDBeingRespondedTo))
            return
        original(primitive, context_id)

    dimse.send_msg = send_msg
    dimse._yy_direct_find_final = True


def _flush_quietly(direct: DirectResponses | None) -> None:
    """Responses already built go out before the failure status (their order is kept)."""
    if direct is not None:
        try:
            direct.flush()
        except OSError:
            pass
