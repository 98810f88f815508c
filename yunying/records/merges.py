"""Patient merges (HL7 A40) and identifier changes (A47): records and index studies move to the
surviving patient, every move is recorded with what it changed, and an admin can undo it.

Order: the index move first (it returns the prior attributes), then the record transaction
(which records them); when the latter fails the index is moved back, so nothing is half-applied.
"""
from __future__ import annotations

import time
from typing import Any, Protocol

from sqlalchemy import and_, insert, select, update
from sqlalchemy.engine import Connection

import yunying.records.schema as t
from yunying.records import events
from yunying.records.model import Record
from yunying.records.store import Event, RecordStore, Where, new_id

Attrs = dict[str, Any]


class Mover(Protocol):
    """The study index side of a merge (yunying.records.service.ArchiveMover in a server)."""

    def studies_of(self, patient_id: str, hospital: str) -> list[str]: ...

    def move(self, studies: list[str], attrs: Attrs, keep: bool) -> dict[str, Attrs]: ...


class MergeRefused(Exception):
    """A merge that cannot be done as asked (the reason names no personal value)."""


def patient_attrs(rec: Record) -> Attrs:
    """DICOM JSON patient elements of the surviving patient, for the moved studies."""
    out: Attrs = {"00100020": {"vr": "LO", "Value": [rec.get("patient_id")]}}
    if rec.get("name"):
        out["00100010"] = {"vr": "PN", "Value": [{"Alphabetic": rec.get("name")}]}
    if rec.get("birth_date"):
        out["00100030"] = {"vr": "DA", "Value": [rec.get("birth_date")]}
    if rec.get("sex"):
        out["00100040"] = {"vr": "CS", "Value": [rec.get("sex")]}
    return out


def merge(records: RecordStore, mover: Mover | None, event: str, survivor: Record, old_id: str,
          old_issuer: str, where: Where, control_id: str = "") -> int:
    """Apply an A40 (merge old into survivor) or A47 (old identifier becomes survivor's); returns the merge id."""
    old_issuer = old_issuer or where.issuer
    new_issuer = survivor.get("issuer") or where.issuer
    if (old_id, old_issuer) == (survivor.get("patient_id"), new_issuer):
        raise MergeRefused(f"{event}: the prior and the new identifier are the same")
    with records.store.engine.connect() as conn:
        new_row = records.patient(conn, where.hospital, new_issuer, survivor.get("patient_id"))
        old_row = records.patient(conn, where.hospital, old_issuer, old_id)
    if event == "A47" and new_row is not None and old_row is not None and new_row.id != old_row.id:
        raise MergeRefused("A47: the new identifier already belongs to another patient (send A40 to merge)")
    studies = mover.studies_of(old_id, where.hospital) if mover else []
    priors = mover.move(studies, patient_attrs(survivor), True) if mover and studies else {}
    try:
        with records.transaction() as (conn, out):
            return _record(conn, out, records, event, survivor, old_id, old_issuer, where, priors, control_id)
    except BaseException:
        for study, prior in priors.items():  # put the index back as it was
            assert mover is not None
            mover.move([study], prior, False)
        raise


def _record(conn: Connection, out: list[Event], records: RecordStore, event: str, survivor: Record,
            old_id: str, old_issuer: str, where: Where, priors: dict[str, Attrs], control_id: str) -> int:
    now = int(time.time())
    old = records.patient(conn, where.hospital, old_issuer, old_id)
    moved: dict[str, Any] = {"studies": priors, "exams": [], "visits": [], "old_id": old_id, "old_issuer": old_issuer}
    if event == "A47" and old is not None:  # the same person: the record takes the new identifier
        conn.execute(update(t.patients).where(t.patients.c.id == old.id).values(
            patient_id=survivor.get("patient_id"), issuer=survivor.get("issuer") or where.issuer, updated_at=now))
        sid = records.upsert_patient(conn, out, survivor, where)
        merged = sid
    else:
        sid = records.upsert_patient(conn, out, survivor, where)
        if old is None:  # a stub, so later messages with the old identifier reach the survivor
            merged = new_id()
            conn.execute(insert(t.patients).values(id=merged, hospital=where.hospital, issuer=old_issuer,
                                                   patient_id=old_id, source=where.source, created_at=now,
                                                   updated_at=now, merged_into=sid))
        else:
            merged = old.id
            moved["exams"] = [r.id for r in conn.execute(select(t.exams.c.id).where(t.exams.c.patient == merged))]
            moved["visits"] = [r.id for r in conn.execute(select(t.visits.c.id).where(t.visits.c.patient == merged))]
            conn.execute(update(t.exams).where(t.exams.c.patient == merged).values(patient=sid, updated_at=now))
            conn.execute(update(t.visits).where(t.visits.c.patient == merged).values(patient=sid, updated_at=now))
            conn.execute(update(t.patients).where(t.patients.c.id == merged).values(merged_into=sid, updated_at=now))
    mid = conn.execute(insert(t.merges).values(hospital=where.hospital, event=event, surviving=sid, merged=merged,
                                               moved=moved, control_id=control_id[:64], at=now)).inserted_primary_key
    assert mid is not None
    out.append(events.MergeEvent(int(mid[0]), where.hospital, sid, merged))
    return int(mid[0])


def undo(records: RecordStore, mover: Mover | None, merge_id: int, by: str) -> dict[str, Any]:
    """Reverse a merge: studies back to their prior attributes, records as they were; recorded."""
    with records.store.engine.connect() as conn:
        m = conn.execute(select(t.merges).where(t.merges.c.id == merge_id)).first()
    if m is None:
        raise LookupError(f"no merge {merge_id}")
    if m.undone_at is not None:
        raise MergeRefused(f"merge {merge_id} was undone already")
    moved = m.moved
    for study, prior in moved["studies"].items():
        if mover is not None:
            mover.move([study], prior, False)
    now = int(time.time())
    with records.transaction() as (conn, out):
        if m.event == "A47":
            conn.execute(update(t.patients).where(t.patients.c.id == m.surviving).values(
                patient_id=moved["old_id"], issuer=moved["old_issuer"], updated_at=now))
        else:
            conn.execute(update(t.patients).where(t.patients.c.id == m.merged).values(merged_into=None, updated_at=now))
            for table, ids in ((t.exams, moved["exams"]), (t.visits, moved["visits"])):
                if ids:
                    conn.execute(update(table).where(and_(table.c.id.in_(ids))).values(patient=m.merged, updated_at=now))
        conn.execute(update(t.merges).where(t.merges.c.id == merge_id).values(undone_at=now, undone_by=by[:64]))
        out.append(events.MergeEvent(merge_id, m.hospital, m.surviving, m.merged, undone=True))
    return {"id": merge_id, "studies": sorted(moved["studies"]), "undone_at": now}


def list_merges(records: RecordStore, hospital: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Merges, newest first (no personal values: record ids, study UIDs, times)."""
    q = select(t.merges).order_by(t.merges.c.id.desc()).limit(limit)
    if hospital is not None:
        q = q.where(t.merges.c.hospital == hospital)
    with records.store.engine.connect() as conn:
        return [{"id": m.id, "hospital": m.hospital, "event": m.event, "surviving": m.surviving, "merged": m.merged,
                 "studies": sorted(m.moved["studies"]), "exams": len(m.moved["exams"]), "at": m.at,
                 "undone_at": m.undone_at, "undone_by": m.undone_by} for m in conn.execute(q)]
