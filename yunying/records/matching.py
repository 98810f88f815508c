"""Images matched to exams (issue 15 part 4): by accession number, then by patient ID + study
date + modality (devices without a worklist); what stays ambiguous or unknown waits in a queue
an operator resolves. A sweep (every `records_match_seconds`, or on demand) also retries the
queue, so a study whose order arrives after its images is matched without anyone's help.
"""
from __future__ import annotations

import time
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection

import yunying.records.schema as t
from index.query import Query
from yunying.records.store import Event, RecordStore

SWEEP_LIMIT = 10_000  # newest studies looked at per sweep


def _v(answer: dict[str, Any], tag: str) -> list[Any]:
    return list((answer.get(tag) or {}).get("Value") or [])


def candidates(conn: Connection, hospital: str, answer: dict[str, Any]) -> tuple[list[str], str]:
    """Exam ids this study answer may belong to, and the rule (or the reason there are none)."""
    accession = (_v(answer, "00080050") or [""])[0]
    if accession:
        row = conn.execute(select(t.exams.c.id, t.exams.c.study_uid).where(and_(
            t.exams.c.hospital == hospital, t.exams.c.accession == accession))).first()
        if row is not None:
            if row.study_uid and row.study_uid != answer["0020000D"]["Value"][0]:
                return [], "its accession number's exam is matched to another study"
            return [row.id], "accession"
    pid, date = (_v(answer, "00100020") or [""])[0], (_v(answer, "00080020") or [""])[0]
    modalities = set(_v(answer, "00080061"))
    if not pid or not date:
        return [], "no exam with this accession number, and no patient ID or study date to match by"
    rows = conn.execute(select(t.exams.c.id, t.exams.c.exam_type, t.exams.c.scheduled).select_from(
        t.exams.join(t.patients, t.patients.c.id == t.exams.c.patient)).where(and_(
            t.exams.c.hospital == hospital, t.patients.c.patient_id == pid, t.exams.c.study_uid.is_(None),
            t.exams.c.scheduled.like(f"{date}%"), t.exams.c.status != "cancelled"))).all()
    found = [r.id for r in rows if not modalities or not r.exam_type or r.exam_type in modalities]
    if len(found) == 1:
        return found, "patient+date+modality"
    return found, ("no exam of this patient on this date with this modality" if not found
                   else "several exams of this patient on this date with this modality")


def link(conn: Connection, out: list[Event], records: RecordStore, exam: str, study: str) -> None:
    """Record the study on the exam, fill its body part from the mapping table when it has none."""
    e = conn.execute(select(t.exams).where(t.exams.c.id == exam)).one()
    values: dict[str, Any] = {"study_uid": study, "updated_at": int(time.time())}
    if not e.body_part and e.exam_item:
        values["body_part"] = records.body_part_of(conn, e.hospital, e.exam_item)
    conn.execute(update(t.exams).where(t.exams.c.id == exam).values(**values))
    out.append(records.exam_event(conn, exam))


def match_new_studies(records: RecordStore, archive: Any) -> dict[str, int]:
    """One sweep over the newest studies not matched yet; returns counts by outcome."""
    counts = {"matched": 0, "queued": 0, "seen": 0}
    now = int(time.time())
    with records.store.engine.connect() as conn:
        linked = {r.study_uid for r in conn.execute(select(t.exams.c.study_uid).where(t.exams.c.study_uid.isnot(None)))}
        changed = conn.execute(select(func.max(t.exams.c.updated_at))).scalar() or 0
        # resolved, or queued and looked at since the last change of any exam: nothing new to find
        settled = {r.study_uid for r in conn.execute(select(t.unmatched.c.study_uid).where(or_(
            t.unmatched.c.resolved_at.isnot(None), t.unmatched.c.checked_at > changed)))}
    for answer in archive.search(Query("STUDY", limit=SWEEP_LIMIT)):
        study = answer["0020000D"]["Value"][0]
        if study in linked or study in settled:
            continue
        counts["seen"] += 1
        owner = archive.owner(study)
        hospital = owner[0] if owner else "default"
        with records.transaction() as (conn, out):
            found, why = candidates(conn, hospital, answer)
            if len(found) == 1:
                link(conn, out, records, found[0], study)
                conn.execute(delete(t.unmatched).where(t.unmatched.c.study_uid == study))
                counts["matched"] += 1
                continue
            queued = conn.execute(select(t.unmatched.c.study_uid).where(t.unmatched.c.study_uid == study)).first()
            if queued is None:
                conn.execute(insert(t.unmatched).values(study_uid=study, hospital=hospital, reason=why,
                                                        candidates=found, created_at=now, checked_at=now))
            else:
                conn.execute(update(t.unmatched).where(t.unmatched.c.study_uid == study).values(
                    reason=why, candidates=found, checked_at=now))
            counts["queued"] += 1
    return counts


