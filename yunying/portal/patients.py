"""Online delivery switched off per patient (issue 14 part 9): the patient is a PatientID
qualified by its issuer (design rule 6), and, where the master index links it, every identity
of the same person. The switch is looked up whenever a study is about to reach a patient (exam
code, session, notification, share link), so exams stored after it was switched off are
withheld too, not only those that already had a QR code.

Withholding errs on the safe side: the whole MPI person counts (any link, automatic or by hand),
where widening what a patient SEES takes ID-number links only (`yunying.portal.history`).
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, Protocol

from sqlalchemy import Column, Integer, MetaData, String, Table, delete, insert, select
from sqlalchemy.engine import Connection

from index.query import Match, Query
from yunying.auth.store import Store, migration

meta = MetaData()
patients_off = Table(  # a patient whose online delivery the hospital switched off
    "portal_patients_off", meta,
    Column("issuer", String(200), primary_key=True),
    Column("patient_id", String(64), primary_key=True),
    Column("switched_by", String(64), nullable=False),
    Column("switched_at", Integer, nullable=False),
)


@migration("portal", 7)
def create_patients_off(conn: Connection) -> None:
    meta.create_all(conn, tables=[patients_off])


Patient = tuple[str, str]  # (issuer, patient_id)


class Persons(Protocol):
    """What this needs of the master index (yunying.mpi.linker.PatientIndex)."""

    def person_of(self, issuer: str, patient_id: str) -> str | None: ...
    def members(self, person_id: str) -> list[tuple[str, str]]: ...


def patients_of(archive: Any, studies: Iterable[str]) -> dict[str, Patient]:
    """(issuer, PatientID) of each stored study, as the index qualifies it (IssuerOfPatientID,
    else the sending institution or AE)."""
    uids = sorted(set(studies))
    found: dict[str, Patient] = {}
    for start in range(0, len(uids), 500):
        query = Query("STUDY", [Match("0020000D", "list", tuple(uids[start:start + 500]))], limit=500,
                      includefields={"00100020", "00100021"})
        for js in archive.search(query):
            def value(tag: str, js: dict[str, Any] = js) -> str:
                return str((js.get(tag, {}).get("Value") or [""])[0])
            found[value("0020000D")] = (value("00100021"), value("00100020"))
    return found


def switched_off(store: Store) -> set[Patient]:
    with store.engine.connect() as conn:
        return {(r.issuer, r.patient_id) for r in conn.execute(select(patients_off.c.issuer, patients_off.c.patient_id))}


def withheld(store: Store, archive: Any, persons: Persons | None, studies: Iterable[str]) -> set[str]:
    """The studies among `studies` whose patient (or a linked identity of the same person) has
    delivery switched off."""
    off = switched_off(store)
    if not off:
        return set()
    off_persons = {p for issuer, pid in off if persons is not None and (p := persons.person_of(issuer, pid))}
    out: set[str] = set()
    for study, patient in patients_of(archive, studies).items():
        if patient in off or (persons is not None and persons.person_of(*patient) in off_persons):
            out.add(study)
    return out


def set_patient(store: Store, patient: Patient, on: bool, by: str) -> None:
    """Switch delivery of one patient off (a row) or on again (no row)."""
    issuer, pid = patient
    with store.engine.begin() as conn:
        conn.execute(delete(patients_off).where(patients_off.c.issuer == issuer, patients_off.c.patient_id == pid))
        if not on:
            conn.execute(insert(patients_off).values(issuer=issuer, patient_id=pid, switched_by=by[:64],
                                                     switched_at=int(time.time())))
