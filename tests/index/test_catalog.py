"""The in-memory study and series catalog agrees with the SQL compiler, and follows every write."""
from __future__ import annotations

import gc
import threading
import tracemalloc
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from index import Index, Query, parse_match
from index.catalog import SERIES, STUDIES, Catalog, sort_key
from index.keys import KEYS as LEVEL_KEYS
from index.parse import like_pattern
from index.predicates import like_regex
from index.query import Level

from .conftest import CT, MR, el, make

NAMES = [{"Alphabetic": "Wang^Xiaodong"}, {"Alphabetic": "Wang^Xiaodong", "Ideographic": "王^小东"},
         {"Ideographic": "王小东"}, {"Alphabetic": "li^na^^", "Phonetic": "li na"},
         {"Alphabetic": "O'Brien^Mary Ann"}]
DATES = [None, "20230101", "20240105", "20241231"]
TIMES = [None, "10", "1030", "103015.25", "235959"]
DESCS = [None, "Chest 100%", "chest_abd", "Chest\\x", "CT 王"]
KEYS = hs.sampled_from([
    ("PatientID", ["A", "A_1", "a", "A*", "?", "A,B", "*1"]),
    ("PatientName", ["Wang^Xiaodong", "WANG*", "王*", "*小东", "li^na", "=王^小东", "Wang*=王*",
                     "li na", "xiao", "^", "*=*=li*", "o'brien^mary ann", "wang^x*", "Li^N?", "O'B*",
                     "王^*", "w?ng*"]),
    ("IssuerOfPatientID", ["H1", "H*", "ISS"]),
    ("PatientSex", ["F", "M", "?"]),
    ("PatientBirthDate", ["19800101", "-19851231", "19900101-"]),
    ("StudyDate", ["20240105", "20240101-20241231", "-20240105", "20240106-", "20230101",
                   "20241231-20241231", "19990101-20230101"]),
    ("StudyTime", ["-1030", "1030-", "10", "103015", "1030-103015"]),
    ("AccessionNumber", ["X1", "X_1", "x*", "X1,Y2", "??"]),
    ("StudyDescription", ["Chest*", "*100%", "chest\\*", "*王", "Chest?abd"]),
    ("StudyID", ["1", "1*"]),
    ("ReferringPhysicianName", ["Li^Na", "li*"]),
    ("ModalitiesInStudy", ["CT", "MR,US", "?T", "*R"]),
    ("InstitutionName", ["H1", "H*", "Renji"]),
    ("SOPClassesInStudy", ["1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2,1.9"]),
    ("StudyInstanceUID", ["1.0", "1.1,1.3", "1.2\\1.9"]),
]).flatmap(lambda kv: hs.tuples(hs.just(kv[0]), hs.sampled_from(kv[1])))


LOWER_KEYS = hs.sampled_from([
    ("Modality", ["CT", "MR,US", "?T"]),
    ("SeriesInstanceUID", ["1.0.0", "1.1.1,1.2.0", "1.9"]),
    ("SeriesNumber", ["0", "1", "2"]),
    ("SeriesDescription", ["Axial*", "axial 1"]),
    ("InstitutionName", ["H1", "R*"]),
    ("SeriesDate", ["20240105", "-20240101"]),
    ("RequestAttributesSequence.ScheduledProcedureStepID", ["SPS1", "S*"]),
    ("StudyInstanceUID", ["1.0", "1.1,1.3"]),
    ("PatientID", ["A", "A*"]),
    ("StudyDate", ["20240101-20241231"]),
    ("SOPInstanceUID", ["1.0.0.1", "1.1.0.2,1.2.1.1"]),
    ("SOPClassUID", ["1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4"]),
    ("InstanceNumber", ["1", "2"]),
    ("ContentDate", ["20240105", "20240101-"]),
]).flatmap(lambda kv: hs.tuples(hs.just(kv[0]), hs.sampled_from(kv[1])))


