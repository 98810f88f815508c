"""Reading a hospital's view or intermediate table through SQLAlchemy (issue 15 part 2).

PostgreSQL and SQLite are tested; Oracle (`oracle+oracledb://`) and SQL Server
(`mssql+pymssql://`) work through the optional extras `yunying[oracle]`, `yunying[sqlserver]`.
Names come from the sources file and are quoted by SQLAlchemy; values are bound parameters.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import Select, and_, column, create_engine, or_, select, table
from sqlalchemy.exc import SQLAlchemyError

from yunying.records.collector import Position, ReadFailed
from yunying.records.mapping import Source


def _why(exc: SQLAlchemyError) -> str:
    """The driver's first line, without the statement or its parameters."""
    orig = getattr(exc, "orig", None) or exc
    first = str(orig).splitlines()[0] if str(orig) else ""
    return f"{type(orig).__name__}: {first}"[:300]


class SqlReader:
    """Batches of a view's rows after a (watermark, key) position, in that order."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.engine = create_engine(source.url, pool_pre_ping=True)
        names = sorted({*source.columns.values(), source.watermark, source.key})
        self.view = table(source.table, *(column(n) for n in names), schema=source.schema or None)

    def read(self, after: Position | None, limit: int) -> list[dict[str, Any]]:
        c = self.view.c
        wm, key = c[self.source.watermark], c[self.source.key]
        query = select(*c).order_by(wm, key).limit(limit)
        if after is not None:
            query = query.where(or_(wm > after[0], and_(wm == after[0], key > after[1])))
        return self._fetch(query)

    def _fetch(self, query: Select[Any]) -> list[dict[str, Any]]:
        try:
            with self.engine.connect() as conn:
                return [{str(k): v for k, v in r._mapping.items()} for r in conn.execute(query)]
        except SQLAlchemyError as exc:  # the view disappeared, the server went away, a bad column...
            raise ReadFailed(f"cannot read {self.source.table}: {_why(exc)}") from None

    def read_patient(self, patient_id: str, limit: int) -> list[dict[str, Any]]:
        """Every row of one patient (by the column mapped to patient_id), in watermark order."""
        c = self.view.c
        query = select(*c).where(c[self.source.columns["patient_id"]] == patient_id).order_by(
            c[self.source.watermark], c[self.source.key]).limit(limit)
        return self._fetch(query)

    def close(self) -> None:
        self.engine.dispose()
