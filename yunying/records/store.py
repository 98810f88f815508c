"""The record store: patients, visits, exams and reports, one transaction per record.

Personal data is sealed on the way in (ID card, phone, address: SM4-GCM, yunying/pii.py) with
blind indexes for exact lookups; nothing here logs a value. Subscribers (events.py) hear of a
record once its transaction committed.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import and_, insert, select, update
from sqlalchemy.engine import Connection

import yunying.records.schema as t
from yunying.auth.store import Store
from yunying.pii import PiiKeys
from yunying.records import events
from yunying.records.model import EXAM_FIELDS, REPORT_FIELDS, VISIT_KINDS, Record

T = TypeVar("T")
Event = events.PatientEvent | events.ExamEvent | events.MergeEvent
SEALED = {"id_card": "records.id_card", "phone": "records.phone", "address": "records.address"}  # AAD contexts
BLIND = {"id_card": "id", "phone": "phone"}


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass
class Where:
    """Who a record belongs to: hospital, the issuer its patient IDs default to, the source's name."""

    hospital: str
    issuer: str
    source: str


class RecordStore:
    """The record tables over the app-state store's engine, with the personal-data keys."""

    def __init__(self, store: Store, keys: PiiKeys) -> None:
        self.store, self.keys = store, keys
        store.migrate()  # idempotent: adds the "records" component's tables

    @contextmanager
    def transaction(self) -> Iterator[tuple[Connection, list[Event]]]:
        """One transaction; the events collected in it are emitted after it commits."""
        out: list[Event] = []
        with self.store.engine.begin() as conn:
            yield conn, out
        events.emit(out)

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(conn, events, *args) in one transaction, events emitted after commit."""
        with self.transaction() as (conn, out):
            return fn(conn, out, *args)

    # -- writing -----------------------------------------------------------------------------
    def apply(self, conn: Connection, out: list[Event], rec: Record, where: Where) -> str:
        """Store one checked record (patient, visits, exam, report); returns the patient's id."""
        pid = self.upsert_patient(conn, out, rec, where)
        visit = self._visits(conn, rec, where.hospital, pid)
        if rec.get("accession"):
            exam = self._exam(conn, out, rec, where, pid, visit)
            if rec.has_any(REPORT_FIELDS) or rec.pdf is not None:
                self._report(conn, rec, exam)
        return pid

    def upsert_patient(self, conn: Connection, out: list[Event], rec: Record, where: Where) -> str:
        issuer = rec.get("issuer") or where.issuer
        now = int(time.time())
        row = conn.execute(select(t.patients).where(and_(
            t.patients.c.hospital == where.hospital, t.patients.c.issuer == issuer,
            t.patients.c.patient_id == rec.get("patient_id")))).first()
        hops = 0
        while row is not None and row.merged_into and hops < 8:  # a merged ID keeps reaching the survivor
            row = conn.execute(select(t.patients).where(t.patients.c.id == row.merged_into)).first()
            hops += 1
        values: dict[str, Any] = {k: rec.get(k) for k in ("name", "sex", "birth_date") if rec.get(k)}
        for name, context in SEALED.items():
            if rec.get(name):
                values[f"{name}_sealed"] = self.keys.seal(rec.get(name), context)
                if name in BLIND:
                    values[f"{name}_blind"] = self.keys.blind(BLIND[name], rec.get(name))
        if row is None:
            pid = new_id()
            conn.execute(insert(t.patients).values(
                id=pid, hospital=where.hospital, issuer=issuer, patient_id=rec.get("patient_id"),
                source=where.source, created_at=now, updated_at=now, **values))
        else:
            pid = row.id
            if values:
                conn.execute(update(t.patients).where(t.patients.c.id == pid).values(updated_at=now, **values))
        got = conn.execute(select(t.patients).where(t.patients.c.id == pid)).one()
        out.append(events.PatientEvent(
            pid, got.hospital, got.patient_id, got.issuer, got.name, got.sex, got.birth_date,
            self.unseal(got.id_card_sealed, "id_card"), self.unseal(got.phone_sealed, "phone"), where.source,
            {k: rec.get(k) for k in VISIT_KINDS if rec.get(k)}))
        return str(pid)

    def unseal(self, sealed: str | None, name: str) -> str:
        return self.keys.unseal(sealed, SEALED[name]) if sealed else ""

    def _visits(self, conn: Connection, rec: Record, hospital: str, pid: str) -> str | None:
        last = None
        for field_name, kind in VISIT_KINDS.items():
            number = rec.get(field_name)
            if not number:
                continue
            values = {k: rec.get(k) for k in ("bed", "department") if rec.get(k)}
            row = conn.execute(select(t.visits.c.id).where(and_(
                t.visits.c.hospital == hospital, t.visits.c.kind == kind, t.visits.c.number == number))).first()
            if row is None:
                last = new_id()
                conn.execute(insert(t.visits).values(id=last, hospital=hospital, patient=pid, kind=kind,
                                                     number=number, updated_at=int(time.time()), **values))
            else:
                last = row.id
                conn.execute(update(t.visits).where(t.visits.c.id == last).values(
                    patient=pid, updated_at=int(time.time()), **values))
        return last

    def body_part_of(self, conn: Connection, hospital: str, item: str) -> str:
        """The mapped body part of an exam item (this hospital's row, else the "*" row), or ""."""
        if not item:
            return ""
        rows = {r.hospital: r.body_part for r in conn.execute(select(t.body_parts).where(and_(
            t.body_parts.c.hospital.in_([hospital, "*"]), t.body_parts.c.exam_item == item)))}
        return str(rows.get(hospital) or rows.get("*") or "")

    def _exam(self, conn: Connection, out: list[Event], rec: Record, where: Where, pid: str,
              visit: str | None) -> str:
        values: dict[str, Any] = {k: rec.get(k) for k in EXAM_FIELDS if rec.get(k) and k != "accession"}
        if not values.get("body_part") and values.get("exam_item"):
            values["body_part"] = self.body_part_of(conn, where.hospital, values["exam_item"])
        values = {k: v for k, v in values.items() if v}
        if visit:
            values["visit"] = visit
        row = conn.execute(select(t.exams.c.id).where(and_(
            t.exams.c.hospital == where.hospital, t.exams.c.accession == rec.get("accession")))).first()
        now = int(time.time())
        if row is None:
            eid = new_id()
            conn.execute(insert(t.exams).values(id=eid, hospital=where.hospital, accession=rec.get("accession"),
                                                patient=pid, source=where.source, updated_at=now, **values))
        else:
            eid = row.id
            conn.execute(update(t.exams).where(t.exams.c.id == eid).values(patient=pid, updated_at=now, **values))
        out.append(self.exam_event(conn, eid))
        return str(eid)

    def exam_event(self, conn: Connection, eid: str) -> events.ExamEvent:
        e = conn.execute(select(t.exams).where(t.exams.c.id == eid)).one()
        return events.ExamEvent(e.id, e.hospital, e.accession, e.patient, e.exam_type, e.exam_item,
                                e.body_part, e.status, e.study_uid or "", e.source)

    def _report(self, conn: Connection, rec: Record, exam: str) -> None:
        values: dict[str, Any] = {k: rec.get(k) for k in REPORT_FIELDS if rec.get(k) and k != "pdf_blob"}
        if "report_status" in values:
            values["status"] = values.pop("report_status")
        if rec.pdf is not None:
            values["pdf"] = rec.pdf
        now = int(time.time())
        if conn.execute(select(t.reports.c.exam).where(t.reports.c.exam == exam)).first() is None:
            conn.execute(insert(t.reports).values(exam=exam, updated_at=now, **values))
        else:
            conn.execute(update(t.reports).where(t.reports.c.exam == exam).values(updated_at=now, **values))

    # -- reading -----------------------------------------------------------------------------
    def patient(self, conn: Connection, hospital: str, issuer: str, patient_id: str) -> Any:
        return conn.execute(select(t.patients).where(and_(
            t.patients.c.hospital == hospital, t.patients.c.issuer == issuer,
            t.patients.c.patient_id == patient_id))).first()

    def patients_by_id_card(self, number: str) -> list[str]:
        """The ids of patient records with this ID card number (blind index: exact match only)."""
        with self.store.engine.connect() as conn:
            return [r.id for r in conn.execute(select(t.patients.c.id).where(
                t.patients.c.id_card_blind == self.keys.blind("id", number)))]

    def exam(self, hospital: str, accession: str) -> dict[str, Any] | None:
        """An exam with its patient (personal data unsealed, for authorised callers) and report."""
        with self.store.engine.connect() as conn:
            e = conn.execute(select(t.exams).where(and_(
                t.exams.c.hospital == hospital, t.exams.c.accession == accession))).first()
            if e is None:
                return None
            p = conn.execute(select(t.patients).where(t.patients.c.id == e.patient)).one()
            r = conn.execute(select(t.reports).where(t.reports.c.exam == e.id)).first()
            visits = conn.execute(select(t.visits).where(t.visits.c.patient == p.id)).all()
        report = None if r is None else {
            k: getattr(r, k) for k in ("findings", "conclusion", "reporting_doctor", "reported_at",
                                       "reviewing_doctor", "reviewed_at", "status", "pdf_path")} | {
            "has_pdf": r.pdf is not None}
        return {"id": e.id, "accession": e.accession, "exam_type": e.exam_type, "exam_item": e.exam_item,
                "body_part": e.body_part, "request": e.request, "status": e.status, "scheduled": e.scheduled,
                "study_uid": e.study_uid, "source": e.source,
                "patient": {"id": p.id, "patient_id": p.patient_id, "issuer": p.issuer, "name": p.name,
                            "sex": p.sex, "birth_date": p.birth_date,
                            "id_card": self.unseal(p.id_card_sealed, "id_card"),
                            "phone": self.unseal(p.phone_sealed, "phone"),
                            "address": self.unseal(p.address_sealed, "address")},
                "visits": [{"kind": v.kind, "number": v.number, "bed": v.bed, "department": v.department}
                           for v in visits],
                "report": report}
