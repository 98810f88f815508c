"""The DICOMweb sender (STOW-RS through yunying.stow_client). The C-STORE sender lives in
dimse/forward.py (yunying imports no face); the composition root hands both to the Router."""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from yunying.routing.outgoing import Outgoing
from yunying.stow_client import StowSender

TIMEOUT_S = 60


def stow(destination: dict[str, Any], items: Sequence[Outgoing]) -> dict[str, str | None]:
    """STOW-RS the items in one request, each in its offered syntax (as stored, or the rule's lossy one)."""
    token = os.environ.get(destination.get("token_env") or "", "") or None
    sender = StowSender(destination["url"], token, own_key=False, timeout=TIMEOUT_S)
    try:
        refused = sender.store_parts([item.read(item.offer[0]) for item in items])
    finally:
        sender.close()
    unnamed = refused.pop("", None)
    return {item.sop: refused.get(item.sop, unnamed) for item in items}
