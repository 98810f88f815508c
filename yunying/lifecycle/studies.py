"""The lifecycle table: each study's retention class and end date, where it was collected from,
and whether the delivery cache purged it (issue 15 part 6)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    func,
    select,
    update,
)
from sqlalchemy.engine import Connection

from yunying.auth.store import migration

meta = MetaData()
studies = Table(
    "lifecycle_studies", meta,
    Column("study_uid", String(64), primary_key=True),
    Column("hospital", String(64), nullable=False),
    Column("source", String(64)),  # the collector source that holds it (None: not collected)
    Column("received_at", Integer, nullable=False),  # first collected: the FIFO order of the cache
    Column("instances", Integer, nullable=False, default=0),
    Column("bytes", Integer, nullable=False, default=0),
    Column("retention_class", String(64), nullable=False),
    Column("retain_until", String(10), nullable=False),  # ISO date: deletion allowed from this day
    Column("protected", Boolean, nullable=False, default=False),  # never purged from the cache
    Column("purged_at", Integer),  # bytes dropped from the cache; re-fetched on the next request
)


@migration("lifecycle", 1)
def create_lifecycle_tables(conn: Connection) -> None:
    meta.create_all(conn, tables=[studies])


@dataclass(frozen=True)
class StudyLife:
    study_uid: str
    hospital: str
    source: str | None
    received_at: int
    instances: int
    bytes: int
    retention_class: str
    retain_until: str
    protected: bool
    purged_at: int | None


class LifecycleTable:
    """Short transactions on lifecycle_studies (thread-safe)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, study: str) -> StudyLife | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(studies).where(studies.c.study_uid == study)).first()
        return None if row is None else StudyLife(**row._mapping)

    def record(self, study: str, *, hospital: str, source: str | None, instances: int, size: int,
               retention_class: str, retain_until: str) -> None:
        """Insert or refresh a study held now (a re-fetch clears purged_at, keeps received_at)."""
        values: dict[str, Any] = {"hospital": hospital, "instances": instances, "bytes": size, "purged_at": None}
        with self.engine.begin() as conn:
            done = conn.execute(update(studies).where(studies.c.study_uid == study).values(**values)).rowcount
            if not done:
                conn.execute(studies.insert().values(study_uid=study, source=source, received_at=int(time.time()),
                                                     retention_class=retention_class, retain_until=retain_until,
                                                     protected=False, **values))

    def held_bytes(self) -> int:
        """Bytes of the collected studies the cache holds now."""
        with self.engine.connect() as conn:
            total = conn.execute(select(func.coalesce(func.sum(studies.c.bytes), 0)).where(
                studies.c.purged_at.is_(None), studies.c.source.is_not(None))).scalar()
        return int(total or 0)

    def oldest_purgeable(self, limit: int = 100) -> list[StudyLife]:
        """Collected, held, unprotected studies, first in first."""
        query = (select(studies).where(studies.c.purged_at.is_(None), studies.c.source.is_not(None),
                                       studies.c.protected.is_(False))
                 .order_by(studies.c.received_at, studies.c.study_uid).limit(limit))
        with self.engine.connect() as conn:
            return [StudyLife(**r._mapping) for r in conn.execute(query)]

    def mark_purged(self, study: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(studies).where(studies.c.study_uid == study).values(purged_at=int(time.time())))

    def purged(self) -> dict[str, StudyLife]:
        """Every purged study (the re-fetch hook keeps this in memory)."""
        with self.engine.connect() as conn:
            return {r.study_uid: StudyLife(**r._mapping)
                    for r in conn.execute(select(studies).where(studies.c.purged_at.is_not(None)))}

    def set_protected(self, study: str, protected: bool) -> bool:
        with self.engine.begin() as conn:
            return bool(conn.execute(update(studies).where(studies.c.study_uid == study)
                                     .values(protected=protected)).rowcount)

    def forget(self, study: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(studies.delete().where(studies.c.study_uid == study))
