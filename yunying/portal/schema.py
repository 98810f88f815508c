"""The portal's app-state tables and migrations (component "portal").

No phone number, ID card number or name is stored in clear: each is a keyed hash
(`yunying.portal.keyed.pseudonym`), plus the last four phone digits to show masked.
"""
from __future__ import annotations

from sqlalchemy import Boolean, Column, Integer, MetaData, String, Table, UniqueConstraint
from sqlalchemy.engine import Connection

from yunying.auth.store import migration

meta = MetaData()

exams = Table(  # one row per exam a QR code was issued for
    "portal_exams", meta,
    Column("id", String(32), primary_key=True),
    Column("hospital_id", String(64), nullable=False),
    Column("study_uid", String(64), nullable=False),
    Column("accession", String(64), nullable=False, default=""),
    Column("capability_id", String(32), nullable=False),  # the exam token (capability_tokens.id)
    Column("generation", Integer, nullable=False, default=0),  # +1 when the token is renewed
    Column("phone_hash", String(64)),
    Column("phone_last4", String(4), nullable=False, default=""),
    Column("id_hash", String(64)),
    Column("name_hash", String(64)),
    Column("id_failures", Integer, nullable=False, default=0),
    Column("id_locked_until", Integer),
    Column("delivery_off", Boolean, nullable=False, default=False),
    Column("created_at", Integer, nullable=False),
    UniqueConstraint("hospital_id", "study_uid"),
)
accounts = Table(  # a patient: a verified phone (or an ID card, when verified that way)
    "portal_accounts", meta,
    Column("id", String(32), primary_key=True),
    Column("kind", String(8), nullable=False),  # phone | id
    Column("hint", String(4), nullable=False, default=""),
    Column("created_at", Integer, nullable=False),
)
bindings = Table(
    "portal_bindings", meta,
    Column("account_id", String(32), primary_key=True),
    Column("exam_id", String(32), primary_key=True),
    Column("bound_at", Integer, nullable=False),
)
codes = Table(  # the SMS code last sent to a phone
    "portal_codes", meta,
    Column("phone_hash", String(64), primary_key=True),
    Column("code_hash", String(64), nullable=False),
    Column("sent_at", Integer, nullable=False),
    Column("expires_at", Integer, nullable=False),
    Column("failures", Integer, nullable=False, default=0),
    Column("locked_until", Integer),
)


@migration("portal", 1)
def create_portal_tables(conn: Connection) -> None:
    meta.create_all(conn, tables=[exams, accounts, bindings, codes])


downloads = Table(  # a patient's password-protected ZIP of an exam, deleted after expires_at
    "portal_downloads", meta,
    Column("id", String(40), primary_key=True),
    Column("account_id", String(32), nullable=False),
    Column("study_uid", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("created_at", Integer, nullable=False),
    Column("expires_at", Integer, nullable=False),
)


@migration("portal", 2)
def create_downloads(conn: Connection) -> None:
    downloads.create(conn)
