"""Incremental counters (write._incremental) write the same rows as re-aggregation (refresh)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from index import Index, InstanceRecord, Query

from .conftest import CT, MR, el, make

TABLES = ("instances", "series", "studies", "patients")


def dump(ix: Index) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, sorted (without the time records were made)."""
    con = ix._con
    return {t: sorted(con.execute(f"SELECT * {'EXCLUDE (received) ' * (t == 'instances')}FROM {t}")
                      .fetchall(), key=repr) for t in TABLES}


def answers(ix: Index) -> list[list[dict]]:
    """Study and series answers with the counters and lists (from the catalog when loaded)."""
    inc = {"00080061", "00080062", "00201206", "00201208", "00201209"}
    return [list(ix.search(Query(level, includefields=inc))) for level in ("STUDY", "SERIES")]


def study_classes(ix: Index) -> list[str]:
    """SOPClassesInStudy of the only study."""
    (st,) = answers(ix)[0]
    return st["00080062"]["Value"]


def pair() -> tuple[Index, Index]:
    """An incremental index and one that always re-aggregates."""
    fast, slow = Index(":memory:"), Index(":memory:")
    slow.incremental = False
    return fast, slow


def series_records(n: int, study: str = "1.2.3", series: str = "1.2.3.1") -> list[InstanceRecord]:
    return [make(study=study, series=series, sop=f"{series}.{i}", instance_number=i,
                 sop_class=MR if i % 3 == 0 else CT,
                 json={"0008103E": el("LO", f"v{i}"), "00080080": el("LO", "Inst")})
            for i in range(n)]


def test_series_one_per_commit_equals_one_batch() -> None:
    recs = series_records(30) + series_records(5, series="1.2.3.2")
    one, each = Index(":memory:"), Index(":memory:")
    try:
        one.upsert(recs)
        answers(each)  # the catalog is kept up to date commit by commit
        for rec in recs:
            each.upsert([rec])
        assert dump(one) == dump(each)
        assert answers(one) == answers(each)
        each._catalog = None
        assert answers(one) == answers(each)
        (st,) = answers(each)[0]
        assert st["00201208"] == el("IS", 35) and st["00201206"] == el("IS", 2)
        assert st["00080062"] == el("UI", CT, MR)
    finally:
        one.close()
        each.close()


def test_replace_and_delete_keep_counters_exact() -> None:
    fast, slow = pair()
    try:
        for ix in (fast, slow):
            answers(ix)
            for rec in series_records(6):
                ix.upsert([rec])
            ix.upsert(series_records(3, series="1.2.3.2"))
            ix.upsert(series_records(2, study="1.9", series="1.9.1"))
            # a resend of the same instances (replacement, same series and class)
            old = ix.upsert(series_records(3))
            assert [o.sop for o in old if o] == ["1.2.3.1.0", "1.2.3.1.1", "1.2.3.1.2"]
            # a replacement that changes its SOP class, and one that moves to another series
            ix.upsert([make(sop="1.2.3.1.3", sop_class=CT, instance_number=3)])
            ix.upsert([make(series="1.2.3.2", sop="1.2.3.1.4", instance_number=4)])
            ix.delete("1.2.3", "1.2.3.1", "1.2.3.1.5")
            ix.upsert([make(sop="1.2.3.1.7", instance_number=7)])
            ix.delete("1.9")
            assert study_classes(ix) == [CT, MR]
            ix.upsert([make(sop="1.2.3.1.0", instance_number=0),  # the last MR instances, as CT
                       make(series="1.2.3.2", sop="1.2.3.2.0", instance_number=0)])
        assert dump(fast) == dump(slow)
        assert answers(fast) == answers(slow)
        (st,) = answers(fast)[0]
        assert st["00201208"] == el("IS", 9) and st["00201206"] == el("IS", 2)
        assert study_classes(fast) == [CT]
        series = {s["0020000E"]["Value"][0]: s["00201209"]["Value"][0] for s in answers(fast)[1]}
        assert series == {"1.2.3.1": 5, "1.2.3.2": 4}
        assert fast.counts() == {"patients": 1, "studies": 1, "series": 2, "instances": 9}
    finally:
        fast.close()
        slow.close()


