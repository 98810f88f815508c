"""API keys of system clients: created by an admin or provisioned from config/environment, stored hashed."""
from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

from sqlalchemy import insert, select, update

from yunying.auth.errors import Conflict, InvalidRequest, NotFound
from yunying.auth.principal import (
    ADMIN,
    DEFAULT_HOSPITAL,
    DICOMWEB_DELETE,
    DICOMWEB_READ,
    DICOMWEB_WRITE,
)
from yunying.auth.roles import PERMISSIONS
from yunying.auth.schema import api_keys, row_dict
from yunying.auth.store import Store

FULL_SCOPE = [DICOMWEB_READ, DICOMWEB_WRITE, DICOMWEB_DELETE, ADMIN]
ENV_KEY_NAME = "env:YUNYING_API_KEY"
MIN_KEY_LENGTH = 16


def digest(secret: str) -> str:
    """SHA-256 of a high-entropy secret: what the store keeps (lookup by hash, no secret at rest)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret(prefix: str) -> str:
    """192 random bits, URL-safe, with a prefix saying what it is."""
    return prefix + secrets.token_urlsafe(24)


def _scopes(scopes: list[str]) -> list[str]:
    if not isinstance(scopes, list) or not scopes or not all(isinstance(s, str) for s in scopes):
        raise InvalidRequest("scopes: a non-empty list of permission names")
    unknown = set(scopes) - PERMISSIONS
    if unknown:
        raise InvalidRequest(f"scopes: unknown {', '.join(sorted(unknown))}")
    return sorted(set(scopes))


def create_key(store: Store, name: str, scopes: list[str], hospital: str = DEFAULT_HOSPITAL,
               secret: str | None = None, source: str = "admin") -> tuple[str, str]:
    """A new key: returns (key id, the secret: shown once, never stored)."""
    if not isinstance(name, str) or not 0 < len(name) <= 100:
        raise InvalidRequest("name: 1-100 characters")
    secret = secret or new_secret("yk_")
    if len(secret) < MIN_KEY_LENGTH:
        raise InvalidRequest(f"key: at least {MIN_KEY_LENGTH} characters")
    key_id = "k_" + secrets.token_hex(8)
    with store.engine.begin() as conn:
        if conn.execute(select(api_keys.c.id).where(api_keys.c.name == name)).first():
            raise Conflict(f"an API key named {name} exists")
        conn.execute(insert(api_keys).values(
            id=key_id, name=name, key_hash=digest(secret), scopes=_scopes(scopes), hospital_id=hospital,
            source=source, created_at=int(time.time())))
    return key_id, secret


def list_keys(store: Store, hospital: str | None = None) -> list[dict[str, Any]]:
    q = select(api_keys).order_by(api_keys.c.name)
    if hospital is not None:
        q = q.where(api_keys.c.hospital_id == hospital)
    with store.engine.connect() as conn:
        return [row_dict(r, ("key_hash",)) for r in conn.execute(q)]


def revoke_key(store: Store, key_id: str, hospital: str | None = None) -> None:
    q = update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
    if hospital is not None:
        q = q.where(api_keys.c.hospital_id == hospital)
    with store.engine.begin() as conn:
        if conn.execute(q.values(revoked_at=int(time.time()))).rowcount == 0:
            raise NotFound(f"no active API key {key_id}")
    store.revoked()


def provision(store: Store, name: str, secret: str, scopes: list[str], hospital: str, source: str) -> None:
    """Make the store hold exactly this key under `name` (config and environment keys, at start).

    A changed secret or scope replaces the row, so the previous secret stops working.
    """
    if len(secret) < MIN_KEY_LENGTH:
        raise InvalidRequest(f"{name}: key at least {MIN_KEY_LENGTH} characters")
    h, scopes = digest(secret), _scopes(scopes)
    with store.engine.begin() as conn:
        row = conn.execute(select(api_keys).where(api_keys.c.name == name)).first()
        if row is not None and row.key_hash == h and sorted(row.scopes) == scopes \
                and row.hospital_id == hospital and row.revoked_at is None:
            return
        if row is not None:
            conn.execute(api_keys.delete().where(api_keys.c.name == name))
        conn.execute(api_keys.delete().where(api_keys.c.key_hash == h))  # one secret, one row
        conn.execute(insert(api_keys).values(
            id="k_" + secrets.token_hex(8), name=name, key_hash=h, scopes=scopes, hospital_id=hospital,
            source=source, created_at=int(time.time())))
    store.revoked()


def retire(store: Store, source: str, keep: set[str]) -> None:
    """Delete the keys of `source` (env, config) no longer configured: a removed key stops working."""
    with store.engine.begin() as conn:
        gone = conn.execute(api_keys.delete().where(api_keys.c.source == source, api_keys.c.name.not_in(keep))).rowcount
    if gone:
        store.revoked()
