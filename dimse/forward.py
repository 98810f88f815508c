"""C-STORE of routed instances (issue 15 part 7): the Router (yunying/routing) prepares each
instance's Part 10 bytes in a syntax of its offer; this sends them on one association."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pynetdicom.presentation import build_context

from dimse.fastsend import PreEncoded, accept_pre_encoded, part10_body
from dimse.retrieve import MAX_CONTEXTS, accepted_syntaxes
from dimse.scu import Peer, _status, associate
from yunying.routing.outgoing import Outgoing

log = logging.getLogger("yunying.dimse")
TIMEOUT_S = 30.0


def sender(our_aet: str) -> Any:
    """A routing Sender calling from `our_aet`."""
    def send(destination: dict[str, Any], items: Sequence[Outgoing]) -> dict[str, str | None]:
        timeout = float(destination.get("timeout", TIMEOUT_S))
        return c_store(Peer(destination["host"], destination["port"], destination["aet"], our_aet, timeout), items)
    return send


def c_store(peer: Peer, items: Sequence[Outgoing]) -> dict[str, str | None]:
    """One presentation context per (SOP class, syntax) offered, so the peer accepts each on its own."""
    pairs = list(dict.fromkeys((i.sop_class, ts) for i in items for ts in i.offer))[:MAX_CONTEXTS]
    out: dict[str, str | None] = {}
    with associate(peer, [build_context(cls, [ts]) for cls, ts in pairs]) as assoc:
        accept_pre_encoded(assoc)
        for item in items:
            accepted = accepted_syntaxes(assoc.accepted_contexts, item.sop_class)
            ts = next((t for t in item.offer if t in accepted), None)
            if ts is None:
                out[item.sop] = f"{peer.called} accepted none of the offered syntaxes"
                continue
            try:
                raw = item.read(ts)
            except Exception as exc:  # noqa: BLE001 - e.g. no encoder for the asked syntax: this one fails
                out[item.sop] = f"could not prepare it in {ts}: {type(exc).__name__}"
                continue
            code = _status(assoc.send_c_store(PreEncoded(item.sop_class, item.sop, ts, part10_body(raw))),
                           "C-STORE")
            ok = code == 0x0000 or code in (0x0107, 0x0116) or code >> 12 == 0xB
            out[item.sop] = None if ok else f"C-STORE status 0x{code:04X}"
    return out
