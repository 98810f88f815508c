"""Upsert, replace and delete keep exact counters; patients are PatientID + issuer."""
from __future__ import annotations

import threading
from pathlib import Path

import orjson
import pytest

from index import Index, Query, parse_match

from .conftest import MR, el, make, record_of


def study_row(ix: Index, uid: str) -> dict:
    """The study answer of one study, with SOPClassesInStudy."""
    rows = list(ix.search(Query("STUDY", [parse_match("StudyInstanceUID", uid)],
                                includefields={"00080062"})))
    assert len(rows) == 1
    return rows[0]


def series_counts(ix: Index, study: str) -> dict[str, int]:
    """NumberOfSeriesRelatedInstances by series UID."""
    return {r["0020000E"]["Value"][0]: r["00201209"]["Value"][0] for r in ix.search(
        Query("SERIES", [parse_match("StudyInstanceUID", study)]))}


def test_insert_counts_and_rows(ix: Index) -> None:
    recs = [make(series=f"1.2.3.{s}", sop=f"1.2.3.{s}.{i}", modality=m, series_number=s,
                 instance_number=i, sop_class=MR if m == "MR" else "1.2.840.10008.5.1.4.1.1.2")
            for s, m in ((1, "CT"), (2, "MR")) for i in (1, 2, 3)]
    assert ix.upsert(recs) == [None] * 6
    assert ix.counts() == {"patients": 1, "studies": 1, "series": 2, "instances": 6}
    st = study_row(ix, "1.2.3")
    assert st["00201206"] == el("IS", 2)
    assert st["00201208"] == el("IS", 6)
    assert st["00080061"] == el("CS", "CT", "MR")
    assert st["00080062"] == el("UI", "1.2.840.10008.5.1.4.1.1.2", MR)
    assert series_counts(ix, "1.2.3") == {"1.2.3.1": 3, "1.2.3.2": 3}
    row = ix.lookup("1.2.3.2.3")
    assert row is not None and row.series == "1.2.3.2" and row.study == "1.2.3"
    assert row.storage_key == "k/1.2.3.2.3" and row.extra == {"layout": [1, 2]}
    assert row.sop_class == MR and row.frames == 1 and row.digest == "d-1.2.3.2.3"
    assert ix.lookup("9.9") is None


def test_replace_returns_old_row_and_keeps_counts(ix: Index) -> None:
    ix.upsert([make(sop="1.1", storage_key="old"), make(sop="1.2", instance_number=2)])
    old = ix.upsert([make(sop="1.1", storage_key="new", json={"00081030": el("LO", "New")})])
    assert old[0] is not None and old[0].storage_key == "old"
    assert (row := ix.lookup("1.1")) is not None and row.storage_key == "new"
    assert ix.counts()["instances"] == 2
    st = study_row(ix, "1.2.3")
    assert st["00201208"] == el("IS", 2)
    # The study row's attributes are the newest instance's.
    assert list(ix.search(Query("STUDY", [parse_match("StudyDescription", "New")])))


def test_same_sop_twice_in_one_batch(ix: Index) -> None:
    prev = ix.upsert([make(sop="1.1", storage_key="a"), make(sop="1.1", storage_key="b")])
    assert prev[0] is None and prev[1] is not None and prev[1].storage_key == "a"
    assert (row := ix.lookup("1.1")) is not None and row.storage_key == "b"
    assert ix.counts()["instances"] == 1


def test_replace_moving_instance_fixes_both_studies(ix: Index) -> None:
    ix.upsert([make(study="1.1", series="1.1.1", sop="9.1"), make(study="1.1", series="1.1.1", sop="9.2")])
    ix.upsert([make(study="1.5", series="1.5.1", sop="9.2", modality="MR")])
    assert study_row(ix, "1.1")["00201208"] == el("IS", 1)
    assert study_row(ix, "1.5")["00201208"] == el("IS", 1)
    ix.upsert([make(study="1.5", series="1.5.1", sop="9.1", modality="MR")])
    assert not list(ix.search(Query("STUDY", [parse_match("StudyInstanceUID", "1.1")])))
    assert ix.counts() == {"patients": 1, "studies": 1, "series": 1, "instances": 2}


def test_delete_levels(ix: Index) -> None:
    ix.upsert([make(study=f"1.{st}", series=f"1.{st}.{se}", sop=f"1.{st}.{se}.{i}",
                    modality="MR" if se == 2 else "CT", series_number=se, instance_number=i)
               for st in (1, 2) for se in (1, 2) for i in (1, 2)])
    removed = ix.delete("1.1", "1.1.1", "1.1.1.2")
    assert [r.sop for r in removed] == ["1.1.1.2"]
    assert study_row(ix, "1.1")["00201208"] == el("IS", 3)
    removed = ix.delete("1.1", "1.1.2")
    assert [r.sop for r in removed] == ["1.1.2.1", "1.1.2.2"]
    st = study_row(ix, "1.1")
    assert st["00201206"] == el("IS", 1) and st["00080061"] == el("CS", "CT")
    assert len(ix.delete("1.2")) == 4
    assert ix.counts() == {"patients": 1, "studies": 1, "series": 1, "instances": 1}
    assert ix.delete("1.2") == []
    assert ix.delete("1.1", "1.1.9") == []
    ix.delete("1.1")
    assert ix.counts() == {"patients": 0, "studies": 0, "series": 0, "instances": 0}


