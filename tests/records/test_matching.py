"""Matching images to exams (issue 15 part 4) against a real archive: accession first, then
patient ID + study date + modality, a queue for the rest, an operator's resolution."""
from __future__ import annotations

import time

from pydicom.uid import generate_uid
from sqlalchemy import select

import yunying.records.schema as t
from index.model import Origin
from tests.records.dicom import instance
from yunying.archive import Archive
from yunying.records import matching
from yunying.records.model import make_record
from yunying.records.store import RecordStore, Where

H1 = Origin("dimse", "CT1", hospital="h1")
W = Where("h1", "HIS1", "test")


def order(records: RecordStore, pid: str, accession: str, when: str = "20260301100000", kind: str = "CT",
          item: str = "胸部CT平扫") -> None:
    rec = make_record({"patient_id": pid, "accession": accession, "scheduled": when, "exam_type": kind,
                       "exam_item": item})
    records.run(records.apply, rec, W)


def study_of(records: RecordStore, accession: str) -> str | None:
    exam = records.exam("h1", accession)
    assert exam is not None
    return exam["study_uid"]


def test_by_accession_then_by_patient_date_modality(records: RecordStore, archive: Archive) -> None:
    matching.set_body_part(records, "*", "胸部CT平扫", "CHEST")
    order(records, "P1", "A1")
    order(records, "P2", "A2")  # a device without a worklist: no accession in its images
    order(records, "P2", "A3", kind="MR")  # same day, other modality: not a candidate
    s1, s2 = generate_uid(), generate_uid()
    archive.store(instance("P1", s1, accession="A1"), H1)
    archive.store(instance("P2", s2, accession="", date="20260301"), H1)
    assert matching.match_new_studies(records, archive) == {"matched": 2, "queued": 0, "seen": 2}
    assert study_of(records, "A1") == s1 and study_of(records, "A2") == s2 and study_of(records, "A3") is None
    exam = records.exam("h1", "A1")
    assert exam is not None and exam["body_part"] == "CHEST"
    assert matching.match_new_studies(records, archive)["seen"] == 0  # nothing done twice


def test_ambiguous_and_unknown_go_to_the_queue_then_resolve(records: RecordStore, archive: Archive) -> None:
    order(records, "P5", "B1", "20260302090000")
    order(records, "P5", "B2", "20260302150000")
    ambiguous, unknown = generate_uid(), generate_uid()
    archive.store(instance("P5", ambiguous, date="20260302"), H1)
    archive.store(instance("P6", unknown, date="20260302"), H1)
    assert matching.match_new_studies(records, archive)["queued"] == 2
    queue = {q["study"]: q for q in matching.queue(records, {"h1"})}
    assert "several exams" in queue[ambiguous]["reason"]
    assert sorted(c["accession"] for c in queue[ambiguous]["candidates"]) == ["B1", "B2"]
    assert "no exam" in queue[unknown]["reason"] and queue[unknown]["candidates"] == []
    assert matching.queue(records, {"h2"}) == []  # another hospital's operator sees none of it
    matching.resolve(records, ambiguous, next(c["id"] for c in queue[ambiguous]["candidates"]
                                          if c["accession"] == "B2"), "operator", {"h1"})
    assert study_of(records, "B2") == ambiguous
    matching.resolve(records, unknown, None, "operator", {"h1"})  # dismissed
    assert matching.queue(records, {"h1"}) == []
    assert matching.match_new_studies(records, archive)["seen"] == 0


def test_a_late_order_is_matched_by_the_next_sweep(records: RecordStore, archive: Archive) -> None:
    study = generate_uid()
    archive.store(instance("P7", study, accession="C1"), H1)
    assert matching.match_new_studies(records, archive)["queued"] == 1
    time.sleep(1.1)  # exam changes are compared by the second
    assert matching.match_new_studies(records, archive)["seen"] == 0  # no exam changed: not looked at again
    order(records, "P7", "C1")
    assert matching.match_new_studies(records, archive)["matched"] == 1
    assert study_of(records, "C1") == study
    with records.store.engine.connect() as conn:
        assert conn.execute(select(t.unmatched)).all() == []
