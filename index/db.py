"""The DuckDB study index: patients, studies, series, instances, and the stored DICOM JSON."""
from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import orjson

from index import extract as ex
from index.model import InstanceRecord, InstanceRow
from index.query import Query
from index.results import Shaper
from index.schema import SCHEMA
from index.sql import compile_query

ROW_COLS = ("i.study, i.series, i.sop, i.sop_class, i.transfer_syntax, i.pixel_form, i.frames, "
            "i.size, i.digest, i.storage_key, i.extra")
IN_ORDER = ("FROM instances i LEFT JOIN series se ON se.uid = i.series WHERE {where} ORDER BY "
            "se.series_number NULLS LAST, i.series, i.instance_number NULLS LAST, i.sop")
FETCH = 500


def _marks(n: int) -> str:
    """n comma-separated placeholders."""
    return ", ".join("?" * n)


def _row(r: Sequence[Any]) -> InstanceRow:
    """An InstanceRow from a ROW_COLS row."""
    return InstanceRow(*r[:10], extra=orjson.loads(r[10]) if r[10] else {})


def _insert(cur: duckdb.DuckDBPyConnection, table: str, cols: Sequence[str],
            rows: Sequence[tuple[Any, ...]], chunk: int = 100) -> None:
    """Insert rows with one multi-row VALUES statement per chunk (far faster than executemany)."""
    one = f"({_marks(len(cols))})"
    for i in range(0, len(rows), chunk):
        part = rows[i:i + chunk]
        cur.execute(f"INSERT INTO {table} ({', '.join(cols)}) VALUES {', '.join([one] * len(part))}",
                    [v for r in part for v in r])