@hs.composite
def corpora(draw: Any) -> list[Any]:
    """Records of up to 7 studies with 1-3 series each."""
    out = []
    for n in range(draw(hs.integers(1, 7))):
        js: dict[str, Any] = {"00080050": el("SH", draw(hs.sampled_from(["X1", "X_1", "Y2"])))}
        if (desc := draw(hs.sampled_from(DESCS))) is not None:
            js["00081030"] = el("LO", desc)
        if draw(hs.booleans()):
            js.update({"00100040": el("CS", "F"), "00100030": el("DA", "19850612"),
                       "00100021": el("LO", "ISS"), "00200010": el("SH", "12"),
                       "00080090": el("PN", {"Alphabetic": "Li^Na"})})
        pid = draw(hs.sampled_from(["A", "A_1", "a", "B"]))
        name, date, time = (draw(hs.sampled_from(v)) for v in (NAMES, DATES, TIMES))
        for i, mod in enumerate(draw(hs.lists(hs.sampled_from(["CT", "MR", "US"]), min_size=1, max_size=3))):
            se = {"00080021": el("DA", draw(hs.sampled_from(["20240105", "20231231"]))),
                  "0008103E": el("LO", draw(hs.sampled_from(["Axial 1", "axial 1"]))),
                  "00400275": el("SQ", {"00400009": el("SH", draw(hs.sampled_from(["SPS1", "X"])))})}
            number = draw(hs.sampled_from([None, 1, 2]))
            for k in range(draw(hs.integers(1, 2))):
                inst = {"00080023": el("DA", draw(hs.sampled_from(["20240105", "20231231"])))}
                out.append(make(study=f"1.{n}", series=f"1.{n}.{i}", sop=f"1.{n}.{i}.{k + 1}", pid=pid,
                                name=name, study_date=date, study_time=time, modality=mod,
                                series_number=number, instance_number=draw(hs.sampled_from([None, 1, 2])),
                                sop_class=draw(hs.sampled_from([CT, MR])),
                                institution=draw(hs.sampled_from(["H1", "Renji"])),
                                json={**js, **se, **inst}))
    return out


def both(ix: Index, query: Query) -> tuple[list[Any], list[Any]]:
    """Answers from the catalog and from SQL for one query."""
    catalog = Catalog()
    catalog.reload(ix._reader())
    assert catalog.search(query) is not None or query.level == "IMAGE"
    via_catalog = list(ix.search(query))
    ix._catalog_off, ix._catalog = True, None
    try:
        via_sql = list(ix.search(query))
    finally:
        ix._catalog_off = False
    return via_catalog, via_sql


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=corpora(), matches=hs.lists(KEYS, max_size=3, unique_by=lambda kv: kv[0]),
       limit=hs.one_of(hs.none(), hs.integers(0, 4)), offset=hs.integers(0, 3), fuzzy=hs.booleans(),
       include=hs.sampled_from([set(), {"00080060", "00081061", "00280010"}]))
def test_catalog_answers_as_sql(records: list[Any], matches: list[tuple[str, str]], limit: int | None,
                                offset: int, fuzzy: bool, include: set[str]) -> None:
    ix = Index(":memory:")
    try:
        ix.upsert(records)
        query = Query("STUDY", [parse_match(k, v) for k, v in matches], includefields=include,
                      limit=limit, offset=offset, fuzzy=fuzzy)
        via_catalog, via_sql = both(ix, query)
        assert via_catalog == via_sql
    finally:
        ix.close()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=corpora(), matches=hs.lists(LOWER_KEYS, max_size=3, unique_by=lambda kv: kv[0]),
       level=hs.sampled_from(["SERIES", "IMAGE"]), limit=hs.one_of(hs.none(), hs.integers(0, 4)),
       offset=hs.integers(0, 3), include=hs.sampled_from([set(), {"00081030", "00081061", "00280010"}]))
def test_series_and_instances_answer_as_sql(records: list[Any], matches: list[tuple[str, str]], level: Level,
                                            limit: int | None, offset: int, include: set[str]) -> None:
    ix = Index(":memory:")
    try:
        ix.upsert(records)
        query = Query(level, [m for k, v in matches if (m := parse_match(k, v)).tag in LEVEL_KEYS[level]],
                      includefields=include, limit=limit, offset=offset)
        via_catalog, via_sql = both(ix, query)
        assert via_catalog == via_sql
    finally:
        ix.close()


