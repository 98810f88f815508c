"""The auth component's tables (SQLAlchemy Core) and its migrations.

Times are integer Unix seconds; lists (permissions, scopes, studies) are JSON. Secrets are
never stored: passwords as argon2 hashes, API keys and tokens as SHA-256 of >= 128 random bits
(a slow hash adds nothing to a random secret and would cost every request).
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Connection

from yunying import pii
from yunying.auth.errors import InvalidRequest
from yunying.auth.store import migration

meta = MetaData()

hospitals = Table(
    "hospitals", meta,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)
departments = Table(
    "departments", meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("hospital_id", String(64), ForeignKey("hospitals.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    UniqueConstraint("hospital_id", "name"),
)
users = Table(
    "users", meta,
    Column("username", String(64), primary_key=True),
    Column("display_name", String(200), nullable=False, default=""),
    Column("hospital_id", String(64), ForeignKey("hospitals.id"), nullable=False),
    Column("department_id", Integer, ForeignKey("departments.id", ondelete="SET NULL")),
    Column("title", String(100), nullable=False, default=""),
    Column("phone", String(40), nullable=False, default=""),
    Column("password_hash", String(200)),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("must_change_password", Boolean, nullable=False, default=True),
    Column("created_at", BigInteger, nullable=False),
)
roles = Table(
    "roles", meta,
    Column("name", String(64), primary_key=True),
    Column("permissions", JSON, nullable=False),
    Column("description", String(300), nullable=False, default=""),
    Column("platform", Boolean, nullable=False, default=False),  # platform-wide (super/operations)
    Column("builtin", Boolean, nullable=False, default=False),
)
user_roles = Table(
    "user_roles", meta,
    Column("username", String(64), ForeignKey(users.c.username, ondelete="CASCADE"), primary_key=True),
    Column("hospital_id", String(64), ForeignKey("hospitals.id", ondelete="CASCADE"), primary_key=True),
    Column("role", String(64), ForeignKey("roles.name"), primary_key=True),
    Column("level", String(20)),  # radiologist reporting level: junior | reporting | reviewing
)
grants = Table(
    "grants", meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("study_uid", String(64), nullable=False),
    Column("series_uid", String(64)),
    Column("username", String(64), ForeignKey("users.username", ondelete="CASCADE")),
    Column("department_id", Integer, ForeignKey("departments.id", ondelete="CASCADE")),
    Column("created_by", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger),
)
api_keys = Table(
    "api_keys", meta,
    Column("id", String(32), primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("scopes", JSON, nullable=False),
    Column("hospital_id", String(64), ForeignKey("hospitals.id"), nullable=False),
    Column("source", String(20), nullable=False),  # admin | config | env
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger),
    Column("last_used_at", BigInteger),
)
capability_tokens = Table(
    "capability_tokens", meta,
    Column("id", String(32), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("label", String(200), nullable=False, default=""),
    Column("hospital_id", String(64), ForeignKey("hospitals.id"), nullable=False),
    Column("studies", JSON, nullable=False),
    Column("series", JSON, nullable=False),
    Column("permissions", JSON, nullable=False),  # view | download
    Column("kind", String(20), nullable=False, default="share"),  # share | patient
    Column("not_before", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("code_hash", String(200)),
    Column("failed_attempts", Integer, nullable=False, default=0),
    Column("locked_until", BigInteger),
    Column("created_by", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger),
    Column("last_used_at", BigInteger),
)
access_tokens = Table(  # short opaque tokens issued by an exchange, a login or a launch link
    "access_tokens", meta,
    Column("id", String(32), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("kind", String(20), nullable=False),  # share | patient | launch | user
    Column("subject", String(64), nullable=False),  # username or capability token id
    Column("capability_id", String(32), ForeignKey("capability_tokens.id", ondelete="CASCADE")),
    Column("hospital_id", String(64), nullable=False),
    Column("studies", JSON, nullable=False),
    Column("series", JSON, nullable=False),
    Column("permissions", JSON, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger),
)
launch_secrets = Table(  # HMAC keys must be usable, so they are kept, not hashed
    "launch_secrets", meta,
    Column("hospital_id", String(64), ForeignKey("hospitals.id", ondelete="CASCADE"), primary_key=True),
    Column("secret", String(128), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)
launch_replays = Table(
    "launch_replays", meta,
    Column("signature_hash", String(64), primary_key=True),
    Column("expires_at", BigInteger, nullable=False),
)
registrations = Table(
    "registrations", meta,
    Column("id", String(32), primary_key=True),
    Column("username", String(64), nullable=False),
    Column("display_name", String(200), nullable=False),
    Column("phone", String(40), nullable=False),
    Column("hospital_id", String(64), ForeignKey("hospitals.id"), nullable=False),
    Column("department", String(200), nullable=False, default=""),
    Column("title", String(100), nullable=False, default=""),
    Column("password_hash", String(200), nullable=False),
    Column("status", String(20), nullable=False, default="pending"),  # pending|approved|rejected
    Column("reason", Text, nullable=False, default=""),
    Column("reviewed_by", String(64)),
    Column("created_at", BigInteger, nullable=False),
)
registration_photos = Table(
    "registration_photos", meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("registration_id", String(32), ForeignKey("registrations.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(20), nullable=False),  # id_card | qualification
    Column("content_type", String(50), nullable=False),
    Column("data", LargeBinary, nullable=False),
)
break_glass = Table(
    "break_glass", meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), ForeignKey("users.username", ondelete="CASCADE"), nullable=False),
    Column("reason", Text, nullable=False),
    Column("started_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)


def fits(table: Table, values: dict[str, Any]) -> dict[str, Any]:
    """`values`, once every string is checked against its column's length: SQLite stores a longer
    one silently but PostgreSQL refuses it (a DataError: a 500), so both refuse it here, as a 400."""
    for name, value in values.items():
        length = getattr(table.c[name].type, "length", None)
        if isinstance(value, str) and length is not None and len(value) > length:
            raise InvalidRequest(f"{name}: at most {length} characters")
    return values


def row_dict(row: Any, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """A result row as a plain dict (str keys: SQLAlchemy's quoted_name trips orjson)."""
    return {str(k): v for k, v in row._mapping.items() if k not in drop}


@migration("auth", 1)
def create_auth_tables(conn: Connection) -> None:
    meta.create_all(conn)


# Tables added after version 1 live in their own MetaData, created by their own migration, so
# a fresh store and an upgraded one run the same history (version 1 never grows).
meta_v2 = MetaData()
login_failures = Table(  # password guessing: a user is locked for a while after repeated failures
    "login_failures", meta_v2,
    Column("username", String(64), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("locked_until", BigInteger),
)


@migration("auth", 2)
def create_login_failures(conn: Connection) -> None:
    meta_v2.create_all(conn)


@migration("pii", 1)
def widen_sealed_registration_phone(conn: Connection) -> None:
    # The phone is kept sealed now (yunying.auth.registrations, issue 12 part 6): ~100 characters
    # for a 40-character number. SQLite stores any length; PostgreSQL needs the wider column.
    # The clear phones and photos of older rows are sealed at start (yunying.pii.reseal_all).
    if conn.dialect.name == "postgresql":
        conn.execute(text("ALTER TABLE registrations ALTER COLUMN phone TYPE VARCHAR(200)"))


@migration("pii", 2)
def widen_sealed_user_phone(conn: Connection) -> None:
    # users.phone is sealed too (yunying.auth.directory): a clear number is at most 40 characters
    # (checked before sealing), its sealed form ~100. Older clear values are sealed at start.
    if conn.dialect.name == "postgresql":
        conn.execute(text("ALTER TABLE users ALTER COLUMN phone TYPE VARCHAR(200)"))


# Issue 12 part 4: the security admin's policy, password history, the second factor, and
# failed attempts per client address. Times here are BigInteger (2038-safe on PostgreSQL).
meta_v3 = MetaData()
security_policy = Table(  # one row per changed setting; an absent row means the default
    "security_policy", meta_v3,
    Column("name", String(64), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("changed_at", BigInteger, nullable=False),
    Column("changed_by", String(64), nullable=False),
)
password_history = Table(  # every password a user was given, newest last (reuse and expiry)
    "password_history", meta_v3,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), ForeignKey(users.c.username, ondelete="CASCADE"), nullable=False, index=True),
    Column("password_hash", String(200), nullable=False),
    Column("changed_at", BigInteger, nullable=False),
)
totp_secrets = Table(  # RFC 6238 shared secrets; `last_step` refuses a code used before (replay)
    "totp_secrets", meta_v3,
    Column("username", String(64), ForeignKey(users.c.username, ondelete="CASCADE"), primary_key=True),
    Column("secret", String(200), nullable=False),  # sealed (SM4-GCM, yunying.pii); 64 long before auth 5
    Column("confirmed", Boolean, nullable=False, default=False),
    Column("last_step", BigInteger, nullable=False, default=0),
    Column("created_at", BigInteger, nullable=False),
)
recovery_codes = Table(  # one-time codes for a lost phone, as SHA-256 (random, 50 bits each)
    "recovery_codes", meta_v3,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), ForeignKey(users.c.username, ondelete="CASCADE"), nullable=False, index=True),
    Column("code_hash", String(64), nullable=False),
    Column("used_at", BigInteger),
)
address_failures = Table(  # wrong passwords and codes per client address (one throttle for all checks)
    "address_failures", meta_v3,
    Column("address", String(64), primary_key=True),
    Column("window_start", BigInteger, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("blocked_until", BigInteger),
)


@migration("auth", 3)
def create_security_tables(conn: Connection) -> None:
    meta_v3.create_all(conn)


_TIME = re.compile(r"(_at|_until|auth_time|not_before)$")


def widen_times(conn: Connection, tables: Iterable[Table]) -> None:
    """Unix times as 64-bit integers on PostgreSQL, whose INTEGER ends in January 2038 (issue 11):
    stores made before the tables said BigInteger get their columns altered (a no-op on newer
    ones); SQLite's INTEGER holds 64 bits already, so there is nothing to do there."""
    if conn.dialect.name != "postgresql":
        return
    for table in tables:
        for column in table.columns:
            if isinstance(column.type, Integer) and _TIME.search(column.name):
                conn.execute(text(f"ALTER TABLE {table.name} ALTER COLUMN {column.name} TYPE BIGINT"))


@migration("auth", 4)
def widen_auth_times(conn: Connection) -> None:
    from yunying.auth.store import schema_migrations

    widen_times(conn, [*meta.tables.values(), *meta_v2.tables.values(), schema_migrations])

# the TOTP secret is sealed with the personal-data keys (a copy of the database computes no codes);
# registered, so key rotation re-seals it and a start seals what an older version left in clear
TOTP_SECRET = pii.sealed_column(totp_secrets, "secret")


@migration("auth", 5)
def widen_totp_secret(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":  # SQLite does not enforce VARCHAR lengths
        conn.execute(text("ALTER TABLE totp_secrets ALTER COLUMN secret TYPE VARCHAR(200)"))
