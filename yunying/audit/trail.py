"""The audit writer: one thread chains and commits records in batches (issue 12 part 1).

"Acknowledged" here means: a request's record is in the journal before the request's answer is
complete. `submit` appends the record to `<data>/audit.journal` with one write(2) (~10 us, in
the calling thread; what the kernel has accepted survives a kill -9 of the process); the
writer thread then chains and commits records to the store in batches and empties the journal
whenever everything in it is committed. At the next start, journal lines not in the store are
committed first. If the journal cannot be written, the caller waits for the commit instead.
Folded frame requests (and C-STORE instances): the first request of a (principal, client,
series) window is recorded like any other; the ones after it only count, and their count is
written as one more record when the window closes (idle `fold_idle` s, at most `fold_max` s) —
a kill -9 can lose those counts, never the fact that the series was opened. A power loss can
lose what the operating system had not yet written of the journal (the store's commits are
synced); that is outside what issue 12 asks, and the price of not fsyncing every request.
"""
from __future__ import annotations

import itertools
import logging
import operator
import os
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine

from yunying.audit import chain
from yunying.audit.schema import FIELDS, anchors, head, records

log = logging.getLogger("yunying.audit")
Entry = dict[str, Any]
PatientLookup = Callable[[str], "tuple[str, str, str] | None"]  # study -> (PatientID, issuer, accession)
FoldKey = tuple[str, ...]
_STOP = object()
DEFAULTS: Entry = {"principal_kind": "anonymous", "principal_id": "", "roles": "", "hospital": "", "client": "",
                   "face": "http", "status": "", "outcome": "success", "patient_id": "", "issuer": "",
                   "studies": "", "series": "", "accession": "", "request_id": "", "count": 1, "detail": ""}


class Journal:
    """Records accepted but not yet committed, one JSON line each, appended with one write(2)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.lock = threading.Lock()
        self.pending = 0

    def append(self, entry: Entry) -> None:
        line = orjson.dumps(entry) + b"\n"
        with self.lock:
            if os.write(self.fd, line) != len(line):
                raise OSError("short write to the audit journal")
            self.pending += 1

    def committed(self, n: int) -> None:
        with self.lock:
            self.pending -= n
            if self.pending == 0:  # everything in it is in the store: start it afresh
                os.ftruncate(self.fd, 0)

    def read(self) -> list[Entry]:
        """The journal's records (a torn last line, cut by a crash mid-write, is dropped)."""
        out = []
        for line in self.path.read_bytes().split(b"\n"):
            try:
                out.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue
        return out

    def close(self) -> None:
        os.close(self.fd)


class _Journaled:
    """Stands for the Future of a journaled record nobody waits for."""

    durable = True

    def set_result(self, seq: int) -> None:
        pass


_JOURNALED = _Journaled()


