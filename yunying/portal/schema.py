"""The portal's app-state tables and migrations (component "portal").

No phone number, ID card number or name is stored in clear: each is a keyed hash (a blind
index, `yunying.portal.keyed.pseudonym`, under the portal secret of the personal-data key file),
plus the last four phone digits to show masked; the exam's phone is also kept sealed (SM4-GCM,
`yunying.pii`) so a notification can reach it.
"""
from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    inspect,
    text,
)
from sqlalchemy.engine import Connection

from yunying.auth.store import migration
from yunying.pii import sealed_column

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
    Column("phone_sealed", Text),  # added by migration 4 (sealed: yunying.pii)
    Column("id_hash", String(64)),
    Column("name_hash", String(64)),
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
    Column("expires_at", Integer, nullable=False),
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


@migration("portal", 3)
def widen_download_size(conn: Connection) -> None:
    # A study's ZIP passes 2 GiB: PostgreSQL's INTEGER is 32-bit (SQLite's is 64-bit already,
    # and SQLite cannot ALTER a column's type).
    if conn.dialect.name == "postgresql":
        conn.execute(text("ALTER TABLE portal_downloads ALTER COLUMN size TYPE BIGINT"))


PHONE = sealed_column(exams, "phone_sealed")


@migration("portal", 4)
def add_sealed_phone(conn: Connection) -> None:
    # The phone, sealed, so a notification can reach the patient (issue 14 part 8). Migration 1
    # creates it from the table's current definition on a fresh store; older stores gain it here.
    # Their rows have only the phone's hash: the sealed phone is filled by the next QR request
    # naming the phone, or when the patient verifies it by SMS.
    if "phone_sealed" not in {c["name"] for c in inspect(conn).get_columns("portal_exams")}:
        conn.execute(text("ALTER TABLE portal_exams ADD COLUMN phone_sealed TEXT"))


# Columns of the portal's own lockouts and resend wait, which yunying.auth.throttle has kept
# since (store-backed counts per phone, exam and address): nothing reads them any more.
UNUSED = {"portal_codes": ("sent_at", "failures", "locked_until"),
          "portal_exams": ("id_failures", "id_locked_until")}


@migration("portal", 9)  # 5-8 live beside their tables (notify, console, patients, wechat_bind)
def drop_unused_columns(conn: Connection) -> None:
    # Migration 1 creates the tables from their current definitions, so a fresh store has none.
    for table in (codes, exams):
        present = {c["name"] for c in inspect(conn).get_columns(table.name)}
        gone = [name for name in UNUSED[table.name] if name in present]
        if not gone:
            continue
        if conn.dialect.name == "sqlite" and not sqlite_drops_columns(conn):
            rebuild(conn, table)
        else:
            for name in gone:
                conn.execute(text(f"ALTER TABLE {table.name} DROP COLUMN {name}"))


def sqlite_drops_columns(conn: Connection) -> bool:
    """SQLite has ALTER TABLE ... DROP COLUMN since 3.35 (2021); older ones need a rebuild."""
    version = conn.exec_driver_sql("SELECT sqlite_version()").scalar_one()
    return tuple(int(p) for p in str(version).split(".")[:2]) >= (3, 35)


def rebuild(conn: Connection, table: Table) -> None:
    """SQLite's table rebuild: the rows copied into the current definition, the old table dropped."""
    old = f"{table.name}_before_rebuild"
    conn.execute(text(f"ALTER TABLE {table.name} RENAME TO {old}"))
    table.create(conn)
    names = ", ".join(c.name for c in table.columns)
    conn.execute(text(f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {old}"))
    conn.execute(text(f"DROP TABLE {old}"))
