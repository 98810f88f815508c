"""Capability tokens (shares, patients) and the short access tokens they are exchanged for.

A capability token is >= 128 random bits (we use 192), kept as its SHA-256, bound to studies
or series, view/download, a validity window, an optional access code (argon2, locked for
LOCK_SECONDS after MAX_CODE_FAILURES wrong tries), revocable, last use recorded.
`issue_access_token` is the one place access tokens are minted: opaque and stored hashed
today; it can switch to the OIDC provider's signed JWTs without its callers changing.
"""
from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import insert, select, update

from yunying.auth.errors import BadCredentials, Forbidden, InvalidRequest, NotFound
from yunying.auth.keys import digest, new_secret
from yunying.auth.passwords import hash_password, verify_password
from yunying.auth.schema import access_tokens, capability_tokens, row_dict
from yunying.auth.store import Store

ACCESS_TTL = 15 * 60  # issue 11: access tokens live at most 15 minutes
MAX_CODE_FAILURES = 5
LOCK_SECONDS = 15 * 60
MAX_LIFETIME = 366 * 86400
CAPABILITY_PERMISSIONS = {"view", "download"}
MIN_CODE = 4  # an access code is a second factor beside the token, tried at most MAX_CODE_FAILURES times


def issue_access_token(store: Store, *, kind: str, subject: str, hospital: str, studies: Sequence[str] = (),
                       series: Sequence[str] = (), permissions: Sequence[str] = (), capability_id: str | None = None,
                       ttl: int = ACCESS_TTL) -> tuple[str, int]:
    """Mint a short bearer token; returns (token, expires_in seconds)."""
    ttl = min(ttl, ACCESS_TTL)
    token = new_secret("yat_")
    now = int(time.time())
    with store.engine.begin() as conn:
        if secrets.randbelow(100) == 0:  # now and then: expired tokens are of no use to anyone
            conn.execute(access_tokens.delete().where(access_tokens.c.expires_at < now - 86400))
        conn.execute(insert(access_tokens).values(
            id="a_" + secrets.token_hex(8), token_hash=digest(token), kind=kind, subject=subject,
            capability_id=capability_id, hospital_id=hospital, studies=list(studies), series=list(series),
            permissions=sorted(permissions), expires_at=now + ttl))
    return token, ttl


def _uids(name: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(u, str) and 0 < len(u) <= 64 for u in value):
        raise InvalidRequest(f"{name}: a list of UIDs")
    return value


def create_capability(store: Store, *, created_by: str, hospital: str, studies: list[str],
                      series: Sequence[str] = (), permissions: Sequence[str] = ("view",), expires_in: int = 7 * 86400,
                      not_before: int | None = None, code: str | None = None, label: str = "",
                      kind: str = "share", may_share: Callable[[str], bool] | None = None) -> tuple[str, str]:
    """A new capability token: returns (id, token: shown once, never stored).

    `may_share(study)` says whether the creator sees that study (checked after the request is
    validated); without it, or for series-bound tokens, the caller vouches for the creator.
    """
    studies, series = _uids("studies", studies), _uids("series", list(series))
    if not studies and not series:
        raise InvalidRequest("studies: at least one study or series")
    perms = set(permissions)
    if not perms or perms - CAPABILITY_PERMISSIONS:
        raise InvalidRequest("permissions: view and/or download")
    if not isinstance(expires_in, int) or not 0 < expires_in <= MAX_LIFETIME:
        raise InvalidRequest(f"expires_in: 1-{MAX_LIFETIME} seconds")
    if kind not in {"share", "patient"}:
        raise InvalidRequest("kind: share or patient")
    for study in studies:
        if may_share is not None and not may_share(study):
            raise NotFound(f"no study {study}")  # outside the creator's scope: as if unknown
    now = int(time.time())
    nbf = now if not_before is None else int(not_before)
    token, token_id = new_secret("ycap_"), "c_" + secrets.token_hex(8)
    with store.engine.begin() as conn:
        conn.execute(insert(capability_tokens).values(
            id=token_id, token_hash=digest(token), label=label, hospital_id=hospital, studies=studies,
            series=series, permissions=sorted(perms), kind=kind, not_before=nbf, expires_at=nbf + expires_in,
            code_hash=hash_password(code, "code", MIN_CODE) if code else None, failed_attempts=0, created_by=created_by,
            created_at=now))
    return token_id, token


def list_capabilities(store: Store, hospital: str | None = None, created_by: str | None = None) -> list[dict[str, Any]]:
    q = select(capability_tokens).order_by(capability_tokens.c.created_at.desc())
    if hospital is not None:
        q = q.where(capability_tokens.c.hospital_id == hospital)
    if created_by is not None:
        q = q.where(capability_tokens.c.created_by == created_by)
    with store.engine.connect() as conn:
        return [row_dict(r, ("token_hash", "code_hash"))
                | {"has_code": r.code_hash is not None} for r in conn.execute(q)]


def revoke_capability(store: Store, token_id: str, hospital: str | None = None,
                      created_by: str | None = None) -> None:
    """Revoke a capability token and every access token it was exchanged for."""
    q = update(capability_tokens).where(capability_tokens.c.id == token_id, capability_tokens.c.revoked_at.is_(None))
    if hospital is not None:
        q = q.where(capability_tokens.c.hospital_id == hospital)
    if created_by is not None:
        q = q.where(capability_tokens.c.created_by == created_by)
    now = int(time.time())
    with store.engine.begin() as conn:
        if conn.execute(q.values(revoked_at=now)).rowcount == 0:
            raise NotFound(f"no active capability token {token_id}")
        conn.execute(update(access_tokens).where(access_tokens.c.capability_id == token_id).values(revoked_at=now))
    store.revoked()


def exchange(store: Store, token: str, code: str | None = None) -> dict[str, Any]:
    """Check a capability token (and its code) and mint an access token bound to its studies."""
    now = int(time.time())
    with store.engine.begin() as conn:
        row = conn.execute(select(capability_tokens).where(
            capability_tokens.c.token_hash == digest(token or ""))).first()
        if row is None or row.revoked_at is not None:
            raise BadCredentials("unknown or revoked token")
        if now < row.not_before:
            raise Forbidden("this link is not valid yet")
        if now >= row.expires_at:
            raise BadCredentials("this link has expired")
        if row.locked_until and now < row.locked_until:
            raise Forbidden("too many wrong access codes; try again later")
        wrong = row.code_hash is not None and not verify_password(row.code_hash, code or "")
        if wrong:  # counted in SQL (parallel guesses all count) and committed before the refusal
            c = capability_tokens.c
            conn.execute(update(capability_tokens).where(c.id == row.id).values(failed_attempts=c.failed_attempts + 1))
            conn.execute(update(capability_tokens).where(c.id == row.id, c.failed_attempts >= MAX_CODE_FAILURES)
                         .values(failed_attempts=0, locked_until=now + LOCK_SECONDS))
        else:
            conn.execute(update(capability_tokens).where(capability_tokens.c.id == row.id).values(
                failed_attempts=0, last_used_at=now))
    if wrong:
        raise BadCredentials("wrong access code")
    perms = ["dicomweb.read"] + (["download"] if "download" in row.permissions else [])
    access, ttl = issue_access_token(
        store, kind=row.kind, subject=row.id, hospital=row.hospital_id, studies=row.studies, series=row.series,
        permissions=perms, capability_id=row.id, ttl=min(ACCESS_TTL, row.expires_at - now))
    return {"access_token": access, "token_type": "Bearer", "expires_in": ttl,
            "studies": row.studies, "series": row.series, "permissions": sorted(row.permissions)}
