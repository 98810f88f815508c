"""An in-memory copy of the study and series rows: searches without a DuckDB query.

DuckDB parses, plans and runs even a one-row lookup in 0.5-1 ms (1.1 ms for a sorted page of
a 400-study index, 2-3 ms with the joins of a series or instance search, measured here), most
of a QIDO-RS or C-FIND answer's time. Study and series searches are answered here instead: a
dict lookup (StudyInstanceUID, PatientID, AccessionNumber, SeriesInstanceUID, the series of a
study) or a scan of Python tuples kept in the stable order. The SQL of sql.py stays the
definition: predicates.py mirrors it term by term, tests compare both paths on random
corpora, and a match that is not mirrored makes `search` return None, which sends the query
to SQL. Instance searches still read DuckDB, for the instances alone (no joins): the series
and study columns of their answers come from here.

The index keeps it exact: every write transaction reloads the studies and series it touched
before the writer lets go, and those touched while the catalog loads are read again at the
end of the load (index/db.py). Above MAX_ROWS it is not kept (its memory grows with the
archive; DuckDB scans scale better).
"""
from __future__ import annotations

import bisect
import functools
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import islice
from operator import itemgetter
from typing import Any

import duckdb
import orjson

from index.keys import KEYS, Key
from index.parse import high_bound, low_bound
from index.predicates import Pred, Row, predicate
from index.query import Match, Query, StudyScope
from index.results import Json, Sources, series_own, study_own
from index.schema import TABLES, L
from index.write import Refreshed

MAX_ROWS = 200_000  # studies + series (~2.5 KB each; loading ~30 us each)
# rows whose attributes are kept parsed (~5 KiB each: a bound of ~100 MiB, dropped when the
# server goes idle, Index.release_memory; issue 9 part 5)
MAX_PARSED = 20_000
_LAST = chr(0x10FFFF)


def _desc(value: str) -> str:
    """A string whose ascending order is value's descending order (longer after its prefix)."""
    return "".join(chr(0x10FFFE - ord(c)) for c in value) + _LAST


@functools.lru_cache(maxsize=65_536)
def _desc_kept(value: str) -> str:
    """_desc of a row's date or time, one object per distinct value: ~100 bytes each (4 bytes a
    character), and dates and times repeat from row to row (issue 9 part 5)."""
    return _desc(value)


def sort_key(date: str | None, time: str | None, uid: str) -> tuple[Any, ...]:
    """sql.ORDER["STUDY"]: study_date DESC NULLS LAST, study_time DESC NULLS LAST, uid."""
    return (date is None, _desc_kept(date or ""), time is None, _desc_kept(time or ""), uid)


@dataclass(frozen=True)
class Table:
    """Which columns of a table are kept, which have lookups, and its stable order (sql.ORDER)."""

    name: str
    alias: str
    cols: tuple[str, ...]
    indexed: tuple[str, ...]  # exact lookups
    prefixed: tuple[str, ...]  # list columns with a sorted index of their values (prefix lookups)
    order: Callable[[Sequence[Any]], tuple[Any, ...]]
    pos: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pos", {c: i for i, c in enumerate(self.cols)})


STUDY_COLS = ("uid", "patient_id", "issuer", "patient_name", "patient_name_fz", "birth_date", "sex",
              "study_date", "study_time", "accession", "referring", "referring_fz", "study_id",
              "study_description", "modalities", "institutions", "sop_classes", "n_series",
              "n_instances", "hospital", "department", "rep_sop", "attrs")
SERIES_COLS = ("uid", "study", "modality", "series_number", "series_description", "body_part",
               "institution", "pps_date", "pps_time", "sps_ids", "req_proc_ids", "series_date",
               "series_time", "sop_classes", "n_instances", "rep_sop", "attrs")
_DATE, _TIME, _NUMBER = STUDY_COLS.index("study_date"), STUDY_COLS.index("study_time"), \
    SERIES_COLS.index("series_number")
STUDIES = Table("studies", "st", STUDY_COLS, ("patient_id", "accession"), ("patient_name",),
                lambda r: sort_key(r[_DATE], r[_TIME], r[0]))
SERIES = Table("series", "se", SERIES_COLS, ("study",), (),  # series_number NULLS LAST, uid
               lambda r: (r[_NUMBER] is None, r[_NUMBER] or 0, r[0]))