class Index:
    """The archive's index; readers on any thread, writes serialized by a lock."""

    def __init__(self, path: str | Path) -> None:
        self._con = duckdb.connect(str(path))
        self._lock = threading.Lock()  # one writer at a time; readers use their own cursors
        self._local = threading.local()
        for stmt in SCHEMA:
            self._con.execute(stmt)
        self._seq = self._con.execute("SELECT coalesce(max(seq), 0) FROM instances").fetchone()[0]

    def close(self) -> None:
        """Checkpoint and close the database."""
        with self._lock:
            self._con.execute("CHECKPOINT")
            self._con.close()

    def _reader(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor for short reads (fully fetched before returning)."""
        cur = getattr(self._local, "cur", None)
        if cur is None:
            cur = self._local.cur = self._con.cursor()
        return cur

    # -- writes ------------------------------------------------------------------------------

    def upsert(self, records: Sequence[InstanceRecord]) -> list[InstanceRow | None]:
        """Insert or replace instances in one transaction; returns each one's previous row."""
        if not records:
            return []
        for rec in records:
            for tag in ("00080018", "0020000D", "0020000E"):
                if not ex.text(rec.json, tag):
                    raise ValueError(f"record without {tag}")
        with self._lock:
            cur = self._con.cursor()
            try:
                cur.execute("BEGIN TRANSACTION")
                out = self._upsert(cur, records)
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            finally:
                cur.close()
        return out

    def _upsert(self, cur: duckdb.DuckDBPyConnection,
                records: Sequence[InstanceRecord]) -> list[InstanceRow | None]:
        """The body of upsert, inside the transaction."""
        sops = list(dict.fromkeys(ex.text(r.json, "00080018") or "" for r in records))
        old = {r.sop: r for r in map(_row, cur.execute(
            f"SELECT {ROW_COLS} FROM instances i WHERE i.sop IN ({_marks(len(sops))})", sops
        ).fetchall())}
        previous: list[InstanceRow | None] = []
        latest: dict[str, tuple[Any, ...]] = {}
        for rec in records:
            self._seq += 1
            values = ex.instance_values(rec, self._seq)
            sop = values[0]
            prior = latest.get(sop)
            previous.append(_row((prior[1], prior[2], sop, prior[3], *prior[7:13], prior[17]))
                            if prior else old.get(sop))
            latest[sop] = values
        studies = {r.study for r in old.values()} | {v[1] for v in latest.values()}
        series = {r.series for r in old.values()} | {v[2] for v in latest.values()}
        if old:
            cur.execute(f"DELETE FROM instances WHERE sop IN ({_marks(len(old))})", list(old))
        _insert(cur, "instances", ex.INSTANCE_COLS, list(latest.values()))
        self._refresh(cur, studies, series)
        return previous

    def delete(self, study: str, series: str | None = None, sop: str | None = None) -> list[InstanceRow]:
        """Remove a study, series or instance in one transaction; returns the removed rows."""
        where, params = self._scope(study, series, sop)
        with self._lock:
            cur = self._con.cursor()
            try:
                cur.execute("BEGIN TRANSACTION")
                rows = [_row(r) for r in cur.execute(
                    f"SELECT {ROW_COLS} {IN_ORDER.format(where=where)}", params).fetchall()]
                if rows:
                    cur.execute(f"DELETE FROM instances i WHERE {where}", params)
                    self._refresh(cur, {r.study for r in rows}, {r.series for r in rows})
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            finally:
                cur.close()
        return rows

    def _refresh(self, cur: duckdb.DuckDBPyConnection, studies: set[str], series: set[str]) -> None:
        """Rebuild the series, study and patient rows (and exact counters) that a write touched."""
        sl, st = sorted(series), sorted(studies)
        reps = cur.execute(
            f"SELECT series, count(*), arg_max(sop, seq), max(seq) FROM instances "
            f"WHERE series IN ({_marks(len(sl))}) GROUP BY series", sl).fetchall()
        docs = self._docs(cur, [r[2] for r in reps])
        cur.execute(f"DELETE FROM series WHERE uid IN ({_marks(len(sl))})", sl)
        _insert(cur, "series", ex.SERIES_COLS,
                [ex.series_values(docs[rep][0], n, rep, seq) for _, n, rep, seq in reps])
        keys = {k for (k,) in cur.execute(
            f"SELECT patient_key FROM studies WHERE uid IN ({_marks(len(st))})", st).fetchall()}
        aggs = cur.execute(
            f"SELECT study, count(*), count(DISTINCT series), arg_max(sop, seq), max(seq), "
            f"list(DISTINCT sop_class ORDER BY sop_class) FROM instances "
            f"WHERE study IN ({_marks(len(st))}) GROUP BY study", st).fetchall()
        per_series = {r[0]: r[1:] for r in cur.execute(
            f"SELECT study, list(DISTINCT modality ORDER BY modality) FILTER (modality IS NOT NULL), "
            f"list(DISTINCT institution ORDER BY institution) FILTER (institution IS NOT NULL) "
            f"FROM series WHERE study IN ({_marks(len(st))}) GROUP BY study", st).fetchall()}
        docs = self._docs(cur, [a[3] for a in aggs])
        cur.execute(f"DELETE FROM studies WHERE uid IN ({_marks(len(st))})", st)
        rows = []
        for uid, n_inst, n_series, rep, seq, classes in aggs:
            js, institution, source = docs[rep]
            mods, insts = per_series.get(uid, (None, None))
            agg = {"modalities": mods or [], "institutions": insts or [], "sop_classes": classes,
                   "n_series": n_series, "n_instances": n_inst}
            rows.append(ex.study_values(js, ex.issuer_of(js, institution, source), agg, rep, seq))
        _insert(cur, "studies", ex.STUDY_COLS, rows)
        self._refresh_patients(cur, keys | {r[1] for r in rows})

    def _refresh_patients(self, cur: duckdb.DuckDBPyConnection, keys: set[str]) -> None:
        """Rebuild patient rows from their studies (the newest study gives the attributes)."""
        kl = sorted(keys)
        if not kl:
            return
        aggs = cur.execute(
            f"SELECT patient_key, count(*), sum(n_series), sum(n_instances), arg_max(uid, seq), "
            f"max(seq) FROM studies WHERE patient_key IN ({_marks(len(kl))}) GROUP BY patient_key",
            kl).fetchall()
        pats = {r[0]: r[1:] for r in cur.execute(
            f"SELECT uid, {', '.join(ex.PATIENT_COLS)}, attrs FROM studies "
            f"WHERE uid IN ({_marks(len(aggs))})", [a[4] for a in aggs]).fetchall()} if aggs else {}
        cur.execute(f"DELETE FROM patients WHERE key IN ({_marks(len(kl))})", kl)
        _insert(cur, "patients", ex.PATIENTS_COLS, [
            ex.patient_row(key, pats[rep][:-1], (n_st, int(n_se), int(n_in)), pats[rep][-1], seq)
            for key, n_st, n_se, n_in, rep, seq in aggs])

    @staticmethod
    def _docs(cur: duckdb.DuckDBPyConnection, sops: list[str]) -> dict[str, tuple[Any, str, str]]:
        """Parsed JSON, institution and source of some instances."""
        if not sops:
            return {}
        return {s: (orjson.loads(j), inst, src) for s, j, inst, src in cur.execute(
            f"SELECT sop, json, institution, source FROM instances WHERE sop IN ({_marks(len(sops))})",
            sops).fetchall()}

    # -- reads -------------------------------------------------------------------------------

    @staticmethod
    def _scope(study: str, series: str | None, sop: str | None) -> tuple[str, list[str]]:
        """WHERE terms on instances i for a study / series / instance."""
        terms, params = ["i.study = ?"], [study]
        if series is not None:
            terms.append("i.series = ?")
            params.append(series)
        if sop is not None:
            terms.append("i.sop = ?")
            params.append(sop)
        return " AND ".join(terms), params

    def lookup(self, sop: str) -> InstanceRow | None:
        """The row of one instance by SOP Instance UID."""
        r = self._reader().execute(f"SELECT {ROW_COLS} FROM instances i WHERE i.sop = ?", [sop]).fetchone()
        return _row(r) if r else None

    def instances(self, study: str, series: str | None = None, sop: str | None = None) -> list[InstanceRow]:
        """Rows under a study / series / instance, in series then instance order."""
        where, params = self._scope(study, series, sop)
        return [_row(r) for r in self._reader().execute(
            f"SELECT {ROW_COLS} {IN_ORDER.format(where=where)}", params).fetchall()]

    def iter_metadata(self, study: str, series: str | None = None, sop: str | None = None,
                      batch: int = 256) -> Iterator[list[bytes]]:
        """The stored DICOM JSON (orjson bytes) of instances, in instances() order, in batches."""
        where, params = self._scope(study, series, sop)
        yield from self._stream(f"SELECT i.json {IN_ORDER.format(where=where)}", params, batch,
                                lambda rows: [bytes(r[0]) for r in rows])

    def storage_keys(self) -> Iterator[tuple[str, str]]:
        """(sop, storage_key) of every instance."""
        for rows in self._stream("SELECT sop, storage_key FROM instances ORDER BY sop", [], FETCH,
                                 lambda rows: [(r[0], r[1]) for r in rows]):
            yield from rows

    def search(self, query: Query) -> Iterator[dict]:
        """DICOM JSON answers of a query at its level, streamed in a stable order."""
        sql, params = compile_query(query)
        shaper = Shaper(query)
        for rows in self._stream(sql, params, FETCH, list):
            shaped = [shaper.shape(r) for r in rows]
            need = [shaper.rep_sop(r) for r, (_, miss) in zip(rows, shaped) if miss]
            docs = self._docs(self._reader(), [s for s in need if s]) if need else {}
            for r, (out, miss) in zip(rows, shaped):
                rep = docs.get(shaper.rep_sop(r) or "")
                yield shaper.fill(out, miss, rep[0] if rep else None)

    def _stream(self, sql: str, params: list[Any], size: int, conv: Any) -> Iterator[Any]:
        """Run a query on its own cursor and yield converted batches of rows."""
        cur = self._con.cursor()
        try:
            cur.execute(sql, params)
            while rows := cur.fetchmany(size):
                yield conv(rows)
        finally:
            cur.close()

    def counts(self) -> dict[str, int]:
        """Numbers of patients, studies, series and instances."""
        r = self._reader().execute(
            "SELECT (SELECT count(*) FROM patients), (SELECT count(*) FROM studies), "
            "(SELECT count(*) FROM series), (SELECT count(*) FROM instances)").fetchone()
        return dict(zip(("patients", "studies", "series", "instances"), r))

    def _all_sops(self) -> Iterable[str]:
        """Every SOP Instance UID (tests)."""
        return [s for (s,) in self._reader().execute("SELECT sop FROM instances").fetchall()]