def test_catalog_follows_upserts_replacements_and_deletes(ix: Index) -> None:
    def studies(**match: str) -> list[str]:
        q = Query("STUDY", [parse_match(k, v) for k, v in match.items()])
        return [r["0020000D"]["Value"][0] for r in ix.search(q)]

    ix.upsert([make(study="1.1", series="1.1.1", sop="1.1.1.1", pid="A", study_date="20240101")])
    assert studies(PatientID="A") == ["1.1"]  # loads the catalog
    assert ix._catalog is not None
    ix.upsert([make(study="1.2", series="1.2.1", sop="1.2.1.1", pid="A", study_date="20240102")])
    assert studies(PatientID="A") == ["1.2", "1.1"]
    # a replaced instance moves its study to another patient and date
    ix.upsert([make(study="1.1", series="1.1.1", sop="1.1.1.1", pid="B", study_date="20250101")])
    assert studies(PatientID="A") == ["1.2"]
    assert studies(PatientID="B") == ["1.1"]
    assert studies() == ["1.1", "1.2"]
    ix.upsert([make(study="1.2", series="1.2.2", sop="1.2.2.1", pid="A", modality="MR")])
    [answer] = ix.search(Query("STUDY", [parse_match("StudyInstanceUID", "1.2")]))
    assert answer["00080061"]["Value"] == ["CT", "MR"] and answer["00201208"]["Value"] == [2]
    ix.delete("1.2", "1.2.1")
    assert studies(ModalitiesInStudy="CT") == ["1.1"]
    ix.delete("1.2")
    assert studies(PatientID="A") == [] and studies() == ["1.1"]
    assert len(ix._catalog) == 2  # one study, one series


def test_catalog_is_not_kept_above_its_limit(ix: Index, monkeypatch: Any) -> None:
    monkeypatch.setattr("index.db.MAX_ROWS", 3)
    ix.upsert([make(study=f"1.{n}", series=f"1.{n}.1", sop=f"1.{n}.1.1") for n in range(2)])
    assert len(list(ix.search(Query("STUDY")))) == 2
    assert ix._catalog is None and ix._catalog_off


def test_writes_while_the_catalog_loads_are_in_it(ix: Index, monkeypatch: Any) -> None:
    # the load does not hold up writes: what they touch meanwhile is read again at its end
    ix.upsert([make(study="1.0", series="1.0.1", sop="1.0.1.1", pid="A")])
    full_read = Catalog.reload

    def read_then_write(self: Catalog, cur: Any, studies: Any = None, series: Any = None) -> None:
        full_read(self, cur, studies, series)
        if studies is None:  # the full read is done: a write commits before the catalog is used
            writer = threading.Thread(target=ix.upsert, args=([
                make(study="1.0", series="1.0.1", sop="1.0.1.1", pid="B"),
                make(study="1.1", series="1.1.1", sop="1.1.1.1", pid="B")],))
            writer.start()
            writer.join()

    monkeypatch.setattr(Catalog, "reload", read_then_write)
    q = Query("STUDY", [parse_match("PatientID", "B")])
    assert [r["0020000D"]["Value"][0] for r in ix.search(q)] == ["1.0", "1.1"]
    assert ix._catalog is not None and len(ix._catalog) == 4 and ix._touched is None
    assert list(ix.search(Query("STUDY", [parse_match("PatientID", "A")]))) == []


def test_catalog_is_dropped_when_it_grows_past_its_limit(ix: Index, monkeypatch: Any) -> None:
    ix.upsert([make(study="1.0", series="1.0.1", sop="1.0.1.1")])
    assert len(list(ix.search(Query("STUDY")))) == 1 and ix._catalog is not None
    monkeypatch.setattr("index.db.MAX_ROWS", 3)
    ix.upsert([make(study="1.1", series="1.1.1", sop="1.1.1.1")])
    assert ix._catalog is None and ix._catalog_off
    assert len(list(ix.search(Query("STUDY")))) == 2