REP_AT, ATTRS_AT = -4, -3  # rep_sop and attrs are the last columns of both tables
Narrow = tuple[str, str, Any]  # ("in", column, values) | ("prefix", column, text) | ("dates", "", (lo, hi))
TAGS_AT = -2  # a kept row is its columns, the tags of its representative instance, its order key
# A study row's columns the computed attributes come from (results.study_computed's arguments)
# A kept row's columns from a row as write.refresh inserts it (schema.TABLES order)
_FROM_TABLE = {t.name: itemgetter(*([n for n, _ in TABLES[t.name]].index(c) for c in t.cols))
               for t in (STUDIES, SERIES)}
# Columns whose values repeat from row to row (codes, names of a few institutions and referring
# physicians, dates, a series' study UID): each distinct value is kept once (-9 MiB of the 34,000
# rows after the benchmark's load; issue 9 part 5). Unique values (UIDs, patient names) are not
# looked up: a table of them would cost more than it saves.
_SHARED = {t.name: tuple(t.pos[c] for c in t.cols if c in {
    "issuer", "sex", "study_date", "referring", "referring_fz", "modalities", "institutions",
    "sop_classes", "hospital", "department", "study_description", "study", "modality", "body_part",
    "institution", "series_description", "series_date"}) for t in (STUDIES, SERIES)}
SHARED_MAX = 100_000  # distinct values looked up; past it the table starts again
_LIST = object()  # marks a list's key in the table of shared values
_EMPTY: list[Any] = []  # every empty list column of every row (never modified)
_LISTS = {t.name: tuple(t.pos[n] for n, kind in TABLES[t.name] if kind == L and n in t.pos)
          for t in (STUDIES, SERIES)}
_STUDY_COMPUTED = itemgetter(*(STUDIES.pos[c] for c in ("n_series", "n_instances", "modalities", "sop_classes")))


class Rows:
    """One table's rows in memory, in its stable order, with lookups by uid and indexed columns."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.by_uid: dict[str, Row] = {}
        self.ordered: list[tuple[tuple[Any, ...], Row]] = []
        self.by: dict[str, dict[Any, set[str]]] = {c: {} for c in table.indexed}
        self.values: dict[str, list[tuple[str, str]]] = {c: [] for c in table.prefixed}  # sorted (value, uid)

    def put(self, fresh: list[Row], gone: Iterable[str]) -> None:
        if not self.by_uid:  # loading: sort once
            self._load(fresh)
            return
        for uid in gone:
            self._drop(uid)
        for row in fresh:
            self._drop(row[0])
            self.by_uid[row[0]] = row
            bisect.insort(self.ordered, (row[-1], row), key=lambda e: e[0])
            for col, by in self.by.items():
                by.setdefault(row[self.table.pos[col]], set()).add(row[0])
            for col, values in self.values.items():
                for v in _distinct(row[self.table.pos[col]]):
                    bisect.insort(values, (v, row[0]))

    def _load(self, rows: list[Row]) -> None:
        self.by_uid = {r[0]: r for r in rows}
        self.ordered = sorted(((r[-1], r) for r in self.by_uid.values()), key=lambda e: e[0])
        for col, by in self.by.items():
            i = self.table.pos[col]
            for r in self.by_uid.values():
                by.setdefault(r[i], set()).add(r[0])
        for col in self.values:
            i = self.table.pos[col]
            self.values[col] = sorted((v, r[0]) for r in self.by_uid.values() for v in _distinct(r[i]))

    def _drop(self, uid: str) -> None:
        row = self.by_uid.pop(uid, None)
        if row is None:
            return
        del self.ordered[bisect.bisect_left(self.ordered, row[-1], key=lambda e: e[0])]
        for col, by in self.by.items():
            owners = by.get(row[self.table.pos[col]], set())
            owners.discard(uid)
            if not owners:
                by.pop(row[self.table.pos[col]], None)
        for col, values in self.values.items():
            for v in _distinct(row[self.table.pos[col]]):
                i = bisect.bisect_left(values, (v, uid))
                if i < len(values) and values[i] == (v, uid):
                    del values[i]

    def candidates(self, narrow: Narrow) -> Iterable[Row]:
        """Rows that may match, in the stable order: those whose column is one of the values
        ("in"), has a value starting with a prefix ("prefix"), or whose study_date is within
        a range ("dates": a slice of the order, dates descending)."""
        how, col, arg = narrow
        if how == "dates":
            lo, hi = arg
            at = lambda e: e[0][:2]
            first = bisect.bisect_left(self.ordered, (False, _desc(hi)), key=at) if hi else 0
            last = (bisect.bisect_right(self.ordered, (False, _desc(lo)), key=at) if lo
                    else bisect.bisect_left(self.ordered, (True,), key=lambda e: e[0][:1]))
            return (r for _, r in self.ordered[first:last])
        if how == "prefix":
            values = self.values[col]
            uids = set()
            for v, uid in values[bisect.bisect_left(values, (arg,)):]:
                if not v.startswith(arg):
                    break
                uids.add(uid)
            found = [self.by_uid[u] for u in uids]
        elif col == "uid":
            found = [r for v in dict.fromkeys(arg) if (r := self.by_uid.get(v)) is not None]
        else:
            by = self.by[col]
            found = [self.by_uid[u] for u in set().union(*(by.get(v, ()) for v in arg))]
        found.sort(key=lambda r: r[-1])
        return found


def _distinct(values: list[str | None] | None) -> set[str]:
    return {v for v in values or () if v}


@dataclass
class Plan:
    """A query's predicates per table alias, and the lookup that narrows the scan."""

    preds: dict[str, list[Pred]]
    narrow: Narrow | None


