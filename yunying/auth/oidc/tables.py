"""The provider's tables (SQLAlchemy Core; SQLite by default, PostgreSQL later) and their migrations.

Only hashes of codes, refresh tokens, sessions and client secrets are stored: a copy of the
database hands out no credential. Access tokens are JWTs and are not stored; revoking one
records its `jti`, revoking a grant records its family.
"""
from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, MetaData, String, Table, Text, text
from sqlalchemy.engine import Connection

from yunying.auth.store import migration

metadata = MetaData()

clients = Table(
    "oauth_clients", metadata,
    Column("client_id", String(128), primary_key=True),
    Column("secret_hash", String(64)),  # None: a public client (browser app), PKCE S256 required
    Column("name", String(200), nullable=False),
    Column("redirect_uris", Text, nullable=False, default="[]"),  # JSON list, exact match
    Column("scope", Text, nullable=False),  # the most the client may ask for
    Column("grant_types", Text, nullable=False),  # space separated
    Column("hospital", String(128), nullable=False),  # client_credentials tokens act for this hospital
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", BigInteger, nullable=False),
)

codes = Table(
    "oauth_codes", metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("client_id", String(128), nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("redirect_uri", Text),
    Column("scope", Text, nullable=False),
    Column("nonce", Text),
    Column("code_challenge", String(128)),
    Column("code_challenge_method", String(16)),
    Column("auth_time", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("family_id", String(64)),  # set when redeemed: a second use revokes that family
)

families = Table(  # one per grant (a login by a client); every refresh token and access token carries it
    "oauth_families", metadata,
    Column("family_id", String(64), primary_key=True),
    Column("client_id", String(128), nullable=False),
    Column("user_id", String(128)),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger),
    Column("revoked_why", String(64)),
)

refresh_tokens = Table(
    "oauth_refresh_tokens", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("family_id", String(64), nullable=False, index=True),
    Column("client_id", String(128), nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("scope", Text, nullable=False),
    Column("issued_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("rotated_at", BigInteger),  # used once: presenting it again is reuse (RFC 9700 §4.14.2)
)

revoked_access = Table(
    "oauth_revoked_access", metadata,
    Column("jti", String(64), primary_key=True),
    Column("expires_at", BigInteger, nullable=False),  # may be forgotten after this
)

_sessions_v1 = Table(  # the login session cookie of the authorization endpoint (as created by version 1)
    "oauth_sessions", metadata,
    Column("session_hash", String(64), primary_key=True),
    Column("user_id", String(128), nullable=False),
    Column("auth_time", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("must_change_password", Boolean, nullable=False, default=False),
)


@migration("oidc", 1)
def create_tables(conn: Connection) -> None:
    metadata.create_all(conn)


# Version 2 (issue 12 part 4): a session passes stages (second factor, password change, second
# factor set-up) before it may authorize, and ends after the policy's idle time.
STAGES = ("", "totp", "password", "enroll")  # "": complete
sessions = Table(  # what queries use: version 1's columns and version 2's
    "oauth_sessions", MetaData(),
    Column("session_hash", String(64), primary_key=True),
    Column("user_id", String(128), nullable=False),
    Column("auth_time", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("must_change_password", Boolean, nullable=False, default=False),
    Column("stage", String(16), nullable=False, default=""),
    Column("last_seen_at", BigInteger, nullable=False, default=0),
)


@migration("oidc", 2)
def add_session_stage(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE oauth_sessions ADD COLUMN stage VARCHAR(16) NOT NULL DEFAULT ''"))
    conn.execute(text("ALTER TABLE oauth_sessions ADD COLUMN last_seen_at BIGINT NOT NULL DEFAULT 0"))


@migration("oidc", 3)
def widen_oidc_times(conn: Connection) -> None:
    from yunying.auth.schema import widen_times

    widen_times(conn, metadata.tables.values())  # 64-bit times on PostgreSQL (2038)