def plain(row: Any) -> dict[str, Any]:
    """A result row as a dict with str keys (SQLAlchemy's quoted_name keys are not JSON-serialisable by orjson)."""
    return {str(k): v for k, v in row._mapping.items()}


class NotQueued(LookupError):
    """No open queue entry for the study (in the caller's hospitals)."""


def resolve(records: RecordStore, study: str, exam: str | None, by: str, hospitals: set[str] | None) -> dict[str, Any]:
    """An operator's decision: the study belongs to `exam` (of the same hospital), or to none (None)."""
    with records.transaction() as (conn, out):
        q = conn.execute(select(t.unmatched).where(and_(
            t.unmatched.c.study_uid == study, t.unmatched.c.resolved_at.is_(None)))).first()
        if q is None or (hospitals is not None and q.hospital not in hospitals):
            raise NotQueued("no open unmatched entry for this study")
        if exam is not None:
            e = conn.execute(select(t.exams.c.hospital, t.exams.c.study_uid).where(t.exams.c.id == exam)).first()
            if e is None or e.hospital != q.hospital:
                raise NotQueued("no such exam in the study's hospital")
            if e.study_uid and e.study_uid != study:
                raise ValueError("exam: it is matched to another study already")
            link(conn, out, records, exam, study)
        conn.execute(update(t.unmatched).where(t.unmatched.c.study_uid == study).values(
            resolved_at=int(time.time()), resolved_by=by[:64], exam=exam))
    return {"study": study, "exam": exam}


def queue(records: RecordStore, hospitals: set[str] | None, limit: int = 200) -> list[dict[str, Any]]:
    """Open unmatched studies, oldest first, with their candidate exams (numbers and items, no names)."""
    q = select(t.unmatched).where(t.unmatched.c.resolved_at.is_(None)).order_by(t.unmatched.c.created_at).limit(limit)
    if hospitals is not None:
        q = q.where(t.unmatched.c.hospital.in_(sorted(hospitals)))
    out = []
    with records.store.engine.connect() as conn:
        for u in conn.execute(q):
            exams = conn.execute(select(t.exams.c.id, t.exams.c.accession, t.exams.c.exam_type, t.exams.c.exam_item,
                                        t.exams.c.scheduled).where(t.exams.c.id.in_(u.candidates or []))).all()
            out.append({"study": u.study_uid, "hospital": u.hospital, "reason": u.reason, "queued_at": u.created_at,
                        "candidates": [plain(e) for e in exams]})
    return out


def open_exams(records: RecordStore, hospital: str, patient_id: str = "", accession: str = "",
               limit: int = 50) -> list[dict[str, Any]]:
    """Exams without a study, to choose from when resolving (by patient ID or accession)."""
    q = select(t.exams.c.id, t.exams.c.accession, t.exams.c.exam_type, t.exams.c.exam_item, t.exams.c.scheduled,
               t.patients.c.patient_id).select_from(t.exams.join(t.patients, t.patients.c.id == t.exams.c.patient)).where(
        and_(t.exams.c.hospital == hospital, t.exams.c.study_uid.is_(None))).order_by(t.exams.c.scheduled.desc()).limit(limit)
    if patient_id:
        q = q.where(t.patients.c.patient_id == patient_id)
    if accession:
        q = q.where(t.exams.c.accession == accession)
    with records.store.engine.connect() as conn:
        return [plain(r) for r in conn.execute(q)]


def set_body_part(records: RecordStore, hospital: str, item: str, part: str) -> None:
    """Map an exam item to a body part ("" removes the row); hospital "*" applies to all."""
    with records.store.engine.begin() as conn:
        conn.execute(delete(t.body_parts).where(and_(t.body_parts.c.hospital == hospital,
                                                     t.body_parts.c.exam_item == item)))
        if part:
            conn.execute(insert(t.body_parts).values(hospital=hospital, exam_item=item, body_part=part))


def body_parts(records: RecordStore, hospitals: set[str] | None) -> list[dict[str, str]]:
    q = select(t.body_parts).order_by(t.body_parts.c.hospital, t.body_parts.c.exam_item)
    if hospitals is not None:
        q = q.where(t.body_parts.c.hospital.in_(sorted(hospitals | {"*"})))
    with records.store.engine.connect() as conn:
        return [plain(r) for r in conn.execute(q)]
