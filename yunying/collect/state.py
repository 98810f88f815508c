"""The collectors' state in the app-state store: checkpoints and the history of runs.

A checkpoint is written after the work it records is stored (a day window fetched), so a
collector killed at any point redoes at most the window it was in; re-doing it fetches only
what is still missing (counts compared per series), so nothing is stored twice.
"""
from __future__ import annotations

import time
from typing import Any

from sqlalchemy import JSON, Column, Engine, Integer, MetaData, String, Table, Text, select, update
from sqlalchemy.engine import Connection

from yunying.auth.store import migration

meta = MetaData()
checkpoints = Table(
    "collect_checkpoints", meta,
    Column("source", String(64), primary_key=True),
    Column("key", String(64), primary_key=True),  # "backfill_next", "backfill_until", "last_sync"
    Column("value", String(200), nullable=False),
    Column("updated_at", Integer, nullable=False),
)
runs = Table(
    "collect_runs", meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(64), nullable=False, index=True),
    Column("kind", String(20), nullable=False),  # sync | backfill | refresh | refetch
    Column("started_at", Integer, nullable=False),
    Column("finished_at", Integer),
    Column("state", String(20), nullable=False),  # running | done | failed | interrupted
    Column("counts", JSON, nullable=False),
    Column("error", Text),  # the last error; UIDs and statuses only, never patient data
)


@migration("collect", 1)
def create_collect_tables(conn: Connection) -> None:
    meta.create_all(conn, tables=[checkpoints, runs])


class CollectState:
    """Reads and writes the collectors' tables (thread-safe: one short transaction per call)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def checkpoint(self, source: str, key: str) -> str | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(checkpoints.c.value).where(
                checkpoints.c.source == source, checkpoints.c.key == key)).first()
        return None if row is None else str(row[0])

    def set_checkpoint(self, source: str, key: str, value: str | None) -> None:
        where = (checkpoints.c.source == source) & (checkpoints.c.key == key)
        with self.engine.begin() as conn:
            conn.execute(checkpoints.delete().where(where))
            if value is not None:
                conn.execute(checkpoints.insert().values(source=source, key=key, value=value,
                                                         updated_at=int(time.time())))

    def start_run(self, source: str, kind: str) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(runs.insert().values(source=source, kind=kind, started_at=int(time.time()),
                                                       state="running", counts={}))
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    def update_run(self, run: int, counts: dict[str, int], state: str | None = None,
                   error: str | None = None) -> None:
        values: dict[str, Any] = {"counts": dict(counts)}
        if state is not None:
            values["state"] = state
            if state != "running":
                values["finished_at"] = int(time.time())
        if error is not None:
            values["error"] = error[:500]
        with self.engine.begin() as conn:
            conn.execute(update(runs).where(runs.c.id == run).values(**values))

    def interrupted(self) -> int:
        """Mark runs left "running" by a process that died as interrupted; returns how many."""
        with self.engine.begin() as conn:
            return int(conn.execute(update(runs).where(runs.c.state == "running").values(
                state="interrupted", finished_at=int(time.time()))).rowcount)

    def recent_runs(self, source: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        query = select(runs).order_by(runs.c.id.desc()).limit(limit)
        if source is not None:
            query = query.where(runs.c.source == source)
        with self.engine.connect() as conn:
            return [{str(k): v for k, v in r._mapping.items()} for r in conn.execute(query)]  # plain str keys for orjson
