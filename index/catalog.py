"""An in-memory copy of the study rows: study-level searches without a DuckDB query.

DuckDB parses, plans and runs even a one-row lookup in 0.5-1 ms (1.1 ms for a sorted page of
a 400-study index, measured here), most of a QIDO-RS or C-FIND answer's time. A study search
is answered here instead: a dict lookup (StudyInstanceUID, PatientID, AccessionNumber) or a
scan of Python tuples kept in the stable order. The SQL of sql.py stays the definition: every
predicate below mirrors one term of `match_clause` (same normalized columns, LIKE patterns
run as regular expressions), tests compare both paths on random corpora, and a match this
module does not mirror makes `search` return None, which sends the query to SQL.

The index keeps it exact: it is loaded under the writer lock and every write transaction
reloads the studies it touched before the writer lets go (index/db.py). Above MAX_STUDIES it
is not kept (its memory grows with the archive; DuckDB scans scale better).
"""
from __future__ import annotations

import bisect
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import duckdb
import orjson

from index.extract import SEP
from index.keys import KEYS, Key
from index.parse import fuzzy_tokens, high_bound, like_pattern, low_bound, pn_norm
from index.query import Match, Query
from index.sql import fuzzy_literal

COLS = ("uid", "patient_id", "issuer", "patient_name", "patient_name_fz", "birth_date", "sex",
        "study_date", "study_time", "accession", "referring", "referring_fz", "study_id",
        "study_description", "modalities", "institutions", "sop_classes", "n_series",
        "n_instances", "rep_sop", "attrs")
POS = {c: i for i, c in enumerate(COLS)}
KEYS_AT, ORDER_AT = len(COLS), len(COLS) + 1  # a row is COLS, the rep instance's tags, its sort key
LOAD = (f"SELECT {', '.join('st.' + c for c in COLS)}, i.json FROM studies st "
        f"LEFT JOIN instances i ON i.sop = st.rep_sop")
MAX_STUDIES = 200_000
INDEXED = ("uid", "patient_id", "accession")  # exact single / list matches narrow to candidates
Row = tuple[Any, ...]
Pred = Callable[[Row], bool]
_LAST = chr(0x10FFFF)


def _desc(value: str) -> str:
    """A string whose ascending order is value's descending order (longer after its prefix)."""
    return "".join(chr(0x10FFFE - ord(c)) for c in value) + _LAST


def sort_key(date: str | None, time: str | None, uid: str) -> tuple[Any, ...]:
    """sql.ORDER["STUDY"]: study_date DESC NULLS LAST, study_time DESC NULLS LAST, uid."""
    return (date is None, _desc(date or ""), time is None, _desc(time or ""), uid)


class StudyCatalog:
    """Study rows in memory, in the stable study order, with lookups by the exact keys."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, Row] = {}
        self._order: list[tuple[tuple[Any, ...], Row]] = []
        self._by: dict[str, dict[str, set[str]]] = {c: {} for c in INDEXED if c != "uid"}
        self._tagsets: dict[frozenset[str], frozenset[str]] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def reload(self, cur: duckdb.DuckDBPyConnection, uids: Iterable[str] | None = None) -> None:
        """Read all study rows (uids None) or these studies again; a missing one is removed."""
        if uids is None:
            rows = cur.execute(LOAD).fetchall()
            gone: set[str] = set(self._rows)
        else:
            ul = sorted(uids)
            if not ul:
                return
            rows = cur.execute(f"{LOAD} WHERE st.uid IN ({', '.join('?' * len(ul))})", ul).fetchall()
            gone = set(ul)
        fresh = [self._row(r) for r in rows]
        gone -= {r[0] for r in fresh}
        with self._lock:
            for uid in gone:
                self._drop(uid)
            for row in fresh:
                self._drop(row[0])
                self._add(row)

    def _row(self, r: Sequence[Any]) -> Row:
        keys = frozenset(orjson.loads(r[-1])) if r[-1] is not None else frozenset()
        keys = self._tagsets.setdefault(keys, keys)  # studies of one modality share one set
        p = POS
        return (*r[:-1], keys, sort_key(r[p["study_date"]], r[p["study_time"]], r[0]))

    def _add(self, row: Row) -> None:
        self._rows[row[0]] = row
        bisect.insort(self._order, (row[ORDER_AT], row), key=lambda e: e[0])
        for col, by in self._by.items():
            by.setdefault(row[POS[col]], set()).add(row[0])

    def _drop(self, uid: str) -> None:
        row = self._rows.pop(uid, None)
        if row is None:
            return
        i = bisect.bisect_left(self._order, row[ORDER_AT], key=lambda e: e[0])
        del self._order[i]
        for col, by in self._by.items():
            owners = by.get(row[POS[col]])
            if owners is not None:
                owners.discard(uid)
                if not owners:
                    del by[row[POS[col]]]

    def search(self, query: Query) -> list[Row] | None:
        """The matching rows in order, limited; None when a match is not mirrored here."""
        if query.level != "STUDY":
            return None
        keys = KEYS["STUDY"]
        preds: list[Pred] = []
        narrow: list[tuple[str, tuple[str, ...]]] = []
        for m in query.matches:
            key = keys.get(m.tag)
            if key is None or m.kind == "universal":
                continue
            pred = predicate(key, m, query.fuzzy)
            if pred is None:
                return None
            preds.append(pred)
            if key.column in INDEXED and key.kind in ("str", "uid") and m.kind in ("single", "list"):
                narrow.append((key.column, m.values if m.kind == "list" else m.values[:1]))
        start = max(0, query.offset)
        stop = None if query.limit is None else start + max(0, query.limit)
        if stop is not None and stop <= start:
            return []
        with self._lock:
            if narrow:
                col, values = min(narrow, key=lambda n: len(n[1]))
                found = [r for r in self._candidates(col, values) if all(p(r) for p in preds)]
                found.sort(key=lambda r: r[ORDER_AT])
                return found[start:stop]
            if not preds:
                return [r for _, r in self._order[start:stop]]
            out: list[Row] = []
            for _, r in self._order:
                if all(p(r) for p in preds):
                    out.append(r)
                    if stop is not None and len(out) >= stop:
                        break
            return out[start:]

    def _candidates(self, col: str, values: Sequence[str]) -> list[Row]:
        if col == "uid":
            return [r for v in dict.fromkeys(values) if (r := self._rows.get(v)) is not None]
        by = self._by[col]
        uids = set().union(*(by.get(v, ()) for v in values))
        return [self._rows[u] for u in uids]


def answer_row(row: Row) -> Row:
    """The row as sql.SELECT["STUDY"] gives it (what results.Shaper reads)."""
    p = POS
    return (row[p["attrs"]], row[p["n_series"]], row[p["n_instances"]], row[p["modalities"]],
            row[p["sop_classes"]], row[p["rep_sop"]])


def rep_tags(row: Row) -> frozenset[str]:
    """The tags of the study's representative instance (no lookup needed for others)."""
    return row[KEYS_AT]


