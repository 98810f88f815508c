"""Routing's app-state tables (component "routing"): the rules, and the persistent queue of
forwards (one row per instance and rule) that survives restarts."""
from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Index, Integer, MetaData, String, Table
from sqlalchemy.engine import Connection

from yunying.auth.store import migration

meta = MetaData()

rules = Table(
    "routing_rules", meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("match", JSON, nullable=False),  # yunying.routing.rules.Match as a dict
    Column("destination", JSON, nullable=False),  # {"kind": "dicom" | "dicomweb", ...}
    Column("syntax", String(64), nullable=False, default="lossless"),  # or a lossy transfer syntax UID
    Column("created_at", Integer, nullable=False),
    Column("updated_at", Integer, nullable=False),
    sqlite_autoincrement=True,  # a deleted rule's id is never reused: its queue rows stay its own
)
queue = Table(
    "routing_queue", meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule_id", Integer, nullable=False),
    Column("study", String(64), nullable=False),
    Column("series", String(64), nullable=False),
    Column("sop", String(64), nullable=False),
    Column("state", String(10), nullable=False, default="pending"),  # pending | done | failed | dropped
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_at", Integer, nullable=False),  # not tried before (Unix seconds): the backoff
    Column("last_error", String(300), nullable=False, default=""),  # no patient data: statuses, HTTP codes
    Column("created_at", Integer, nullable=False),
    Column("updated_at", Integer, nullable=False),
    Index("routing_queue_due", "state", "next_at"),
    Index("routing_queue_rule", "rule_id", "state"),
)
flags = Table(  # routing-wide switches set by the API or `yunying routing pause|resume`
    "routing_flags", meta,
    Column("name", String(32), primary_key=True),  # "paused"
    Column("value", Boolean, nullable=False),
    Column("updated_at", Integer, nullable=False),
)


@migration("routing", 1)
def create_routing_tables(conn: Connection) -> None:
    meta.create_all(conn, tables=[rules, queue])


@migration("routing", 2)
def create_routing_flags(conn: Connection) -> None:
    meta.create_all(conn, tables=[flags])
