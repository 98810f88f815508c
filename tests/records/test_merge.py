"""Patient merge (A40) and identifier change (A47) over MLLP into a real archive: studies move
to the surviving patient in the index, retrieved headers are corrected, an admin undoes it."""
from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from index.model import Origin
from index.query import Match, Query
from tests.records import hl7_messages as m
from tests.records.dicom import instance
from tests.records.test_hl7 import msa, send
from yunying.archive import Archive
from yunying.records import merges
from yunying.records.hl7in import Hl7Handler
from yunying.records.mllp import MllpListener
from yunying.records.service import ArchiveMover
from yunying.records.store import RecordStore, Where

H1 = Origin("dimse", "CT1", hospital="h1")


@pytest.fixture
def listener(records: RecordStore, archive: Archive) -> Iterator[MllpListener]:
    lst = MllpListener(Hl7Handler(records, Where("h1", "HIS1", "hl7"), ArchiveMover(archive)), "127.0.0.1", 0)
    lst.start()
    yield lst
    lst.stop()


def ids(archive: Archive) -> dict[str, str]:
    """study UID -> PatientID as QIDO answers it."""
    return {a["0020000D"]["Value"][0]: a["00100020"]["Value"][0] for a in archive.search(Query("STUDY"))}


def header_id(archive: Archive, study: str) -> str:
    return str(pydicom.dcmread(io.BytesIO(archive.read_part10(archive.instances(study)[0]))).PatientID)


def test_a40_moves_studies_and_exams_then_undo(listener: MllpListener, records: RecordStore, archive: Archive) -> None:
    s1, s2, s3 = (generate_uid() for _ in range(3))
    for study, pid in ((s1, "P1"), (s2, "P1"), (s3, "P2")):
        archive.store(instance(pid, study), H1)
    other = generate_uid()
    archive.store(instance("P1", other), Origin("dimse", "CT9", hospital="h2"))  # another hospital's P1 stays
    for msg in (m.adt(pid="P1", control="a"), m.adt(pid="P2", control="b", ip_no="ZY2"), m.orm(pid="P1")):
        assert msa(send(listener, msg))[0] == "AA"
    assert msa(send(listener, m.merge("A40", "MG1", "P2", "P1")))[0] == "AA"
    assert ids(archive) == {s1: "P2", s2: "P2", s3: "P2", other: "P1"}
    assert header_id(archive, s1) == "P2" and header_id(archive, other) == "P1"
    assert [len(a) for a in [list(archive.search(Query("PATIENT", [Match("00100020", "single", ("P2",))])))]] == [1]
    exam = records.exam("h1", "ACC001")
    assert exam is not None and exam["patient"]["patient_id"] == "P2"
    assert msa(send(listener, m.adt(pid="P1", control="c")))[0] == "AA"  # the old ID reaches the survivor
    (done,) = merges.list_merges(records)
    assert done["event"] == "A40" and sorted(done["studies"]) == sorted([s1, s2]) and done["exams"] == 1
    merges.undo(records, ArchiveMover(archive), done["id"], "admin")
    assert ids(archive) == {s1: "P1", s2: "P1", s3: "P2", other: "P1"}
    assert header_id(archive, s1) == "P1" and archive.index.patient_override(s1) is None
    exam = records.exam("h1", "ACC001")
    assert exam is not None and exam["patient"]["patient_id"] == "P1"
    with pytest.raises(merges.MergeRefused):
        merges.undo(records, ArchiveMover(archive), done["id"], "admin")


def test_later_instances_of_a_moved_study_follow_it(listener: MllpListener, archive: Archive) -> None:
    study = generate_uid()
    archive.store(instance("P1", study), H1)
    assert msa(send(listener, m.merge("A40", "MG1", "P2", "P1")))[0] == "AA"
    archive.store(instance("P1", study), H1)  # the modality sends one more image with the old ID
    (answer,) = archive.search(Query("STUDY"))
    assert answer["00100020"]["Value"] == ["P2"] and answer["00201208"]["Value"] == [2]


def test_a47_changes_the_identifier(listener: MllpListener, records: RecordStore, archive: Archive) -> None:
    study = generate_uid()
    archive.store(instance("P3", study), H1)
    assert msa(send(listener, m.adt(pid="P3")))[0] == "AA"
    assert msa(send(listener, m.merge("A47", "ID1", "P4", "P3")))[0] == "AA"
    assert ids(archive) == {study: "P4"}
    with records.store.engine.connect() as conn:
        assert records.patient(conn, "h1", "HIS1", "P4") is not None
        assert records.patient(conn, "h1", "HIS1", "P3") is None


def test_a47_onto_another_patient_is_refused_and_nothing_moves(
        listener: MllpListener, records: RecordStore, archive: Archive) -> None:
    study = generate_uid()
    archive.store(instance("P3", study), H1)
    for msg in (m.adt(pid="P3", control="a"), m.adt(pid="P4", control="b", ip_no="ZY4")):
        send(listener, msg)
    code, _, reason = msa(send(listener, m.merge("A47", "ID1", "P4", "P3")))
    assert code == "AE" and "A40" in reason
    assert ids(archive) == {study: "P3"} and merges.list_merges(records) == []


def test_a_failed_record_transaction_moves_the_index_back(
        listener: MllpListener, records: RecordStore, archive: Archive, monkeypatch: pytest.MonkeyPatch) -> None:
    study = generate_uid()
    archive.store(instance("P1", study), H1)

    def broken(*args: object, **kwargs: object) -> int:
        raise OperationalError("INSERT", {}, Exception("database is locked"))
    monkeypatch.setattr(merges, "_record", broken)
    code, _, reason = msa(send(listener, m.merge("A40", "MG1", "P2", "P1")))
    assert code == "AE" and "send it again" in reason
    assert ids(archive) == {study: "P1"} and archive.index.patient_override(study) is None
    assert header_id(archive, study) == "P1"


def test_a_merge_leaves_an_audit_record(listener: MllpListener, records: RecordStore, archive: Archive,
                                        tmp_path: Path) -> None:
    import yunying.audit
    from yunying.audit.schema import records as audit_records
    study = generate_uid()
    archive.store(instance("P1", study), H1)
    yunying.audit.start(tmp_path / "data", records.store.engine)
    try:
        assert msa(send(listener, m.merge("A40", "MG7", "P2", "P1")))[0] == "AA"
    finally:
        yunying.audit.stop()
    with records.store.engine.connect() as conn:
        (row,) = conn.execute(select(audit_records).where(audit_records.c.action == "patient.merge")).all()
    assert (row.principal_kind, row.face, row.hospital, row.patient_id) == ("system", "hl7", "h1", "P2")
    assert "MG7" in row.detail
