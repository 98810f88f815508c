"""The provider's state: clients, codes, grant families, refresh tokens, revocations, sessions.

Synchronous (SQLAlchemy Core); the routes call it through a thread, never on the event loop.
"""
from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, insert, select, update

from yunying.auth import clock, secpolicy
from yunying.auth.errors import InvalidRequest
from yunying.auth.oidc.models import AuthCode, Client, RefreshToken, digest
from yunying.auth.oidc.tables import (
    clients,
    codes,
    families,
    refresh_tokens,
    revoked_access,
    sessions,
)
from yunying.auth.schema import fits
from yunying.auth.store import Store

CODE_SECONDS = 60  # RFC 6749 §4.1.2: short-lived; a browser redeems it at once
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")


class ClientError(ValueError):
    """A client registration that cannot be made; the message says why."""


@dataclass
class Revocations:
    """Revoked access-token ids and grant families, kept in memory so checking costs no query."""

    jtis: set[str] = field(default_factory=set)
    families: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    generation: int | None = None  # the store's revocation stamp when these were loaded


@dataclass(frozen=True)
class Session:
    user_id: str
    auth_time: int
    csrf: str
    stage: str  # "" complete; "totp", "password", "enroll": what the user must do first

    @property
    def complete(self) -> bool:
        return self.stage == ""

    @property
    def must_change_password(self) -> bool:
        return self.stage == "password"


class OAuthStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.engine = store.engine
        store.migrate()  # idempotent: adds the oidc component's tables when missing
        self.revocations = Revocations()
        self._load_revocations()

    def _load_revocations(self) -> None:
        generation = self.store.generation()
        now = clock.seconds()
        with self.engine.connect() as conn:
            jtis = set(conn.execute(select(revoked_access.c.jti).where(revoked_access.c.expires_at > now)).scalars())
            fams = set(conn.execute(select(families.c.family_id).where(families.c.revoked_at.is_not(None))).scalars())
        with self.revocations.lock:
            self.revocations.jtis, self.revocations.families = jtis, fams
            self.revocations.generation = generation

    def is_revoked(self, jti: str | None, family: str | None) -> bool:
        """Checked in memory; reloaded when another process (the CLI) revoked something."""
        generation = self.store.generation()
        if generation == -1 or generation != self.revocations.generation:
            self._load_revocations()
        r = self.revocations
        return jti in r.jtis or (family is not None and family in r.families)

    # clients -------------------------------------------------------------------------------
    def add_client(self, name: str, redirect_uris: list[str], scope: str, grant_types: list[str],
                   public: bool, hospital: str, client_id: str | None = None) -> tuple[str, str | None]:
        """Register a client; returns (client_id, secret), the secret shown this once (None if public)."""
        bad = [g for g in grant_types if g not in GRANT_TYPES]
        if bad or not grant_types:
            raise ClientError(f"grant types must be among {', '.join(GRANT_TYPES)}, got {grant_types}")
        if public and "client_credentials" in grant_types:
            raise ClientError("a public client cannot use client_credentials (it has no secret)")
        if "authorization_code" in grant_types and not redirect_uris:
            raise ClientError("authorization_code needs at least one redirect URI")
        for uri in redirect_uris:
            if not uri.startswith(("https://", "http://")) or "#" in uri:
                raise ClientError(f"redirect URI {uri!r} must be an absolute http(s) URL without fragment")
        client_id = client_id or "yc_" + secrets.token_urlsafe(12)
        try:
            fits(clients, {"name": name, "client_id": client_id, "hospital": hospital})
        except InvalidRequest as exc:
            raise ClientError(exc.reason) from None
        secret = None if public else "ycs_" + secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            if conn.execute(select(clients.c.client_id).where(clients.c.client_id == client_id)).first():
                raise ClientError(f"client {client_id!r} exists")
            conn.execute(insert(clients).values(
                client_id=client_id, secret_hash=digest(secret) if secret else None, name=name,
                redirect_uris=json.dumps(redirect_uris), scope=scope, grant_types=" ".join(grant_types),
                hospital=hospital, disabled=False, created_at=clock.seconds()))
        return client_id, secret

    def update_client(self, client_id: str, redirect_uris: list[str], scope: str, grant_types: list[str]) -> None:
        """Change a public client's redirect URIs, scope and grants in place (its grants stay valid)."""
        with self.engine.begin() as conn:
            conn.execute(update(clients).where(clients.c.client_id == client_id).values(
                redirect_uris=json.dumps(redirect_uris), scope=scope, grant_types=" ".join(grant_types),
                secret_hash=None, disabled=False))

    def get_client(self, client_id: str) -> Client | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(clients).where(clients.c.client_id == client_id,
                                                     clients.c.disabled.is_(False))).first()
        return _client(row._mapping) if row else None

    def list_clients(self) -> list[Client]:
        with self.engine.connect() as conn:
            return [_client(r._mapping) for r in conn.execute(select(clients).order_by(clients.c.created_at))]

    def remove_client(self, client_id: str) -> bool:
        with self.engine.begin() as conn:
            gone = conn.execute(delete(clients).where(clients.c.client_id == client_id)).rowcount
            ids: list[str] = list(conn.execute(select(families.c.family_id).where(
                families.c.client_id == client_id, families.c.revoked_at.is_(None))).scalars())
        for family in ids:
            self.revoke_family(family, "client removed")
        self.store.revoked()  # its client_credentials tokens
        return bool(gone)

    # authorization codes -------------------------------------------------------------------
    def save_code(self, code: str, client_id: str, user_id: str, redirect_uri: str | None, scope: str,
                  nonce: str | None, challenge: str | None, method: str | None, auth_time: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(codes).values(
                code_hash=digest(code), client_id=client_id, user_id=user_id, redirect_uri=redirect_uri,
                scope=scope, nonce=nonce, code_challenge=challenge, code_challenge_method=method,
                auth_time=auth_time, expires_at=clock.seconds() + CODE_SECONDS))

    def find_code(self, code: str, client_id: str) -> AuthCode | None:
        """The unused, unexpired code; a second use revokes what the first one got (RFC 6749 §4.1.2)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(codes).where(codes.c.code_hash == digest(code),
                                                   codes.c.client_id == client_id)).first()
        if row is None:
            return None
        m = row._mapping
        if m["family_id"] is not None:
            self.revoke_family(m["family_id"], "code reused")
            return None
        if m["expires_at"] <= clock.now():
            return None
        return AuthCode(code_hash=m["code_hash"], client_id=m["client_id"], user_id=m["user_id"],
                        redirect_uri=m["redirect_uri"], scope=m["scope"], nonce=m["nonce"],
                        code_challenge=m["code_challenge"], code_challenge_method=m["code_challenge_method"],
                        auth_time=m["auth_time"])

    def claim_code(self, code_hash: str, family_id: str) -> bool:
        """Mark the code used by this grant; False when another request used it first."""
        with self.engine.begin() as conn:
            return conn.execute(update(codes).where(codes.c.code_hash == code_hash, codes.c.family_id.is_(None))
                                .values(family_id=family_id)).rowcount == 1

    # grant families and refresh tokens -------------------------------------------------------
    def new_family(self, client_id: str, user_id: str | None) -> str:
        family_id = secrets.token_urlsafe(16)
        with self.engine.begin() as conn:
            conn.execute(insert(families).values(family_id=family_id, client_id=client_id, user_id=user_id,
                                                 created_at=clock.seconds()))
        return family_id

    def save_refresh(self, token: str, family_id: str, client_id: str, user_id: str, scope: str,
                     lifetime: int) -> None:
        now = clock.seconds()
        with self.engine.begin() as conn:
            conn.execute(insert(refresh_tokens).values(
                token_hash=digest(token), family_id=family_id, client_id=client_id, user_id=user_id,
                scope=scope, issued_at=now, expires_at=now + lifetime))

    def find_refresh(self, token: str, reuse_revokes: bool = True) -> RefreshToken | None:
        """The live refresh token; presenting a rotated one revokes its whole family. Its expiry is
        the earliest of its own, the policy's idle time since it was issued (each refresh rotates
        it, so that is the grant's last activity) and the absolute time since the login."""
        with self.engine.connect() as conn:
            row = conn.execute(select(refresh_tokens, families.c.created_at.label("family_created"))
                               .join(families, families.c.family_id == refresh_tokens.c.family_id)
                               .where(refresh_tokens.c.token_hash == digest(token))).first()
        if row is None:
            return None
        m = row._mapping
        if m["rotated_at"] is not None and reuse_revokes:
            self.revoke_family(m["family_id"], "refresh token reused")
        revoked = m["rotated_at"] is not None or self.is_revoked(None, m["family_id"])
        policy = secpolicy.load(self.store)
        expires = min(m["expires_at"], m["issued_at"] + policy.session_idle_minutes * 60,
                      m["family_created"] + policy.session_absolute_hours * 3600)
        return RefreshToken(token_hash=m["token_hash"], family_id=m["family_id"], client_id=m["client_id"],
                            user_id=m["user_id"], scope=m["scope"], issued_at=m["issued_at"],
                            expires_at=expires, revoked=revoked)

    def rotate_refresh(self, token_hash: str) -> bool:
        """Mark the token used; False when it was used already (a concurrent or replayed refresh)."""
        with self.engine.begin() as conn:
            return conn.execute(update(refresh_tokens).where(refresh_tokens.c.token_hash == token_hash,
                                                             refresh_tokens.c.rotated_at.is_(None))
                                .values(rotated_at=clock.seconds())).rowcount == 1

    def revoke_family(self, family_id: str, why: str) -> None:
        """Revoke a grant: its refresh tokens and every access token issued under it."""
        with self.engine.begin() as conn:
            conn.execute(update(families).where(families.c.family_id == family_id, families.c.revoked_at.is_(None))
                         .values(revoked_at=clock.seconds(), revoked_why=why))
        with self.revocations.lock:
            self.revocations.families.add(family_id)
        self.store.revoked()  # identities cached by the authorization point are stale now

    def revoke_access(self, jti: str, expires_at: int) -> None:
        with self.engine.begin() as conn:
            if not conn.execute(select(revoked_access.c.jti).where(revoked_access.c.jti == jti)).first():
                conn.execute(insert(revoked_access).values(jti=jti, expires_at=expires_at))
        with self.revocations.lock:
            self.revocations.jtis.add(jti)
        self.store.revoked()

    # login sessions --------------------------------------------------------------------------
    def create_session(self, user_id: str, stage: str) -> str:
        """A login session cookie, at `stage`; it ends after the policy's idle or absolute time."""
        cookie = secrets.token_urlsafe(32)
        now = clock.seconds()
        policy = secpolicy.load(self.store)
        with self.engine.begin() as conn:
            if secrets.randbelow(50) == 0:  # now and then: ended sessions are of no use to anyone
                conn.execute(delete(sessions).where(sessions.c.expires_at < now))
            conn.execute(insert(sessions).values(
                session_hash=digest(cookie), user_id=user_id, auth_time=now,
                expires_at=now + policy.session_absolute_hours * 3600, last_seen_at=now,
                csrf=secrets.token_urlsafe(24), must_change_password=stage == "password", stage=stage))
        return cookie

    def get_session(self, cookie: str, touch: bool = True) -> Session | None:
        """The live session of this cookie (within the absolute and idle times); `touch` counts
        this request as activity."""
        now = clock.seconds()
        idle = secpolicy.load(self.store).session_idle_minutes * 60
        with self.engine.connect() as conn:
            row = conn.execute(select(sessions).where(sessions.c.session_hash == digest(cookie),
                                                      sessions.c.expires_at > now,
                                                      sessions.c.last_seen_at >= now - idle)).first()
        if row is None:
            return None
        m = row._mapping
        if touch and now - m["last_seen_at"] >= 30:  # at most one write per half minute
            with self.engine.begin() as conn:
                conn.execute(update(sessions).where(sessions.c.session_hash == m["session_hash"])
                             .values(last_seen_at=now))
        return Session(m["user_id"], m["auth_time"], m["csrf"], m["stage"])

    def set_stage(self, cookie: str, stage: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(sessions).where(sessions.c.session_hash == digest(cookie))
                         .values(stage=stage, must_change_password=stage == "password",
                                 last_seen_at=clock.seconds()))

    def end_session(self, cookie: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(sessions).where(sessions.c.session_hash == digest(cookie)))

    def end_user_sessions(self, user_id: str) -> None:
        """End every login session of a user (a password reset, a removed second factor)."""
        with self.engine.begin() as conn:
            conn.execute(delete(sessions).where(sessions.c.user_id == user_id))


def _client(m: Any) -> Client:
    return Client(client_id=m["client_id"], secret_hash=m["secret_hash"], name=m["name"],
                  redirect_uris=tuple(json.loads(m["redirect_uris"])), scope=m["scope"],
                  grant_types=tuple(m["grant_types"].split()), hospital=m["hospital"])
