"""The DICOMweb sender (STOW-RS through yunying.stow_client). The C-STORE sender lives in
dimse/forward.py (yunying imports no face); the composition root hands both to the Router."""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from yunying.routing.outgoing import Outgoing
from yunying.stow_client import StowSender

TIMEOUT_S = 60
REQUEST_BYTES = 64 << 20  # instances per STOW request up to this much (a request is held in memory)


def stow(destination: dict[str, Any], items: Sequence[Outgoing]) -> dict[str, str | None]:
    """STOW-RS the items, each in its offered syntax (as stored, or the rule's lossy one), in
    requests of at most REQUEST_BYTES (one instance alone may be larger)."""
    token = os.environ.get(destination.get("token_env") or "", "") or None
    sender = StowSender(destination["url"], token, own_key=False, timeout=TIMEOUT_S)
    out: dict[str, str | None] = {}
    try:
        for group in _groups(items):
            refused = sender.store_parts([item.read(item.offer[0]) for item in group])
            unnamed = refused.pop("", None)
            out.update({item.sop: refused.get(item.sop, unnamed) for item in group})
    finally:
        sender.close()
    return out


def _groups(items: Sequence[Outgoing]) -> list[list[Outgoing]]:
    groups: list[list[Outgoing]] = [[]]
    total = 0
    for item in items:
        if groups[-1] and total + item.size > REQUEST_BYTES:
            groups.append([])
            total = 0
        groups[-1].append(item)
        total += item.size
    return [g for g in groups if g]