class Catalog:
    """The study and series rows in memory; thread-safe (one lock, held briefly)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.studies = Rows(STUDIES)
        self.series = Rows(SERIES)
        self._tagsets: dict[frozenset[str], frozenset[str]] = {}
        self._shared: dict[str, str] = {}  # one object per distinct value of the _SHARED columns
        self._lists: dict[tuple[Any, ...], list[Any]] = {}  # likewise for their list values
        self._owns: dict[int, tuple[Row, Json]] = {}  # id(row) -> (row, its attributes)

    def __len__(self) -> int:
        return len(self.studies.by_uid) + len(self.series.by_uid)

    def reload(self, cur: duckdb.DuckDBPyConnection, studies: Iterable[str] | None = None,
               series: Iterable[str] | None = None) -> None:
        """Read every row (None) or these studies and series again; a missing one is removed."""
        loaded = [self._read(cur, t, uids) for t, uids in ((STUDIES, studies), (SERIES, series))]
        with self._lock:
            for rows, (fresh, gone) in zip((self.studies, self.series), loaded):
                rows.put(fresh, gone)

    def _read(self, cur: duckdb.DuckDBPyConnection, table: Table,
              uids: Iterable[str] | None) -> tuple[list[Row], set[str]]:
        sql = (f"SELECT {', '.join('t.' + c for c in table.cols)}, i.json FROM {table.name} t "
               f"LEFT JOIN instances i ON i.sop = t.rep_sop")
        if uids is None:
            gone = set((self.studies if table is STUDIES else self.series).by_uid)
            records = cur.execute(sql).fetchall()
        else:
            gone = set(uids)
            if not gone:
                return [], gone
            ul = sorted(gone)
            records = cur.execute(f"{sql} WHERE t.uid IN ({', '.join('?' * len(ul))})", ul).fetchall()
        fresh = [self._kept(table, r[:-1], frozenset(orjson.loads(r[-1])) if r[-1] is not None
                            else frozenset()) for r in records]
        return fresh, gone - {r[0] for r in fresh}

    def apply(self, refreshed: Refreshed) -> None:
        """Bring the studies and series a write touched up to date from the rows it wrote."""
        loaded = []
        for table, rows, uids in ((STUDIES, refreshed.study_rows, refreshed.studies),
                                  (SERIES, refreshed.series_rows, refreshed.series)):
            pick = _FROM_TABLE[table.name]
            fresh = [self._kept(table, cols, refreshed.tags.get(cols[table.pos["rep_sop"]]))
                     for cols in (pick(r) for r in rows)]
            loaded.append((fresh, uids - {r[0] for r in fresh}))
        with self._lock:
            for kept, (fresh, gone) in zip((self.studies, self.series), loaded):
                kept.put(fresh, gone)

    def _kept(self, table: Table, cols: Sequence[Any], tags: frozenset[str] | None) -> Row:
        """A kept row: the table's columns, its representative's tags (None: unknown), its order."""
        if tags is not None:
            tags = self._tagsets.setdefault(tags, tags)  # series of one modality share one set
        if isinstance(cols[-1], bytes):  # attrs, as the write made them
            # orjson.dumps answers in the buffer it wrote to: a 400-byte value holds 4 KiB (60 %
            # of the server's Python heap after 20,000 small instances, issue 9 part 5); a copy
            # holds its length
            cols = (*cols[:-1], memoryview(cols[-1]).tobytes())
        cols = self._share(table, cols)
        return (*cols, tags, table.order(cols))

    def _share(self, table: Table, cols: Sequence[Any]) -> list[Any]:
        """The row's columns, repeated values replaced by the object kept for them."""
        shared, lists = self._shared, self._lists
        if len(shared) > SHARED_MAX or len(lists) > SHARED_MAX:
            shared.clear()
            lists.clear()
        out = list(cols)
        for i in _SHARED[table.name]:
            v = out[i]
            if isinstance(v, str):
                out[i] = shared.setdefault(v, v)
            elif isinstance(v, list):  # one list per distinct value (88 bytes each; never modified)
                key = (_LIST, *v)
                kept = lists.get(key)
                if kept is None:
                    kept = lists[key] = [shared.setdefault(x, x) if isinstance(x, str) else x for x in v]
                out[i] = kept
        for i in _LISTS[table.name]:  # empty lists (no procedure IDs...): one object
            if out[i] == []:
                out[i] = _EMPTY
        return out

    def plan(self, query: Query, aliases: tuple[str, ...]) -> Plan | None:
        """Predicates of the query's matches on these tables; None when one is not mirrored."""
        tables = {t.alias: t for t in (STUDIES, SERIES) if t.alias in aliases}
        preds: dict[str, list[Pred]] = {a: [] for a in tables}
        narrow: list[tuple[int, Narrow]] = []  # (preference, lookup): the lowest is used
        first = aliases[0]
        for m in query.matches:
            key = KEYS[query.level].get(m.tag)
            if key is None or m.kind == "universal":
                continue
            table = tables.get(key.alias)
            pred = predicate(key, m, table.pos, query.fuzzy) if table is not None else None
            if pred is None or table is None:
                return None
            preds[key.alias].append(pred)
            if key.alias == first:
                narrow.extend(_lookups(key, m, table))
        return Plan(preds, min(narrow, key=lambda n: n[0])[1] if narrow else None)

    def search(self, query: Query) -> list[tuple[Sources, frozenset[str] | None]] | None:
        """Answers' sources (results.Shaper.sources) with their representative's tags, in
        order, limited; None for a level or match not kept here."""
        if query.level not in ("STUDY", "SERIES"):
            return None
        study_level = query.level == "STUDY"
        plan = self.plan(query, ("st",) if study_level else ("se", "st"))
        if plan is None:
            return None
        start = max(0, query.offset)
        stop = None if query.limit is None else start + max(0, query.limit)
        if stop is not None and stop <= start:
            return []
        own, upper = (plan.preds["st"], []) if study_level else (plan.preds["se"], plan.preds["st"])
        rows = self.studies if study_level else self.series
        matched: list[tuple[Row, Row | None]] = []
        with self._lock:
            scope = None if query.scope.everything else self._in_scope(query.scope, study_level)
            if study_level and not own and plan.narrow is None:  # a worklist page: no scan
                matched = ([(r, None) for _, r in rows.ordered[start:stop]] if scope is None else
                           list(islice(((r, None) for _, r in rows.ordered if scope(r, None)), start, stop)))
            else:
                scan: Iterable[Row] = (rows.candidates(plan.narrow) if plan.narrow is not None
                                       else (r for _, r in rows.ordered))
                for r in scan:
                    if not all(p(r) for p in own):
                        continue
                    st = None if study_level else self.studies.by_uid.get(r[SERIES.pos["study"]])
                    if not study_level and (st is None or not all(p(st) for p in upper)):
                        continue  # an inner join
                    if scope is not None and not scope(r, st):
                        continue
                    matched.append((r, st))
                    if stop is not None and len(matched) >= stop:
                        break
                matched = matched[start:]
            return [self._answer(r, st) for r, st in matched]

    def in_scope(self, scope: StudyScope, rows: list[Row]) -> list[Row]:
        """sql.scope_clause on sql.IMAGE_ALONE rows (their series and study in columns 1 and 2)."""
        test = self._in_scope(scope, False)
        with self._lock:
            return [r for r in rows if test((r[1],), self.studies.by_uid.get(r[2]))]

    def _in_scope(self, scope: StudyScope, study_level: bool) -> Callable[[Row, Row | None], bool]:
        """sql.scope_clause as a test of (row, its study row): a study row alone (None), or a
        series row with its study's; called under the lock."""
        uid, hosp, dept = (STUDIES.pos[c] for c in ("uid", "hospital", "department"))
        hospitals = scope.hospitals
        if not scope.studies and not scope.series and scope.departments is None:  # the usual one
            if study_level:
                return lambda r, _: r[hosp] in hospitals
            return lambda r, st: st is not None and st[hosp] in hospitals
        studies = set(scope.studies)
        if study_level:  # a series-bound grant shows its study in study searches
            studies.update(r[SERIES.pos["study"]] for s in scope.series
                           if (r := self.series.by_uid.get(s)) is not None)
            return lambda r, _: r[uid] in studies or scope.owns(r[hosp], r[dept])
        return lambda r, st: st is not None and (
            r[0] in scope.series or st[uid] in studies or scope.owns(st[hosp], st[dept]))

    def _answer(self, r: Row, st: Row | None) -> tuple[Sources, frozenset[str] | None]:
        """A study row's answer (st None), or a series row's with its study's."""
        if st is None:
            return (self._own(r, STUDIES), [], r[REP_AT]), r[TAGS_AT]
        return (self._own(r, SERIES), [self._own(st, STUDIES)], r[REP_AT]), r[TAGS_AT]

    def _own(self, r: Row, table: Table) -> Json:
        """The row's attributes with its computed ones (results.study_own / series_own), built
        once per row version (~20 us per answer saved); answers share them, so they are never
        modified (results.Shaper copies what it takes)."""
        hit = self._owns.get(id(r))
        if hit is not None and hit[0] is r:
            return hit[1]
        if len(self._owns) >= MAX_PARSED:
            self._owns.clear()
        attrs = orjson.loads(r[ATTRS_AT])
        own = (study_own(attrs, *_STUDY_COMPUTED(r)) if table is STUDIES
               else series_own(attrs, r[SERIES.pos["n_instances"]]))
        self._owns[id(r)] = (r, own)
        return own

    def forget_parsed(self) -> None:
        """Drop the parsed attributes (_own): an idle server does not keep them; the next answer
        of each row parses them again (~20 us)."""
        self._owns = {}

    def upper(self, series: str, study: str) -> Row | None:
        """What an instance answer takes from its series and study (sql.SELECT["IMAGE"] after i.json)."""
        with self._lock:
            se, st = self.series.by_uid.get(series), self.studies.by_uid.get(study)
        if se is None or st is None:
            return None
        return (se[SERIES.pos["n_instances"]], *_STUDY_COMPUTED(st))


def _lookups(key: Key, m: Match, table: Table) -> list[tuple[int, Narrow]]:
    """The lookups that find a superset of what a match accepts (its predicate still runs)."""
    if key.kind in ("str", "uid") and m.kind in ("single", "list") and (
            key.column == "uid" or key.column in table.indexed):
        return [(len(m.values), ("in", key.column, m.values if m.kind == "list" else m.values[:1]))]
    if key.column in table.prefixed and m.kind == "wildcard" and "=" not in m.values[0]:
        # sql._pn: some group LIKE like_pattern(value.lower()): it starts with the literal part
        value = m.values[0].lower()
        prefix = value[:min((i for i in (value.find("*"), value.find("?")) if i >= 0), default=len(value))]
        return [(1000, ("prefix", key.column, prefix))] if prefix else []
    if key.column == "study_date" and table is STUDIES and m.kind in ("single", "range"):
        lo, hi = m.values if m.kind == "range" else (m.values[0], m.values[0])
        return [(2000, ("dates", "", (low_bound("DA", lo) if lo else "", high_bound("DA", hi) if hi else "")))]
    return []
