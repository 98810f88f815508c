"""Incremental collection from a source: read rows after the saved watermark, apply them, save.

Each batch of rows and the watermark it reaches are committed in ONE app-state transaction, so
a killed collector resumes exactly where its last commit ended: no row is lost, none applied
twice (re-applying is harmless anyway: records are upserts keyed by the hospital's numbers).
A row our checks refuse is skipped and listed (key and reason, no values); a failed read (the
view disappeared, the endpoint timed out) ends the run, counts an error, and changes nothing.
Rows are ordered by (watermark, key) so that many rows sharing one watermark value are never
skipped at a batch boundary.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

import yunying.records.schema as t
from yunying.records.mapping import Source
from yunying.records.model import RecordError
from yunying.records.store import RecordStore, Where

log = logging.getLogger("yunying.records")
Position = tuple[Any, Any]  # (watermark value, key value) of the last row applied


class ReadFailed(Exception):
    """The source could not be read; the message names the source and the kind of failure only."""


class Reader(Protocol):
    def read(self, after: Position | None, limit: int) -> list[dict[str, Any]]: ...

    def read_patient(self, patient_id: str, limit: int) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


def encode(value: Any) -> dict[str, Any]:
    """A watermark or key value as JSON, keeping its type (compared in the source's own terms)."""
    if isinstance(value, datetime):
        return {"type": "datetime", "value": value.isoformat()}
    if isinstance(value, date):
        return {"type": "date", "value": value.isoformat()}
    if isinstance(value, bool) or value is None:
        return {"type": "str", "value": "" if value is None else str(value)}
    if isinstance(value, int):
        return {"type": "int", "value": value}
    if isinstance(value, (float, Decimal)):
        return {"type": "float", "value": float(value)}
    return {"type": "str", "value": str(value)}


def decode(item: dict[str, Any]) -> Any:
    kind, value = item["type"], item["value"]
    if kind == "datetime":
        return datetime.fromisoformat(value)
    if kind == "date":
        return date.fromisoformat(value)
    return value


@dataclass
class RunResult:
    source: str
    rows: int = 0
    rejected: int = 0
    error: str = ""


def position(conn: Connection, source: str) -> Position | None:
    row = conn.execute(select(t.cursors.c.watermark).where(t.cursors.c.source == source)).first()
    if row is None or not row.watermark:
        return None
    return decode(row.watermark["wm"]), decode(row.watermark["key"])


def _touch(conn: Connection, source: str, **values: Any) -> None:
    if conn.execute(select(t.cursors.c.source).where(t.cursors.c.source == source)).first() is None:
        conn.execute(insert(t.cursors).values(source=source, rows=0, rejected=0, errors=0, last_error=""))
    conn.execute(update(t.cursors).where(t.cursors.c.source == source).values(**values))


class Collector:
    """One source's incremental reads into the record store; `run()` is safe to call from a timer."""

    def __init__(self, source: Source, records: RecordStore, reader: Reader) -> None:
        self.source, self.records, self.reader = source, records, reader
        self.where = Where(source.hospital, source.issuer, source.name)
        self._lock = threading.Lock()  # one run at a time per source

    def run(self, max_batches: int | None = None) -> RunResult:
        """Read and apply batches until the source has no newer rows (or max_batches)."""
        with self._lock:
            result = RunResult(self.source.name)
            engine = self.records.store.engine
            with engine.connect() as conn:
                after = position(conn, self.source.name)
            batches = 0
            while max_batches is None or batches < max_batches:
                try:
                    rows = self.reader.read(after, self.source.batch)
                except ReadFailed as exc:
                    result.error = str(exc)
                    with engine.begin() as conn:
                        row = conn.execute(select(t.cursors.c.errors).where(
                            t.cursors.c.source == self.source.name)).first()
                        _touch(conn, self.source.name, last_run=int(time.time()), last_error=result.error[:500],
                               errors=(row.errors if row else 0) + 1)
                    log.warning("records source %s: %s", self.source.name, result.error)
                    return result
                if not rows:
                    break
                after = self._apply(rows, result)
                batches += 1
                if len(rows) < self.source.batch:
                    break
            with engine.begin() as conn:
                _touch(conn, self.source.name, last_run=int(time.time()), last_ok=int(time.time()), last_error="")
            return result

    def refresh_patient(self, patient_id: str, limit: int = 10_000) -> RunResult:
        """Read and apply every row of one patient now, whatever the watermark ("real-time refresh
        of one patient"); the saved position is left alone, so the next run still sees them."""
        result = RunResult(self.source.name)
        try:
            rows = self.reader.read_patient(patient_id, limit)
        except ReadFailed as exc:
            result.error = str(exc)
            return result
        with self._lock, self.records.transaction() as (conn, out):
            for row in rows:
                try:
                    rec = self.source.record(row)
                except RecordError:
                    result.rejected += 1  # listed with its reason by the next incremental run
                    continue
                self.records.apply(conn, out, rec, self.where)
                result.rows += 1
        return result

    def _apply(self, rows: list[dict[str, Any]], result: RunResult) -> Position:
        s = self.source
        last = (rows[-1].get(s.watermark), rows[-1].get(s.key))
        with self.records.transaction() as (conn, out):
            applied = rejected = 0
            for row in rows:
                try:
                    rec = s.record(row)
                except RecordError as exc:
                    conn.execute(insert(t.rejects).values(source=s.name, row_key=s.row_key(row),
                                                          reason=str(exc)[:300], at=int(time.time())))
                    rejected += 1
                    continue
                self.records.apply(conn, out, rec, self.where)
                applied += 1
            got = conn.execute(select(t.cursors).where(t.cursors.c.source == s.name)).first()
            _touch(conn, s.name, watermark={"wm": encode(last[0]), "key": encode(last[1])},
                   rows=(got.rows if got else 0) + applied, rejected=(got.rejected if got else 0) + rejected)
        result.rows += applied
        result.rejected += rejected
        return last
