"""Turn a bearer credential into a Principal: API keys, our access tokens, plugged-in verifiers.

Identities are cached for at most CACHE_SECONDS, never past the expiry of a grant they carry,
and only while the store's revocation stamp is unchanged: revoking a key or token, disabling a
user, changing roles, or sharing / unsharing a study (in the server or through the CLI) touches
the stamp, so the very next request looks again. Without a shared stamp (PostgreSQL app store)
nothing is cached: every request reads the store, so every process is right at once.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sqlalchemy import false, or_, select, update

from yunying.auth import roles as R
from yunying.auth.keys import digest
from yunying.auth.principal import (
    DICOMWEB_READ,
    EVERYTHING,
    NOTHING,
    Principal,
    PrincipalKind,
    Visibility,
)
from yunying.auth.schema import access_tokens, api_keys, break_glass, grants, user_roles, users
from yunying.auth.schema import roles as roles_t
from yunying.auth.store import Store

CACHE_SECONDS = 10.0
CACHE_MAX = 10_000


class InvalidToken(Exception):
    """The credential is unknown, expired, revoked, or its user is disabled (401 invalid_token)."""


# A verifier returns a Principal for a token it recognises, None for one it does not know, and
# raises InvalidToken for one it recognises as bad (the `oidc` component verifies JWTs here).
BearerVerifier = Callable[[str], Principal | None]
_verifiers: list[BearerVerifier] = []


def register_bearer_verifier(verifier: BearerVerifier) -> None:
    """Plug in another kind of bearer token (asked before our own kinds when the token has dots)."""
    if verifier not in _verifiers:
        _verifiers.append(verifier)


class Identifier:
    """Resolves bearer tokens against one store, with the short revocation-aware cache."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: dict[str, tuple[Principal, int, float]] = {}

    def cached(self, token: str) -> Principal | None:
        """The cached Principal of `token` while still valid (no database access), else None."""
        hit = self._cache.get(token)
        if hit is None or hit[2] <= time.monotonic() or hit[1] != self.store.generation():
            return None
        return hit[0]

    def identify(self, token: str) -> Principal:
        """The Principal of `token`; InvalidToken otherwise (blocking: call it off the event loop)."""
        gen = self.store.generation()
        now = time.monotonic()
        principal, until = self._lookup(token)
        if principal.visibility.until is not None:  # a grant expires: looked up again from then on
            until = min(until, principal.visibility.until)
        if gen != -1:
            if len(self._cache) >= CACHE_MAX:
                self._cache.clear()
            self._cache[token] = (principal, gen, min(now + CACHE_SECONDS, now + until - time.time()))
        return principal

    def _lookup(self, token: str) -> tuple[Principal, float]:
        """(principal, wall-clock expiry)."""
        if token.count(".") == 2:  # a JWT: only a plugged-in verifier knows it
            for verify in _verifiers:
                found = verify(token)
                if found is not None:
                    return found, time.time() + CACHE_SECONDS
        h = digest(token)
        now = int(time.time())
        with self.store.engine.begin() as conn:
            key = conn.execute(select(api_keys).where(api_keys.c.key_hash == h)).first()
            if key is not None:
                if key.revoked_at is not None:
                    raise InvalidToken("the API key was revoked")
                if key.last_used_at is None or now - key.last_used_at > 60:
                    conn.execute(update(api_keys).where(api_keys.c.id == key.id).values(last_used_at=now))
                return key_principal(key), float("inf")
            tok = conn.execute(select(access_tokens).where(access_tokens.c.token_hash == h)).first()
            if tok is not None:
                if tok.revoked_at is not None:
                    raise InvalidToken("the token was revoked")
                if tok.expires_at <= now:
                    raise InvalidToken("the token has expired")
                if tok.kind in ("user", "launch"):  # a login or launch link: that user, as they are now
                    found = user_principal(conn, tok.subject, token_id=tok.id)
                    return (replace(found, kind="launch") if tok.kind == "launch" else found), float(tok.expires_at)
                return token_principal(tok), float(tok.expires_at)
        for verify in _verifiers:
            found = verify(token)
            if found is not None:
                return found, time.time() + CACHE_SECONDS
        raise InvalidToken("unknown token")


def key_principal(key: Any) -> Principal:
    perms = R.effective(frozenset(key.scopes))
    return Principal(kind="system", id=key.name, hospital=key.hospital_id, roles=frozenset({"system_client"}),
                     permissions=perms, visibility=Visibility(hospitals=frozenset({key.hospital_id})),
                     token_id=key.id)


def token_principal(tok: Any) -> Principal:
    kind: PrincipalKind = "patient" if tok.kind == "patient" else "share"
    return Principal(kind=kind, id=tok.subject, hospital=tok.hospital_id, permissions=frozenset(tok.permissions),
                     visibility=Visibility(studies=frozenset(tok.studies), series=frozenset(tok.series)),
                     token_id=tok.id)


def user_principal(conn: Any, username: str, token_id: str | None = None) -> Principal:
    """A user's Principal: roles in every hospital, grants, break-glass; InvalidToken when disabled."""
    user = conn.execute(select(users).where(users.c.username == username)).first()
    if user is None or user.disabled:
        raise InvalidToken("the user is disabled or deleted")
    now = int(time.time())
    rows = conn.execute(select(user_roles.c.hospital_id, user_roles.c.role, roles_t.c.permissions, roles_t.c.platform)
                        .join(roles_t, roles_t.c.name == user_roles.c.role)
                        .where(user_roles.c.username == username)).all()
    perms = frozenset(p for r in rows for p in r.permissions)
    seeing = frozenset(r.hospital_id for r in rows if not r.platform and DICOMWEB_READ in r.permissions)
    shared = conn.execute(select(grants.c.study_uid, grants.c.series_uid, grants.c.expires_at).where(
        or_(grants.c.username == username,
            grants.c.department_id == user.department_id if user.department_id is not None else false()),
        or_(grants.c.expires_at.is_(None), grants.c.expires_at > now))).all()
    visibility = Visibility(hospitals=seeing, studies=frozenset(g.study_uid for g in shared if not g.series_uid),
                            series=frozenset(g.series_uid for g in shared if g.series_uid),
                            until=min((float(g.expires_at) for g in shared if g.expires_at is not None), default=None))
    if shared:  # a study shared with someone is readable by them, whatever their roles
        perms |= {DICOMWEB_READ}
    glass = conn.execute(select(break_glass.c.expires_at).where(break_glass.c.username == username,
                                                                break_glass.c.expires_at > now)).first()
    if glass is not None and R.BREAK_GLASS in perms:  # ends when it expires, not up to a cache's life later
        visibility, perms = replace(EVERYTHING, until=float(glass.expires_at)), perms | {DICOMWEB_READ}
    extra = {"must_change_password": "1"} if user.must_change_password else {}
    if user.department_id is not None:  # /api/auth/me: a doctor shares with their own department
        extra["department_id"] = str(user.department_id)
    return Principal(kind="user", id=username, hospital=user.hospital_id,
                     roles=frozenset(r.role for r in rows), permissions=R.effective(perms),
                     visibility=visibility if not visibility.is_empty else NOTHING,
                     token_id=token_id, extra=extra)
