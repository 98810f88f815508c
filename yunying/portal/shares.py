"""A patient's share links: capability tokens (kind "share") with a generated access code and a
validity, created by the patient's account, revocable by it."""
from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from yunying.auth import tokens
from yunying.auth.errors import InvalidRequest, NotFound
from yunying.auth.keys import digest
from yunying.auth.schema import capability_tokens
from yunying.auth.store import Store
from yunying.portal.exams import DeliveryOff

VALIDITY_HOURS = (24, 72, 168)  # the choices offered; any 1-720 h is accepted ("custom")
MAX_HOURS = 720


def create_share(store: Store, account: str, exam: dict[str, Any], hours: int) -> dict[str, Any]:
    """A share of one of the account's exams; the token and the code are answered once."""
    if not isinstance(hours, int) or isinstance(hours, bool) or not 1 <= hours <= MAX_HOURS:
        raise InvalidRequest(f"hours: 1-{MAX_HOURS}")
    code = f"{secrets.randbelow(10 ** 6):06d}"
    share_id, token = tokens.create_capability(
        store, created_by=account, hospital=exam["hospital"], studies=[exam["study"]], permissions=["view"],
        expires_in=hours * 3600, code=code, label="patient share", kind="share")
    return {"id": share_id, "token": token, "code": code, "expires_at": int(time.time()) + hours * 3600}


def list_shares(store: Store, account: str) -> list[dict[str, Any]]:
    keep = ("id", "studies", "expires_at", "created_at", "revoked_at", "last_used_at")
    return [{k: r[k] for k in keep} for r in tokens.list_capabilities(store, created_by=account)]


def revoke_share(store: Store, account: str, share_id: str) -> None:
    tokens.revoke_capability(store, share_id, created_by=account)


def share_state(store: Store, token: str, withheld: Callable[[list[str]], bool] | None = None) -> dict[str, Any]:
    """What a share link is now (asked before the code is typed): active, expired or revoked;
    DeliveryOff (410) when the hospital has withheld its exam from patients since."""
    now = int(time.time())
    with store.engine.connect() as conn:
        row = conn.execute(select(capability_tokens).where(capability_tokens.c.token_hash == digest(token or ""),
                                                           capability_tokens.c.kind == "share")).first()
    if row is None:
        raise NotFound("unknown share link")
    if withheld is not None and withheld(list(row.studies)):
        raise DeliveryOff("online delivery of this exam is switched off by the hospital")
    state = ("revoked" if row.revoked_at is not None else "expired" if now >= row.expires_at
             else "locked" if row.locked_until and now < row.locked_until else "active")
    return {"state": state, "expires_at": row.expires_at, "studies": row.studies if state == "active" else []}