def test_a_failed_catalog_update_neither_fails_the_write_nor_leaves_it_stale(ix: Index, monkeypatch: Any) -> None:
    ix.upsert([make(study="1.0", series="1.0.1", sop="1.0.1.1", pid="A")])
    assert len(list(ix.search(Query("STUDY")))) == 1

    def broken(*args: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(Catalog, "apply", broken)
    assert ix.upsert([make(study="1.1", series="1.1.1", sop="1.1.1.1", pid="A")]) == [None]
    assert ix._catalog is None
    monkeypatch.undo()
    q = Query("STUDY", [parse_match("PatientID", "A")])
    assert [r["0020000D"]["Value"][0] for r in ix.search(q)] == ["1.0", "1.1"]


def test_representative_is_read_only_for_tags_it_has(ix: Index) -> None:
    ix.upsert([make(json={"00180050": el("DS", 1.25)})])
    [answer] = ix.search(Query("STUDY", includefields={"00180050", "00081061", "00080060"}))
    assert answer["00180050"] == el("DS", 1.25) and answer["00080060"] == el("CS", "CT")
    assert answer["00081061"] == {"vr": "UN"}


def test_sort_key_is_the_sql_order() -> None:
    keys = [sort_key("20240102", None, "1.9"), sort_key("20240101", "235959.000000", "1.2"),
            sort_key("20240101", "2359", "1.1"), sort_key("20240101", "", "1.0"),
            sort_key("20240101", None, "1.0"), sort_key("2024010", "10", "1.1"),
            sort_key(None, "10", "1.0"), sort_key(None, None, "1.0")]
    assert sorted(keys) == keys


def test_lookups_follow_renames_and_deletes(ix: Index) -> None:
    def studies(**match: str) -> list[str]:
        q = Query("STUDY", [parse_match(k, v) for k, v in match.items()])
        return [r["0020000D"]["Value"][0] for r in ix.search(q)]

    ix.upsert([make(study="1.1", series="1.1.1", sop="1.1.1.1", name={"Alphabetic": "Wang^Wei", "Ideographic": "王^伟"},
                    study_date="20240105")])
    assert studies(PatientName="wang^w*") == studies(PatientName="王*") == ["1.1"]
    assert studies(StudyDate="20240101-20240131") == ["1.1"]
    ix.upsert([make(study="1.1", series="1.1.1", sop="1.1.1.1", name="Li^Na", study_date="20230105")])
    assert studies(PatientName="wang*") == studies(PatientName="王*") == []
    assert studies(PatientName="LI*") == ["1.1"] and studies(StudyDate="20240101-20240131") == []
    assert studies(StudyDate="-20230105") == ["1.1"]
    ix.delete("1.1")
    assert studies(PatientName="li*") == [] and studies(StudyDate="-20991231") == []
    assert ix._catalog is not None and ix._catalog.studies.values["patient_name"] == []


def test_like_regex_matches_like() -> None:
    assert like_regex(like_pattern("a*b?")).fullmatch("aXXb王")
    assert like_regex(like_pattern("100%")).fullmatch("100%")
    assert not like_regex(like_pattern("100%")).fullmatch("1000")
    assert like_regex(like_pattern("a\\b_")).fullmatch("a\\b_")
    assert not like_regex(like_pattern("a_")).fullmatch("ab")


def test_rows_a_write_adds_to_the_catalog_hold_only_their_length(ix: Index) -> None:
    """orjson.dumps answers in the buffer it wrote to (4 KiB for a 400-byte value): kept as it
    is in each study and series row, it was 60 % of the server's Python heap after 20,000 small
    instances (issue 9 part 5). The catalog keeps a copy of the written attributes instead."""
    list(ix.search(Query("STUDY", [])))  # the catalog is loaded (empty) and follows the writes
    tracemalloc.start()
    try:
        for i in range(40):
            ix.upsert([make(study=f"1.9.{i}", series=f"1.9.{i}.1", sop=f"1.9.{i}.1.1", pid=f"P{i}")])
        gc.collect()
        kept = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, "*/index/extract.py")])
    finally:
        tracemalloc.stop()
    assert len(ix._catalog or ()) == 80
    oversized = [s for s in kept.statistics("lineno") if s.size / s.count >= 2048]
    assert oversized == []


def test_values_repeated_from_row_to_row_are_kept_once(ix: Index, monkeypatch: Any) -> None:
    """An institution, a modality code, a series' study UID: one object for all rows (issue 9 part 5)."""
    list(ix.search(Query("STUDY", [])))

    def fresh(text: str) -> str:  # an equal string that is another object (as parsed records give)
        return "".join(list(text))

    for i in range(3):
        ix.upsert([make(study=f"1.8.{i}", series=f"1.8.{i}.1", sop=f"1.8.{i}.1.1", pid=f"P{i}",
                        json={"00080080": el("LO", fresh("Hospital 7"))})])
    ix.upsert([make(study="1.8.0", series="1.8.0.2", sop="1.8.0.2.1", pid="P0")])
    catalog = ix._catalog
    assert catalog is not None
    series = [catalog.series.by_uid[f"1.8.{i}.1"] for i in range(3)]
    at = SERIES.pos["institution"]
    assert series[0][at] == "Hospital 7" and series[0][at] is series[1][at] is series[2][at]
    study = catalog.studies.by_uid["1.8.0"]
    assert study[STUDIES.pos["institutions"]][0] is series[0][at]
    at = SERIES.pos["study"]
    assert catalog.series.by_uid["1.8.0.2"][at] is series[0][at]
    monkeypatch.setattr("index.catalog.SHARED_MAX", 0)  # past the bound the table starts again: still right
    ix.upsert([make(study="1.8.9", series="1.8.9.1", sop="1.8.9.1.1", pid="P9",
                    json={"00080080": el("LO", fresh("Hospital 7"))})])
    found = ix.search(Query("SERIES", [parse_match("InstitutionName", "Hospital 7")]))
    assert len(list(found)) == 4
