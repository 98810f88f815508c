"""The patient's whole history at the hospital (issue 14 part 3, issue 15 part 5): besides the
exams bound to the portal account, every study of the same patient that the master index links
deterministically.

The rule (README, "The patient portal"): a study joins the patient's history when
- its patient is the same PatientID + issuer as a bound exam's, or
- its patient is an identity of the same MPI person whose verified resident ID number (check
  character and birth date valid) equals that of a bound exam's identity.
Links by score (name, birth date, sex, phone), pending review items and identities without a
valid ID number never widen what a patient sees: a look-alike (the same name and birth date)
must not show up in someone's history. A link an admin undid takes the identity out of the
person, so it is out of the history too. Only studies of the hospitals of the bound exams count
("at this hospital"), and studies whose delivery is switched off never do.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select

from index.query import Match, Query, StudyScope
from yunying.mpi.schema import identities
from yunying.portal.patients import Patient, patients_of

MAX_STUDIES = 2000  # a lifetime of exams; a token carries its studies


def id_linked(engine: Any, patient: Patient) -> set[Patient]:
    """The identities of the patient's MPI person sharing its verified ID number (itself included)."""
    issuer, pid = patient
    ident = identities.c
    with engine.connect() as conn:
        me = conn.execute(select(ident.person_id, ident.id_blind).where(
            ident.issuer == issuer, ident.patient_id == pid)).first()
        if me is None or not me.id_blind:
            return {patient}
        rows = conn.execute(select(ident.issuer, ident.patient_id).where(
            ident.person_id == me.person_id, ident.id_blind == me.id_blind, ident.id_invalid == 0)).all()
    return {patient} | {(r.issuer, r.patient_id) for r in rows}


def history_studies(archive: Any, engine: Any | None, bound: Iterable[str], hospitals: Iterable[str]) -> list[str]:
    """Study UIDs of the patient's history (the bound studies' patients and their ID-number
    links), in the given hospitals, bound studies excluded."""
    bound = set(bound)
    anchors = set(patients_of(archive, bound).values())
    wanted: set[Patient] = set()
    for patient in anchors:
        wanted |= id_linked(engine, patient) if engine is not None else {patient}
    scope = StudyScope(hospitals=frozenset(hospitals))
    found: list[str] = []
    for issuer, pid in sorted(wanted):
        if not pid:
            continue  # a study without a PatientID names nobody: never widen by it
        query = Query("STUDY", [Match("00100020", "single", (pid,)), Match("00100021", "single", (issuer,))],
                      limit=MAX_STUDIES, scope=scope)
        found += [str(js["0020000D"]["Value"][0]) for js in archive.search(query)]
    return sorted(set(found) - bound)[:MAX_STUDIES]