class Trail:
    """Accepts entries from any thread; `submit` returns a Future resolved once committed
    (`future.durable` says whether it is already safe in the journal)."""

    def __init__(self, engine: Engine, key: bytes, patients: PatientLookup | None = None,
                 journal: Path | None = None, fold_idle: float = 2.0, fold_max: float = 5.0,
                 batch: int = 2000, window: float = 1.0) -> None:
        self.engine, self.key, self.patients, self.window = engine, key, patients, window
        self.journal = Journal(journal) if journal is not None else None
        self.fold_idle, self.fold_max, self.batch = fold_idle, fold_max, batch
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # cuts the writer's batching window short: a reader's sync(), a caller waiting for a
        # commit (journal not written), close()
        self._hurry = threading.Event()
        self._folds: dict[FoldKey, list[Any]] = {}  # key -> [entry, extra count, first, last]
        self._fold_lock = threading.Lock()
        self._cache: OrderedDict[str, tuple[str, str, str]] = OrderedDict()
        if self.journal is not None:
            self._replay(self.journal)
        self._thread = threading.Thread(target=self._run, name="yunying-audit", daemon=True)
        self._thread.start()

    # -- producers (any thread) ------------------------------------------------------------
    def submit(self, entry: Entry) -> Future[int]:
        """Journal and queue one record; the Future gives its sequence number once committed."""
        fut: Future[int] = Future()
        entry = _complete(entry)
        durable = False
        if self.journal is not None:
            try:
                self.journal.append(entry)
                durable = True
            except OSError as exc:  # a full disk: the caller waits for the commit instead
                log.error("audit journal not written (%s)", type(exc).__name__)
        fut.durable = durable  # type: ignore[attr-defined]
        self._q.put((entry, fut))
        if not durable:
            self._hurry.set()
        return fut

    def journal_or_submit(self, entry: Entry) -> Future[int] | None:
        """submit() for a caller that waits only when the journal failed: None once the record
        is safe in the journal (no Future, no lock to make: the HTTP middleware's hot path)."""
        if self.journal is None:
            return self.submit(entry)
        entry = _complete(entry)
        try:
            self.journal.append(entry)
        except OSError as exc:  # a full disk: the caller waits for the commit instead
            log.error("audit journal not written (%s)", type(exc).__name__)
            fut: Future[int] = Future()
            fut.durable = False  # type: ignore[attr-defined]
            self._q.put((entry, fut))
            self._hurry.set()
            return fut
        self._q.put((entry, _JOURNALED))
        return None

    def sync(self, timeout: float = 30.0) -> None:
        """Return once everything submitted before is committed (readers see their own trail)."""
        fut: Future[int] = Future()
        self._q.put((None, fut))
        self._hurry.set()
        fut.result(timeout)

    def _replay(self, journal: Journal) -> None:
        """Commit what a killed process had journaled but not committed."""
        entries = journal.read()
        if entries:
            ids = [e["entry_id"] for e in entries]
            with self.engine.connect() as conn:
                done = {r[0] for i in range(0, len(ids), 500) for r in conn.execute(
                    select(records.c.entry_id).where(records.c.entry_id.in_(ids[i:i + 500])))}
            missing = [e for e in entries if e["entry_id"] not in done]
            for e in missing:
                self._fill_patient(e)
            if missing:
                self.write(missing)
                log.info("audit: %d journaled record(s) of an interrupted run committed", len(missing))
        os.ftruncate(journal.fd, 0)

    def counted(self, key: FoldKey) -> bool:
        """Count a repeat of `key` into its open window; False when none is open (then fold() it).
        Lets the HTTP middleware skip building a record that would only be counted."""
        with self._fold_lock:
            open_ = self._folds.get(key)
            if open_ is None:
                return False
            open_[1] += 1
            open_[3] = time.monotonic()
            return True

    def fold(self, key: FoldKey, entry: Entry) -> Future[int] | None:
        """Count a repeat of `key` into its open window, or open one (returns the Future to wait on)."""
        now = time.monotonic()
        with self._fold_lock:
            open_ = self._folds.get(key)
            if open_ is not None:
                open_[1] += 1
                open_[3] = now
                return None
            self._folds[key] = [entry, 0, now, now]
        return self.journal_or_submit(entry)

    def close(self, timeout: float = 10.0) -> None:
        """Write the open windows and everything queued, then stop the writer."""
        self._flush_folds(force=True)
        self._q.put(_STOP)
        self._hurry.set()
        self._thread.join(timeout)
        if self.journal is not None and not self._thread.is_alive():
            self.journal.close()

    # -- the writer thread -------------------------------------------------------------------
    def _run(self) -> None:
        stopping = False
        while not stopping:
            items: list[tuple[Entry, Future[int]]] = []
            try:
                first = self._q.get(timeout=self._next_wait())
                if first is _STOP:
                    stopping = True
                else:
                    items.append(first)
                # journaled records may wait: sleep a window, then take what came in one
                # transaction, so a single client's requests neither pay a commit's CPU (GIL)
                # each nor wake this thread each. A commit (SQLite, synced) cost ~2.8 ms of CPU:
                # ~140 us a record in batches of 20, ~20 us in batches of 200; a 1 s window
                # makes a busy server's batches that large. A reader (sync) does not wait for it.
                if items and getattr(items[-1][1], "durable", False) and self._q.qsize() < self.batch:
                    self._hurry.wait(self.window)
                self._hurry.clear()
                while len(items) < self.batch and not stopping:
                    more = self._q.get_nowait()
                    if more is _STOP:
                        stopping = True
                    else:
                        items.append(more)
            except queue.Empty:
                pass
            self._flush_folds()
            while True:  # folded counts queued by _flush_folds
                try:
                    more = self._q.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stopping = True
                else:
                    items.append(more)
            barriers = [fut for entry, fut in items if entry is None]
            items = [item for item in items if item[0] is not None]
            if items:
                self._write_until_done(items)
            for fut in barriers:
                fut.set_result(0)

    def _next_wait(self) -> float | None:
        """How long the writer may block on its queue: until the first open fold window is due to
        close, or (no window open) until something arrives. It polled every 0.5 s before: ~400 us
        of CPU a second, and a GIL hand-over each time, on an idle server. A fold opened while it
        waits journals its first record, which wakes it."""
        with self._fold_lock:
            if not self._folds:
                return None
            due = min(min(t1 + self.fold_idle, t0 + self.fold_max) for _, _, t0, t1 in self._folds.values())
        return max(0.01, due - time.monotonic())

    def _write_until_done(self, items: list[tuple[Entry, Future[int]]]) -> None:
        for entry, _ in items:
            self._fill_patient(entry)
        delay = 0.5
        while True:
            try:
                last = self.write([e for e, _ in items])
                break
            except Exception as exc:  # noqa: BLE001 - a full disk or a locked database: keep and retry
                log.error("audit records not written yet (%s); retrying in %.1f s", type(exc).__name__, delay)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
        first = last - len(items) + 1
        journaled = 0
        for i, (_, fut) in enumerate(items):
            journaled += bool(getattr(fut, "durable", False))
            fut.set_result(first + i)
        if self.journal is not None and journaled:
            self.journal.committed(journaled)

    def _flush_folds(self, force: bool = False) -> None:
        now = time.monotonic()
        with self._fold_lock:
            due = [k for k, (_, _, t0, t1) in self._folds.items()
                   if force or now - t1 >= self.fold_idle or now - t0 >= self.fold_max]
            closed = [self._folds.pop(k) for k in due]
        for entry, extra, _, _ in closed:
            if extra:
                self.submit({**entry, "count": extra, "at_ms": _now_ms(), "entry_id": None})

    def _fill_patient(self, entry: Entry) -> None:
        if entry["patient_id"] or not entry["studies"] or self.patients is None:
            return
        study = entry["studies"].split(" ", 1)[0]
        found = self._cache.get(study)
        if found is None:
            try:
                found = self.patients(study)
            except Exception as exc:  # noqa: BLE001 - the record is written without the patient
                log.warning("audit: patient of a study not looked up (%s)", type(exc).__name__)
                return
            if found is None:
                return  # not stored (yet): not cached, a later store may add it
            self._cache[study] = found
            if len(self._cache) > 20_000:
                self._cache.popitem(last=False)
        entry["patient_id"], entry["issuer"] = found[0], found[1]
        entry["accession"] = entry["accession"] or found[2]

    def write(self, entries: list[Entry]) -> int:
        """Chain and insert entries in one transaction; returns the last sequence number."""
        with self.engine.begin() as conn:
            # the first statement writes: on SQLite it takes the write lock, on PostgreSQL the
            # head row's lock, so processes sharing the store chain one after the other
            conn.execute(update(head).where(head.c.id == 1).values(seq=head.c.seq))
            row = conn.execute(select(head.c.seq, head.c.hash).where(head.c.id == 1)).first()
            if row is None:
                start = conn.execute(select(anchors.c.through_seq, anchors.c.through_hash)
                                     .order_by(anchors.c.through_seq.desc()).limit(1)).first()
                seq, prev = (start[0], start[1]) if start else (0, chain.GENESIS)
            else:
                seq, prev = row
            # each record as the tuple of its columns, hashed as it is stored: no dict built per
            # record (copying, clipping and reading back a 23-key dict cost ~5 us of the writer's
            # ~19 us a record, its GIL taken from the event loop)
            rows = []
            alg, key = chain.ALG, self.key
            for entry in entries:
                seq += 1
                hashed = (seq, *_fitted(_ENTRY(entry)), alg, prev)
                prev = chain.mac(key, chain.content_of(hashed), alg)
                rows.append((*hashed, prev))
            _insert(conn, rows)
            values = {"seq": seq, "hash": prev, "mac": chain.head_mac(self.key, seq, prev)}
            if row is None:
                conn.execute(insert(head).values(id=1, **values))
            else:
                conn.execute(update(head).where(head.c.id == 1).values(**values))
        return seq