def like_regex(pattern: str) -> re.Pattern[str]:
    """A LIKE pattern escaped with backslash (sql.ESC) as a regular expression for fullmatch."""
    out = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            out.append(re.escape(next(chars, "\\")))
        else:
            out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def predicate(key: Key, m: Match, fuzzy: bool = False) -> Pred | None:
    """sql.match_clause as a Python test of a row; None when not mirrored."""
    if key.column not in POS or m.kind not in ("single", "list", "wildcard", "range") or not m.values:
        return None
    i = POS[key.column]
    if key.kind == "pn":
        return _pn(i, POS.get(key.column + "_fz"), m, fuzzy)
    if key.kind == "list":
        return _any(i, m)
    if key.kind in ("da", "tm", "dt"):
        return _range(i, key.kind.upper(), m)
    if key.kind not in ("str", "uid"):
        return None
    if m.kind == "list":
        values = frozenset(m.values)
        return lambda r: r[i] in values
    if m.kind == "wildcard":
        rx = like_regex(like_pattern(m.values[0]))
        return lambda r: r[i] is not None and rx.fullmatch(r[i]) is not None
    value = m.values[0]
    return lambda r: r[i] == value


def _range(i: int, vr: str, m: Match) -> Pred | None:
    """sql._range: normalized fixed-width strings; NULL never matches."""
    if m.kind == "range":
        lo, hi = m.values
    elif vr == "DA":
        value = low_bound(vr, m.values[0])
        return lambda r: r[i] == value
    else:
        lo = hi = m.values[0]
    if not lo and not hi:
        return None
    low = low_bound(vr, lo) if lo else None
    high = high_bound(vr, hi) if hi else None
    return lambda r: (r[i] is not None and (low is None or r[i] >= low)
                      and (high is None or r[i] <= high))


def _any(i: int, m: Match) -> Pred:
    """sql._any: true when any value of the list column matches."""
    if m.kind == "list":
        values = frozenset(m.values)
        return lambda r: r[i] is not None and not values.isdisjoint(r[i])
    if m.kind == "wildcard":
        rx = like_regex(like_pattern(m.values[0]))
        return lambda r: r[i] is not None and any(x is not None and rx.fullmatch(x) for x in r[i])
    value = m.values[0]
    return lambda r: r[i] is not None and value in r[i]


def _pn(i: int, fz: int | None, m: Match, fuzzy: bool) -> Pred | None:
    """sql._pn: any group, or the groups '=' names; fuzzy by component prefixes."""
    value = m.values[0]
    if fuzzy and m.kind == "single":
        if fz is None:
            return None
        needles = [SEP + fuzzy_literal(t) for t in fuzzy_tokens(value)]
        if not needles:
            return lambda r: True
        return lambda r: r[fz] is not None and any(
            g is not None and all(n in g for n in needles) for g in r[fz])
    conv = _pn_like if m.kind == "wildcard" else _pn_equal
    if "=" not in value:
        test = conv(value)
        return lambda r: r[i] is not None and any(test(g) for g in r[i])
    terms = [(n, conv(part)) for n, part in enumerate(value.split("=")[:3])
             if part.strip(" ^") and part.strip() != "*"]
    return lambda r: all(t(r[i][n] if r[i] is not None and n < len(r[i]) else None) for n, t in terms)


def _pn_like(part: str) -> Callable[[str | None], bool]:
    """One group against `g LIKE like_pattern(part.lower())`."""
    rx = like_regex(like_pattern(part.lower()))
    return lambda g: g is not None and rx.fullmatch(g) is not None


def _pn_equal(part: str) -> Callable[[str | None], bool]:
    """One group against `g = pn_norm(part)`."""
    norm = pn_norm(part)
    return lambda g: g == norm