def test_patients_are_qualified_by_issuer(ix: Index) -> None:
    ix.upsert([make(study="1.1", series="1.1.1", sop="1.1.1.1", pid="123", institution="H1"),
               make(study="1.2", series="1.2.1", sop="1.2.1.1", pid="123", institution="H2"),
               make(study="1.3", series="1.3.1", sop="1.3.1.1", pid="123", institution="H2"),
               make(study="1.4", series="1.4.1", sop="1.4.1.1", pid="123", issuer="MRN",
                    institution="H2"),
               make(study="1.5", series="1.5.1", sop="1.5.1.1", pid="123", institution="",
                    source="AE9")])
    pats = list(ix.search(Query("PATIENT", [parse_match("PatientID", "123")])))
    assert [(p["00100021"]["Value"][0], p["00201200"]["Value"][0]) for p in pats] == [
        ("AE9", 1), ("H1", 1), ("H2", 2), ("MRN", 1)]
    assert ix.counts()["patients"] == 4
    only_h2 = list(ix.search(Query("STUDY", [parse_match("IssuerOfPatientID", "H2")])))
    assert sorted(s["0020000D"]["Value"][0] for s in only_h2) == ["1.2", "1.3"]
    ix.delete("1.2")
    ix.delete("1.3")
    assert ix.counts()["patients"] == 3


def test_patient_counts(ix: Index) -> None:
    ix.upsert([make(study=f"1.{s}", series=f"1.{s}.{se}", sop=f"1.{s}.{se}.{i}")
               for s in (1, 2) for se in (1, 2, 3) for i in range(s)])
    (p,) = ix.search(Query("PATIENT"))
    assert (p["00201200"], p["00201202"], p["00201204"]) == (el("IS", 2), el("IS", 6), el("IS", 9))
    assert p["00100020"] == el("LO", "P1") and p["00100010"]["Value"][0]["Alphabetic"] == "Doe^John"


def test_instances_order_and_metadata(ix: Index) -> None:
    recs = [make(series="1.2.3.9", sop="5.1", series_number=2, instance_number=2),
            make(series="1.2.3.9", sop="5.2", series_number=2, instance_number=1),
            make(series="1.2.3.8", sop="5.3", series_number=None, instance_number=None),
            make(series="1.2.3.7", sop="5.5", series_number=1, instance_number=10),
            make(series="1.2.3.7", sop="5.4", series_number=1, instance_number=10)]
    ix.upsert(recs)
    order = ["5.4", "5.5", "5.2", "5.1", "5.3"]
    assert [r.sop for r in ix.instances("1.2.3")] == order
    assert [r.sop for r in ix.instances("1.2.3", "1.2.3.9")] == ["5.2", "5.1"]
    assert [r.sop for r in ix.instances("1.2.3", "1.2.3.9", "5.1")] == ["5.1"]
    assert ix.instances("7.7") == []
    batches = list(ix.iter_metadata("1.2.3", batch=2))
    assert [len(b) for b in batches] == [2, 2, 1]
    docs = [orjson.loads(b) for batch in batches for b in batch]
    assert [d["00080018"]["Value"][0] for d in docs] == order
    by_sop = {r.json["00080018"]["Value"][0]: r.json for r in recs}
    assert all(d == by_sop[d["00080018"]["Value"][0]] for d in docs)
    assert sorted(ix.storage_keys()) == sorted((r.json["00080018"]["Value"][0], f"k/{s}")
                                               for r in recs for s in [r.json["00080018"]["Value"][0]])


def test_real_files_roundtrip_metadata(ix: Index) -> None:
    recs = [record_of(n) for n in ("CT_small.dcm", "MR_small.dcm", "chrX1.dcm", "chrX2.dcm",
                                  "chrH31.dcm", "rtplan.dcm")]
    ix.upsert(recs)
    for rec in recs:
        study = rec.json["0020000D"]["Value"][0]
        sop = rec.json["00080018"]["Value"][0]
        (batch,) = ix.iter_metadata(study, sop=sop)
        assert orjson.loads(batch[0]) == rec.json
    assert ix.counts()["instances"] == 6


def test_reopen_keeps_data_and_sequence(tmp_path: Path) -> None:
    ix = Index(tmp_path / "x.duckdb")
    ix.upsert([make(sop="1.1", json={"00081030": el("LO", "first")})])
    ix.close()
    ix = Index(tmp_path / "x.duckdb")
    ix.upsert([make(sop="1.2", instance_number=2, json={"00081030": el("LO", "second")})])
    (st,) = ix.search(Query("STUDY", includefields={"00081030"}))
    assert st["00081030"] == el("LO", "second") and st["00201208"] == el("IS", 2)
    ix.close()
    ix.close()  # idempotent


def test_bad_record_changes_nothing(ix: Index) -> None:
    ix.upsert([make(sop="1.1")])
    bad = make(sop="1.2")
    del bad.json["0020000E"]
    with pytest.raises(ValueError):
        ix.upsert([make(sop="1.3"), bad])
    assert ix.counts()["instances"] == 1


def test_readers_during_writes(ix: Index) -> None:
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                for st in ix.search(Query("STUDY", limit=50)):
                    assert st["00201208"]["Value"][0] >= 1
                ix.instances("1.0")
                ix.counts()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for b in range(20):
        ix.upsert([make(study=f"1.{b % 5}", series=f"1.{b % 5}.1", sop=f"1.{b}.{i}")
                   for i in range(10)])
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    assert ix.counts() == {"patients": 1, "studies": 5, "series": 5, "instances": 200}
