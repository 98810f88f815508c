"""The audit component's tables in the app-state store (SQLAlchemy Core) and their migration.

Why the app-state store and not a file journal: the audit admin searches by time, user,
patient, study and action, which SQL answers with indexes; the same code runs on PostgreSQL
when the archive is scaled out; SQLite in WAL mode keeps a committed transaction across a
kill -9 of the process (the WAL is written before COMMIT returns); the journal in front of it
(yunying.audit.trail) keeps the hot path from waiting for a commit. Records are only ever
INSERTed; `audit_head` (one row) holds the chain's end, `audit_anchors` the chain's start
after a purge beyond retention.
"""
from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table, Text
from sqlalchemy.engine import Connection

from yunying.auth.store import migration

meta = MetaData()

FIELDS = ("seq", "at_ms", "principal_kind", "principal_id", "roles", "hospital", "client", "face",
          "action", "status", "outcome", "patient_id", "issuer", "studies", "series", "accession",
          "request_id", "entry_id", "count", "detail", "alg", "prev_hash")  # hashed, in this order

records = Table(
    "audit_records", meta,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("at_ms", BigInteger, nullable=False),  # Unix time in milliseconds (UTC)
    Column("principal_kind", String(20), nullable=False),  # user | system | share | patient | peer | anonymous
    Column("principal_id", String(200), nullable=False),
    Column("roles", String(500), nullable=False, default=""),  # space-separated
    Column("hospital", String(64), nullable=False, default=""),
    Column("client", String(200), nullable=False, default=""),  # IP address, or calling AE@address
    Column("face", String(10), nullable=False),  # http | dimse | cli
    Column("action", String(40), nullable=False),
    Column("status", String(10), nullable=False),  # HTTP status or DIMSE status (0x....)
    Column("outcome", String(10), nullable=False),  # success | refused | failure
    Column("patient_id", String(200), nullable=False, default=""),
    Column("issuer", String(200), nullable=False, default=""),
    Column("studies", Text, nullable=False, default=""),  # space-separated Study Instance UIDs
    Column("series", Text, nullable=False, default=""),
    Column("accession", String(64), nullable=False, default=""),
    Column("request_id", String(64), nullable=False, default=""),
    Column("entry_id", String(32), nullable=False, unique=True),  # its line in the journal (replay)
    Column("count", Integer, nullable=False, default=1),  # folded frame requests / instances
    Column("detail", Text, nullable=False, default=""),  # path and query, peer, reason (JSON)
    Column("alg", String(16), nullable=False),  # hmac-sm3 | hmac-sha256
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("audit_at", "at_ms"),
    Index("audit_principal", "principal_id", "at_ms"),
    Index("audit_patient", "patient_id", "at_ms"),
    Index("audit_action", "action", "at_ms"),
)
head = Table(  # the chain's end, MACed so a truncated tail is caught
    "audit_head", meta,
    Column("id", Integer, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("mac", String(64), nullable=False),
)
anchors = Table(  # written by a purge: where the remaining chain starts
    "audit_anchors", meta,
    Column("through_seq", BigInteger, primary_key=True, autoincrement=False),
    Column("through_hash", String(64), nullable=False),
    Column("purged", Integer, nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("mac", String(64), nullable=False),
)


@migration("audit", 1)
def create_audit_tables(conn: Connection) -> None:
    meta.create_all(conn)