_COLUMNS = tuple(c.name for c in records.c)
# a record's columns: seq, what the entry brings (_FROM_ENTRY), alg, prev_hash (chain.FIELDS, the
# hashed ones, in their order), then hash
_FROM_ENTRY = FIELDS[1:-2]
assert FIELDS[0] == "seq" and FIELDS[-2:] == ("alg", "prev_hash") and _COLUMNS == (*FIELDS, "hash")
_ENTRY = operator.itemgetter(*_FROM_ENTRY)
_SQLITE_INSERT = f"INSERT INTO {records.name} ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"


def _insert(conn: Any, rows: list[tuple[Any, ...]]) -> None:
    """One batch of records: on SQLite straight to the driver's executemany (SQLAlchemy's
    per-row parameter processing was a third of the writer's CPU per record)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(_SQLITE_INSERT, rows)
    else:
        conn.execute(insert(records), [dict(zip(_COLUMNS, row)) for row in rows])


_PREFIX = os.urandom(6).hex()  # this process; a counter after it (os.urandom costs ~10 us a call here)
_COUNTER = itertools.count(1)


def new_id() -> str:
    """A unique id (32 characters at most): random per process, counted within it."""
    return f"{_PREFIX}{next(_COUNTER):x}"


def _now_ms() -> int:
    return int(time.time() * 1000)


# PostgreSQL refuses a string longer than its column (SQLite keeps it): the writer would retry
# that batch for ever and every audited request would wait. Clipped before hashing, so the
# chain covers what is stored. (alg, prev_hash and hash are the writer's own, always within.)
_LIMITED = tuple((i, most) for i, name in enumerate(_FROM_ENTRY)
                 if (most := getattr(records.c[name].type, "length", None)))
_LIMITED_GET = operator.itemgetter(*(i for i, _ in _LIMITED))
_LIMITED_MOST = tuple(most for _, most in _LIMITED)


def _fitted(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """An entry's values (in _FROM_ENTRY's order), each string within its column's length."""
    try:  # the common case, every value within its limit, checked in C (~1 us, not ~4)
        if not any(map(operator.gt, map(len, _LIMITED_GET(values)), _LIMITED_MOST)):
            return values
    except TypeError:  # a value not a string: the loop below decides
        pass
    out = list(values)
    for i, most in _LIMITED:
        value = out[i]
        if value.__class__ is str and len(value) > most:
            out[i] = value[:most]
    return tuple(out)


def _complete(entry: Entry) -> Entry:
    # every HTTP record passes here on the event loop: the common case (strings, no None) costs
    # ~1 us, not the ~5 us of rebuilding the dict
    out = {**DEFAULTS, **entry}
    if not out.get("at_ms"):
        out["at_ms"] = _now_ms()
    if not out.get("entry_id"):
        out["entry_id"] = new_id()
    if out["count"].__class__ is not int:
        out["count"] = int(out["count"])
    for k in ("studies", "series"):
        if out[k].__class__ is not str:
            out[k] = " ".join(v for v in out[k] if v)
    if out["detail"].__class__ is not str:
        out["detail"] = orjson.dumps(out["detail"]).decode()
    if None in out.values():
        return {k: ("" if v is None else v) for k, v in out.items()}
    return out
