"""Visibility inside the query (issue 11): searches under a StudyScope agree with a plain model,
paging included; the owner lookup; an index file of the previous version migrates."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from index import Index, Origin, Query, parse_match
from index.query import StudyScope
from index.schema import INDEXES

from .conftest import make

HOSPITALS = ["default", "h1", "h2"]
DEPARTMENTS = [None, "d1", "d2"]
DATES = [None, "20230101", "20240105", "20241231"]


@dataclass(frozen=True)
class Study:
    uid: str
    pid: str
    hospital: str
    department: str | None
    date: str | None
    series: tuple[tuple[str, str, int], ...]  # (uid, modality, instances)


@hs.composite
def corpora(draw: Any) -> list[Study]:
    out = []
    for n in range(draw(hs.integers(0, 8))):
        series = tuple((f"2.{n}.{k}", draw(hs.sampled_from(["CT", "MR"]))[:2], draw(hs.integers(1, 3)))
                       for k in range(draw(hs.integers(1, 3))))
        out.append(Study(f"2.{n}", draw(hs.sampled_from(["P1", "P2", "P3"])),
                         draw(hs.sampled_from(HOSPITALS)), draw(hs.sampled_from(DEPARTMENTS)),
                         draw(hs.sampled_from(DATES)), series))
    return out


SCOPES = hs.builds(
    StudyScope, everything=hs.booleans().map(lambda b: b and False),
    hospitals=hs.frozensets(hs.sampled_from(HOSPITALS), max_size=2),
    departments=hs.one_of(hs.none(), hs.frozensets(hs.sampled_from(["d1", "d2"]), max_size=1)),
    studies=hs.frozensets(hs.sampled_from([f"2.{n}" for n in range(9)]), max_size=2),
    series=hs.frozensets(hs.sampled_from([f"2.{n}.{k}" for n in range(9) for k in range(3)]), max_size=2))


def records(corpus: list[Study]) -> list[Any]:
    out = []
    for st in corpus:
        for number, (se, modality, count) in enumerate(st.series, 1):
            for i in range(count):
                rec = make(st.uid, se, f"{se}.{i}", pid=st.pid, modality=modality, study_date=st.date,
                           study_time=None, series_number=number, instance_number=i + 1)
                rec.origin = Origin("stow", "AE", "", st.hospital, st.department)
                out.append(rec)
    return out


def study_visible(st: Study, scope: StudyScope) -> bool:
    return (st.uid in scope.studies or any(se in scope.series for se, _, _ in st.series)
            or (st.hospital in scope.hospitals and (scope.departments is None or st.department in scope.departments)))


def series_visible(st: Study, se: str, scope: StudyScope) -> bool:
    return (st.uid in scope.studies or se in scope.series
            or (st.hospital in scope.hospitals and (scope.departments is None or st.department in scope.departments)))


def ordered(studies: list[Study]) -> list[Study]:
    """sql.ORDER["STUDY"]: study_date DESC NULLS LAST, then uid (no study times here)."""
    by_uid = sorted(studies, key=lambda s: s.uid)
    return sorted(by_uid, key=lambda s: (s.date is not None, s.date or ""), reverse=True)


def uids(answers: list[dict[str, Any]], tag: str) -> list[str]:
    return [a[tag]["Value"][0] for a in answers]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("scope")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(corpus=corpora(), scope=SCOPES, limit=hs.one_of(hs.none(), hs.integers(0, 4)),
       offset=hs.integers(0, 4), modality=hs.sampled_from([None, "CT", "MR"]))
def test_scoped_searches_match_the_model(shared: Path, corpus: list[Study], scope: StudyScope,
                                         limit: int | None, offset: int, modality: str | None) -> None:
    path = shared / f"i{abs(hash((tuple(corpus), scope, limit, offset, modality)))}.duckdb"
    index = Index(path)
    try:
        index.upsert(records(corpus))
        for catalog in (True, False):  # the in-memory catalog and plain SQL answer alike
            index._catalog_off = not catalog
            index._catalog = None
            check_studies(index, corpus, scope, limit, offset, modality)
            check_series_and_instances(index, corpus, scope, limit, offset)
        check_patients(index, corpus, scope)
    finally:
        index.close()
        path.unlink(missing_ok=True)


def check_studies(index: Index, corpus: list[Study], scope: StudyScope, limit: int | None,
                  offset: int, modality: str | None) -> None:
    q = Query(level="STUDY", limit=limit, offset=offset, scope=scope)
    if modality:
        q.matches.append(parse_match("00080061", modality))
    got = list(index.search(q))
    want = [s for s in ordered(corpus) if study_visible(s, scope)
            and (modality is None or any(m == modality for _, m, _ in s.series))]
    want = want[offset:None if limit is None else offset + limit]
    assert uids(got, "0020000D") == [s.uid for s in want]
    for answer, st in zip(got, want):  # computed attributes of a visible study
        assert answer["00201208"]["Value"] == [sum(n for _, _, n in st.series)]
        assert answer["00080061"]["Value"] == sorted({m for _, m, _ in st.series})


def check_series_and_instances(index: Index, corpus: list[Study], scope: StudyScope,
                               limit: int | None, offset: int) -> None:
    got = uids(list(index.search(Query(level="SERIES", limit=limit, offset=offset, scope=scope))), "0020000E")
    every = sorted(((n, se, st) for st in corpus for n, (se, _, _) in enumerate(st.series, 1)),
                   key=lambda x: (x[0], x[1]))
    want = [se for _, se, st in every if series_visible(st, se, scope)]
    assert got == want[offset:None if limit is None else offset + limit]
    got_i = sorted(uids(list(index.search(Query(level="IMAGE", scope=scope))), "00080018"))
    want_i = sorted(f"{se}.{i}" for st in corpus for se, _, n in st.series for i in range(n)
                    if series_visible(st, se, scope))
    assert got_i == want_i
    for st in corpus:  # one series' instances: sorted and scoped outside SQL (sql.compile_instances)
        se, _, n = st.series[0]
        q = Query(level="IMAGE", matches=[parse_match("0020000E", se)], limit=limit, offset=offset, scope=scope)
        want_se = [f"{se}.{i}" for i in range(n)] if series_visible(st, se, scope) else []
        assert uids(list(index.search(q)), "00080018") == want_se[offset:None if limit is None else offset + limit]


def check_patients(index: Index, corpus: list[Study], scope: StudyScope) -> None:
    got = {a["00100020"]["Value"][0]: a["00201200"]["Value"][0]
           for a in index.search(Query(level="PATIENT", scope=scope))}
    want: dict[str, int] = {}
    for st in corpus:
        if study_visible(st, scope):
            want[st.pid] = want.get(st.pid, 0) + 1
    assert got == want


def test_two_hospitals_never_see_each_other(tmp_path: Path) -> None:
    index = Index(tmp_path / "i.duckdb")
    try:
        corpus = [Study("2.1", "P1", "h1", None, "20240101", (("2.1.1", "CT", 2),)),
                  Study("2.2", "P1", "h2", "d1", "20240102", (("2.2.1", "MR", 1),))]
        index.upsert(records(corpus))
        for level in ("STUDY", "SERIES", "IMAGE", "PATIENT"):
            for hospital, other in (("h1", "2.2"), ("h2", "2.1")):
                answers = list(index.search(Query(level=level, scope=StudyScope(hospitals=frozenset({hospital})))))
                assert answers, (level, hospital)
                assert all(a.get("0020000D", {}).get("Value") != [other] for a in answers)
        # a capability-like scope: exactly its study
        one = StudyScope(studies=frozenset({"2.2"}))
        assert uids(list(index.search(Query(level="STUDY", scope=one))), "0020000D") == ["2.2"]
        assert list(index.search(Query(level="STUDY", scope=StudyScope()))) == []
        assert index.owner("2.1") == ("h1", None) and index.owner("2.2") == ("h2", "d1")
        assert index.owner("9.9") is None and index.cached_owner("9.9") == (None,)
        index.delete("2.2")  # a write drops what it touched from the owner cache
        assert index.cached_owner("2.2") is None and index.owner("2.2") is None
    finally:
        index.close()


OLD_INSTANCES = ["sop", "study", "series", "sop_class", "instance_number", "content_date", "content_time",
                 "transfer_syntax", "pixel_form", "frames", "size", "digest", "storage_key", "face",
                 "source", "institution", "received", "extra", "json", "seq"]


def test_an_index_of_the_previous_version_migrates(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    index = Index(path)
    index.upsert([make("3.1", "3.1.1", "3.1.1.1"), make("3.1", "3.1.1", "3.1.1.2")])
    index.close()
    con = duckdb.connect(str(path))  # back to the previous version's layout, rows kept
    for name in INDEXES:  # DuckDB drops no column of an indexed table; Index() makes them again
        con.execute(f"DROP INDEX {name}")
    for table in ("instances", "studies"):
        for col in ("hospital", "department"):
            con.execute(f"ALTER TABLE {table} DROP COLUMN {col}")
    assert [r[0] for r in con.execute("DESCRIBE instances").fetchall()] == OLD_INSTANCES
    con.close()
    index = Index(path)
    try:
        assert index.owner("3.1") == ("default", None)
        default = StudyScope(hospitals=frozenset({"default"}))
        assert uids(list(index.search(Query(level="STUDY", scope=default))), "0020000D") == ["3.1"]
        assert list(index.search(Query(level="STUDY", scope=StudyScope(hospitals=frozenset({"h1"}))))) == []
        # writes go on in the migrated file (its added columns are last)
        rec = make("3.2", "3.2.1", "3.2.1.1")
        rec.origin = Origin("stow", "AE", "", "h1", "d1")
        index.upsert([rec, make("3.1", "3.1.1", "3.1.1.3")])
        assert index.owner("3.2") == ("h1", "d1")
        h1 = list(index.search(Query(level="IMAGE", scope=StudyScope(hospitals=frozenset({"h1"})))))
        assert uids(h1, "00080018") == ["3.2.1.1"]
        assert [a["00201208"]["Value"] for a in index.search(Query(level="STUDY", scope=default))] == [[3]]
    finally:
        index.close()