def test_moves_between_series_studies_and_patients() -> None:
    fast, slow = pair()
    try:
        for ix in (fast, slow):
            ix.upsert([make(study="1.1", series="1.1.1", sop="9.1")])
            ix.upsert([make(study="1.1", series="1.1.1", sop="9.2", modality="MR")])  # series modality
            ix.upsert([make(study="1.1", series="1.1.1", sop="9.3", pid="P2")])  # study's patient
            ix.upsert([make(study="1.2", series="1.1.1", sop="9.4")])  # series to another study
            ix.upsert([make(study="1.3", series="1.3.1", sop="9.5"),
                       make(study="1.4", series="1.3.1", sop="9.6")])  # one series, two studies
            ix.upsert([make(study="1.3", series="1.3.2", sop="9.7", institution="H2",
                            json={"00080080": el("LO", "Other")})])
        assert dump(fast) == dump(slow)
        assert answers(fast) == answers(slow)
    finally:
        fast.close()
        slow.close()


def test_replace_then_close_with_a_reader_result_open(tmp_path: Path) -> None:
    ix = Index(tmp_path / "x.duckdb")
    ix.upsert([make(sop="1.1")])
    assert ix.lookup("1.1") is not None  # a reader cursor whose result stays open
    ix.upsert([make(sop="1.1", name="Other^Name", storage_key="b")])
    assert (row := ix.lookup("1.1")) is not None and row.storage_key == "b"
    ix.upsert([make(sop="1.1", storage_key="c")])
    ix.close()  # CHECKPOINT: no write transaction left open


def model_counts(ix: Index) -> tuple[Counter, Counter, Counter]:
    """Instances per series, per study (of its series rows) and per patient, recounted."""
    con = ix._con
    per_series = Counter(dict(con.execute("SELECT series, count(*) FROM instances GROUP BY series").fetchall()))
    study_of = dict(con.execute("SELECT uid, study FROM series").fetchall())
    key_of = dict(con.execute("SELECT uid, patient_key FROM studies").fetchall())
    per_study: Counter = Counter()
    for se, n in per_series.items():
        per_study[study_of[se]] += n
    per_patient: Counter = Counter()
    for st, n in per_study.items():
        per_patient[key_of[st]] += n
    return per_series, per_study, per_patient


SOPS = [f"9.{i}" for i in range(8)]
SERIES = ["1.1.1", "1.1.2", "1.2.1"]


@hs.composite
def record(draw: Any) -> InstanceRecord:
    # A series stays in its study (refresh's single-study scope counts a series split over
    # several studies by the batch's study alone, test_moves_between_series_studies_and_patients);
    # an instance may move to another series or study, a series change modality or
    # institution, a study its patient.
    series = draw(hs.sampled_from(SERIES))
    return make(study=series.rsplit(".", 1)[0], series=series, sop=draw(hs.sampled_from(SOPS)),
                pid=draw(hs.sampled_from(["P", "P", "P", "Q"])),
                institution=draw(hs.sampled_from(["H1", "H1", "H2"])),
                modality=draw(hs.sampled_from(["CT", "CT", "CT", "MR", None])),
                sop_class=draw(hs.sampled_from([CT, CT, MR, ""])),
                instance_number=draw(hs.integers(1, 3)),
                json={"00080080": el("LO", draw(hs.sampled_from(["X", "X", "Y"])))})


OPS = hs.lists(hs.one_of(
    hs.tuples(hs.just("upsert"), hs.lists(record(), min_size=1, max_size=4)),
    hs.tuples(hs.just("delete"), hs.sampled_from(["1.1", "1.2"]),
              hs.one_of(hs.none(), hs.sampled_from(SERIES)), hs.one_of(hs.none(), hs.sampled_from(SOPS))),
), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS)
def test_incremental_agrees_with_reaggregation(ops: list[tuple[Any, ...]]) -> None:
    fast, slow = pair()
    try:
        answers(fast)  # the catalog follows every write
        for op in ops:
            for ix in (fast, slow):
                if op[0] == "upsert":
                    ix.upsert(op[1])
                else:
                    ix.delete(*op[1:])
            assert dump(fast) == dump(slow)
        assert answers(fast) == answers(slow)
        fast._catalog = None
        assert answers(fast) == answers(slow)
        per_series, per_study, per_patient = model_counts(fast)
        con = fast._con
        assert dict(con.execute("SELECT uid, n_instances FROM series").fetchall()) == per_series
        assert dict(con.execute("SELECT uid, n_instances FROM studies").fetchall()) == per_study
        assert dict(con.execute("SELECT key, n_instances FROM patients").fetchall()) == per_patient
    finally:
        fast.close()
        slow.close()
