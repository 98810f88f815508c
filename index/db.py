"""The DuckDB study index: patients, studies, series, instances, and the stored DICOM JSON.

- An instance is keyed by SOPInstanceUID; upserting it again replaces it (the old row is
  returned so the archive can delete the old bytes).
- A series or study row takes its attributes from its newest instance (last upserted), and its
  counters (PS3.4 C.3.4: NumberOfStudyRelatedSeries/Instances, NumberOfSeriesRelatedInstances,
  ModalitiesInStudy, SOPClassesInStudy) are kept exact in the same transaction: a store adds
  to the current counters (write._incremental); a delete, or a store that moves an instance,
  series or study, recomputes them by aggregation (write.refresh).
- A patient is PatientID qualified by IssuerOfPatientID, else the sending institution, else the
  source (design rule 6). IssuerOfPatientID matching uses that qualifier, and PATIENT-level
  answers report it when the data carry no IssuerOfPatientID.
- Readers use their own cursors and never wait for the writer (DuckDB MVCC snapshots).
- Study and series searches are answered from an in-memory copy of the study and series rows
  (catalog.py), loaded by the first search (writes go on meanwhile) and brought up to date by
  every write before the writer lets go; instance searches read the instances table alone and
  take the rest from it.
"""
from __future__ import annotations

import logging
import threading
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import orjson

from index import extract as ex
from index import moves, write
from index.catalog import MAX_ROWS, Catalog
from index.model import InstanceRecord, InstanceRow
from index.query import Query
from index.results import Shaper, Sources
from index.schema import migrations, statements
from index.sql import compile_instances, compile_query
from index.write import ROW_COLS, Refreshed, marks, to_row

T = TypeVar("T")
log = logging.getLogger("yunying.index")
IN_ORDER = ("FROM instances i LEFT JOIN series se ON se.uid = i.series WHERE {where} ORDER BY "
            "se.series_number NULLS LAST, i.series, i.instance_number NULLS LAST, i.sop")
FETCH = 500  # rows per fetch when streaming answers
OWNERS_MAX = 100_000  # studies whose owner is kept in memory (unknown UIDs included)
# Instances written since the last checkpoint stay in DuckDB's memory (~4.6 KiB each: rows, ART
# entries, the DICOM JSON) until a CHECKPOINT, which DuckDB itself runs only when the WAL reaches
# checkpoint_threshold (256 MB, schema.py: >10,000 small instances). A long ingest checkpoints every
# CHECKPOINT_ROWS instead, so its memory does not grow with the load, nor does the checkpoint's own
# (measured: the idle checkpoint after 20,000 small instances took the server from 570 to 681 MiB
# RSS for a second; issue 9 part 5, benchmarks/README.md)
CHECKPOINT_ROWS = 4096


class Index:
    """The archive's index: one DuckDB connection, a cursor per reading thread, one writer at a time."""

    incremental = True  # False: every write re-aggregates what it touches (tests compare both)
    checkpoint_rows = CHECKPOINT_ROWS  # instances upserted between checkpoints during ingest (0: DuckDB's own)

    def __init__(self, path: str | Path, read_only: bool = False) -> None:
        """read_only: look without changing anything (no schema statements; `yunying check`)."""
        # DuckDB allocates through its own jemalloc, which keeps the pages a burst of writes freed
        # (~25 MiB after ~5,000 small instances; malloc_trim does not reach them) until that
        # thread allocates again; its background thread gives them back after ~1 s unused
        # (issue 9 part 5: measured -25 MiB idle; the CPU per write within noise)
        self._con = duckdb.connect(str(path), read_only=read_only,
                                   config={"allocator_background_threads": True})
        self._lock = threading.Lock()  # serializes writers; readers never take it
        self._local = threading.local()
        self._closed = False
        self._read_only = read_only
        existing: dict[str, set[str]] = {}
        for table, col in self._con.execute(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = 'main'").fetchall():
            existing.setdefault(table, set()).add(col)
        for stmt in () if read_only else migrations(existing):  # an index file of an earlier version
            log.info("index migration: %s", stmt)
            self._con.execute(stmt)
        for stmt in () if read_only else [*statements(), moves.DDL]:
            self._con.execute(stmt)
        # studies moved to another patient (HL7 merges): small, read by every ingest and retrieval
        self._overrides: dict[str, moves.Attrs] = (
            moves.load(self._con) if not read_only or "patient_overrides" in existing else {})
        last = self._con.execute("SELECT coalesce(max(seq), 0) FROM instances").fetchone()
        self._seq: int = last[0] if last else 0
        self._catalog: Catalog | None = None  # loaded by the first search
        self._catalog_off = False  # too many rows to keep in memory
        self._loader = threading.Lock()  # one thread loads the catalog
        self._touched: tuple[set[str], set[str]] | None = None  # what writes touch while it loads
        # study -> its origin (hospital, department) or None (not stored): every request of a
        # scoped principal asks; writes drop what they touch and bump the generation, so a
        # lookup that raced a write is not kept
        self._owners: dict[str, tuple[str, str | None] | None] = {}
        self._owners_gen = 0
        self._owners_lock = threading.Lock()
        # hash() of every stored study's UID, once loaded: a study certainly not stored (every
        # first instance of a new study asks) is answered without a DuckDB read (issue 9);
        # removed studies leave their hash (a false "maybe", which asks DuckDB, never a false "no")
        self._studies: set[int] | None = None
        self._unsaved = 0  # instances upserted since the last checkpoint (an estimate: failed ones count)
        self.checkpoints = 0  # checkpoints run by checkpoint_rows (tests, benchmarks)

    def close(self) -> None:
        """Checkpoint and close the database (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if not self._read_only:
                self._con.execute("CHECKPOINT")
            self._con.close()

    def release_memory(self) -> bool:
        """Give back what an idle server keeps for the next burst (issue 9 part 5); True when the
        checkpoint ran. Rows written since the last checkpoint stay in DuckDB's memory (its
        IN_MEMORY_TABLE and ART_INDEX: ~40 MiB after ~5,000 small instances) until the next one
        (CHECKPOINT_ROWS): CHECKPOINT now (False when DuckDB refused, a reader's result still
        open: the next idle period tries again). Then the catalog's parsed answers (~5 KiB a row)
        go. The buffer pool's table blocks (~17 MiB once the catalog has loaded 21,000 rows) stay:
        DuckDB evicts them only under a lowered memory_limit, and a read arriving meanwhile (readers
        take no lock) would fail for want of memory (an aggregate under 10 MB does)."""
        with self._lock:
            if self._closed or self._read_only:
                return False
            done = self._checkpoint("idle")
            if log.isEnabledFor(logging.DEBUG) or tracemalloc.is_tracing():  # diagnosing memory
                kept = self._con.execute("SELECT tag, memory_usage_bytes FROM duckdb_memory() "
                                         "WHERE memory_usage_bytes > 0").fetchall()
                log.info("duckdb memory after the idle release: %s",
                         ", ".join(f"{t} {b / 2**20:.1f} MiB" for t, b in kept))
        if self._catalog is not None:
            self._catalog.forget_parsed()
        return done

    def _checkpoint(self, why: str) -> bool:
        """CHECKPOINT under the writer lock; False when DuckDB refused (a reader's transaction open)."""
        try:
            self._con.execute("CHECKPOINT")
        except duckdb.Error as exc:
            log.debug("%s checkpoint skipped: %s", why, exc)
            return False
        self._unsaved = 0
        return True

    def _reader(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor for short reads (always fully fetched before returning)."""
        cur = getattr(self._local, "cur", None)
        if cur is None:
            cur = self._local.cur = self._con.cursor()
        return cur

    def _write(self, body: Callable[[duckdb.DuckDBPyConnection], tuple[T, Refreshed]]) -> T:
        """Run body in one transaction on a fresh cursor, under the writer lock; then bring the
        catalog's copy of the studies and series it touched up to date (from the rows it wrote:
        no query) before the lock is let go."""
        with self._lock:
            cur = self._con.cursor()
            try:
                cur.execute("BEGIN TRANSACTION")
                out, refreshed = body(cur)
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                cur.close()
                raise
            with self._owners_lock:
                self._owners_gen += 1
                for study in refreshed.studies:
                    self._owners.pop(study, None)
                # the rows just written name their owner (hospital, department): the next
                # instances of these studies find it here, not in DuckDB (issue 9)
                if len(self._owners) + len(refreshed.study_rows) >= OWNERS_MAX:
                    self._owners.clear()
                for row in refreshed.study_rows:
                    self._owners[row[0]] = (row[-3], row[-2])
                    if self._studies is not None:
                        self._studies.add(hash(row[0]))
            try:
                if self._touched is not None:
                    self._touched[0].update(refreshed.studies)
                    self._touched[1].update(refreshed.series)
                if self._catalog is not None:
                    self._catalog.apply(refreshed)
                    if len(self._catalog) > MAX_ROWS:
                        self._catalog, self._catalog_off = None, True
            except Exception:  # the write is committed: the next search loads the catalog whole
                log.exception("could not update the in-memory catalog; it is loaded again")
                self._catalog = None
            finally:
                cur.close()
            return out

    def _catalog_ready(self) -> Catalog | None:
        """The in-memory study and series rows; None above MAX_ROWS, or while another thread
        loads them (that search goes to SQL). Loaded on first use without holding up writes:
        what they touch meanwhile is read again before the catalog is used."""
        catalog = self._catalog
        if catalog is not None or self._catalog_off or not self._loader.acquire(blocking=False):
            return catalog
        cur = None
        try:
            with self._lock:
                if self._catalog is not None or self._catalog_off or self._closed:
                    return self._catalog
                self._touched = (set(), set())
                cur = self._con.cursor()
            (n,) = cur.execute("SELECT (SELECT count(*) FROM studies) + "
                               "(SELECT count(*) FROM series)").fetchone() or (0,)
            if n > MAX_ROWS:
                self._catalog_off = True
                return None
            catalog = Catalog()
            catalog.reload(cur)  # reads committed rows; writes go on meanwhile
            with self._lock:
                catalog.reload(cur, *self._touched)
                self._catalog = catalog
            return catalog
        finally:
            with self._lock:
                self._touched = None
                if cur is not None:
                    cur.close()
            self._loader.release()

    def upsert(self, records: Sequence[InstanceRecord]) -> list[InstanceRow | None]:
        """Insert or replace instances in one transaction; returns each one's previous row or None."""
        if not records:
            return []
        for rec in records:
            for tag in ("00080018", "0020000D", "0020000E"):
                if not ex.text(rec.json, tag):
                    raise ValueError(f"record without {tag}")

        def body(cur: duckdb.DuckDBPyConnection) -> tuple[list[InstanceRow | None], Refreshed]:
            recs = records
            if self._overrides:  # under the writer lock: an instance of a moved study takes its patient
                recs = [replace(r, json=moves.patch(r.json, self._overrides[s])) if (
                    s := ex.text(r.json, "0020000D")) in self._overrides else r for r in records]
            previous, seq, refreshed = write.upsert(cur, recs, self._seq, self.incremental)
            self._seq = seq
            return previous, refreshed
        start = self._seq
        try:
            out = self._write(body)
        except BaseException:
            self._seq = start
            raise
        with self._lock:  # a checkpoint holds up the next write (0.1-0.4 s); readers do not wait
            self._unsaved += len(records)
            if self.checkpoint_rows and self._unsaved >= self.checkpoint_rows and not self._closed \
                    and self._checkpoint("ingest"):
                self.checkpoints += 1
        return out

    def delete(self, study: str, series: str | None = None, sop: str | None = None) -> list[InstanceRow]:
        """Remove a study, series or instance in one transaction; returns the removed rows."""
        where, params = self._scope(study, series, sop)
        return self._write(lambda cur: write.delete(cur, where, params, IN_ORDER.format(where=where)))

    def move_patient(self, studies: list[str], attrs: moves.Attrs, keep: bool = True) -> dict[str, moves.Attrs]:
        """Move studies to another patient (index/moves.py) in one transaction; returns the prior
        attributes of each moved study. keep=False: a move back (undo), dropping the override."""
        before = dict(self._overrides)

        def body(cur: duckdb.DuckDBPyConnection) -> tuple[dict[str, moves.Attrs], Refreshed]:
            priors, refreshed = moves.move(cur, studies, attrs, keep)
            for study in priors:  # under the writer lock, so no ingest slips in between
                if keep:
                    self._overrides[study] = attrs
                else:
                    self._overrides.pop(study, None)
            return priors, refreshed
        try:
            return self._write(body)
        except BaseException:
            self._overrides = before
            raise

    def patient_override(self, study: str) -> moves.Attrs | None:
        """The patient attributes a moved study's stored headers are corrected with on retrieval."""
        return self._overrides.get(study)

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

    def owner(self, study: str) -> tuple[str, str | None] | None:
        """The origin (hospital, department) of a stored study; None when it is not stored."""
        try:
            return self._owners[study]
        except KeyError:
            pass
        generation = self._owners_gen
        if hash(study) not in (self._studies if self._studies is not None else self._load_studies()):
            found = None  # certainly not stored
        else:
            r = self._reader().execute("SELECT hospital, department FROM studies WHERE uid = ?", [study]).fetchone()
            found = (r[0], r[1]) if r else None
        with self._owners_lock:
            if generation == self._owners_gen:
                if len(self._owners) >= OWNERS_MAX:
                    self._owners.clear()
                self._owners[study] = found
        return found

    def _load_studies(self) -> set[int]:
        """The stored studies' hashes (under the writer lock: no write is missed meanwhile)."""
        with self._lock:
            if self._studies is None:
                rows = self._reader().execute("SELECT uid FROM studies").fetchall()
                self._studies = {hash(uid) for (uid,) in rows}
            return self._studies

    def cached_owner(self, study: str) -> tuple[tuple[str, str | None] | None] | None:
        """owner(study) as a 1-tuple when it is in memory, else None (never touches DuckDB)."""
        try:
            return (self._owners[study],)
        except KeyError:
            return None

    def lookup(self, sop: str) -> InstanceRow | None:
        """The row of one instance by SOP Instance UID."""
        r = self._reader().execute(f"SELECT {ROW_COLS} FROM instances i WHERE i.sop = ?", [sop]).fetchone()
        return to_row(r) if r else None

    def instances(self, study: str, series: str | None = None, sop: str | None = None) -> list[InstanceRow]:
        """Rows under a study / series / instance, by series (number, UID) then instance (number, UID)."""
        where, params = self._scope(study, series, sop)
        return [to_row(r) for r in self._reader().execute(
            f"SELECT {ROW_COLS} {IN_ORDER.format(where=where)}", params).fetchall()]

    def iter_metadata(self, study: str, series: str | None = None, sop: str | None = None,
                      batch: int = 256) -> Iterator[list[bytes]]:
        """The stored DICOM JSON (orjson bytes) of instances, in instances() order, in batches."""
        where, params = self._scope(study, series, sop)
        yield from self._stream(f"SELECT i.json {IN_ORDER.format(where=where)}", params, batch,
                                lambda rows: [bytes(r[0]) for r in rows])

    def storage_keys(self) -> Iterator[tuple[str, str]]:
        """(sop, storage_key) of every instance."""
        for rows in self._stream("SELECT sop, storage_key FROM instances", [], FETCH,
                                 lambda rows: [(r[0], r[1]) for r in rows]):
            yield from rows

    def search(self, query: Query) -> Iterator[dict]:
        """DICOM JSON answers of a query at its level, streamed in a stable order."""
        shaper = Shaper(query)
        catalog = self._catalog_ready()
        found = catalog.search(query) if catalog is not None else None
        if found is not None:
            yield from self._answers(shaper, [r for r, _ in found], [t for _, t in found])
            return
        alone = compile_instances(query) if catalog is not None and query.level == "IMAGE" else None
        if catalog is not None and alone is not None:
            for rows in self._instances(catalog, query, *alone):
                yield from self._answers(shaper, [shaper.sources(r) for r in rows], None)
            return
        sql, params = compile_query(query)
        for rows in self._stream(sql, params, FETCH, list):
            yield from self._answers(shaper, [shaper.sources(r) for r in rows], None)

    def _instances(self, catalog: Catalog, query: Query, sql: str, params: list[Any],
                   page_here: bool) -> Iterator[list[tuple[Any, ...]]]:
        """Batches of sql.SELECT["IMAGE"] rows: the instances alone plus the catalog's series and study."""
        if page_here:  # sql.ORDER["IMAGE"]: instance_number NULLS LAST, sop
            rows = sorted(self._reader().execute(sql, params).fetchall(),
                          key=lambda r: (r[3] is None, r[3] or 0, r[4]))
            if not query.scope.everything:  # left to us by compile_instances
                rows = catalog.in_scope(query.scope, rows)
            start = max(0, query.offset)
            batches: Iterator[list[Any]] = iter(
                [rows[start:None if query.limit is None else start + max(0, query.limit)]])
        else:
            batches = self._stream(sql, params, FETCH, list)
        for batch in batches:
            # an instance whose series or study row is missing is left out, as the join does
            yield [(r[0], *upper) for r in batch if (upper := catalog.upper(r[1], r[2])) is not None]

    def _answers(self, shaper: Shaper, sources: list[Sources],
                 tags: list[frozenset[str] | None] | None) -> Iterator[dict]:
        """Shaped answers; asked tags kept at no level come from the representative instance,
        looked up only when it has them (tags: each one's representative's tags, when known)."""
        shaped = [shaper.shape(s) for s in sources]
        need = sorted({rep for n, ((_, _, rep), (_, miss)) in enumerate(zip(sources, shaped))
                       if miss and rep and (tags is None or (t := tags[n]) is None or not t.isdisjoint(miss))})
        docs = dict(self._reader().execute(
            f"SELECT sop, json FROM instances WHERE sop IN ({marks(len(need))})", need
        ).fetchall()) if need else {}
        for (_, _, rep_sop), (out, miss) in zip(sources, shaped):
            rep = docs.get(rep_sop or "")
            yield shaper.fill(out, miss, orjson.loads(rep) if rep else None)

    def _stream(self, sql: str, params: list[Any], size: int,
                conv: Callable[[list[Any]], T]) -> Iterator[T]:
        """Run a query on its own cursor (so callers may read meanwhile) and yield converted batches."""
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
        return dict(zip(("patients", "studies", "series", "instances"), r or (0, 0, 0, 0)))
