"""Exam tokens: one unguessable capability token (kind "patient") per exam, for its QR code.

The token names the exam; it opens nothing by itself. It carries an access code nobody is told,
so `POST /api/auth/exchange` refuses it: only the portal's verification (SMS code or ID card +
name) turns it into an access token, bound to the exams of the verified patient.
"""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update

from yunying.auth.directory import hash_password
from yunying.auth.errors import InvalidRequest, NotFound
from yunying.auth.keys import digest
from yunying.auth.schema import access_tokens, capability_tokens, fits
from yunying.auth.store import Store
from yunying.errors import ArchiveError
from yunying.pii import PiiKeys
from yunying.portal.keyed import exam_token, normalise, pseudonym
from yunying.portal.schema import PHONE, exams


class DeliveryOff(ArchiveError):
    """The hospital switched online delivery of this exam (or patient) off (the console)."""

    http_status = 410


EXAM_TOKEN_LIFETIME = 366 * 86400  # the longest a capability token may live (yunying.auth.tokens)


@dataclass(frozen=True)
class Contact:
    """What the PACS/RIS (or the study's header) says about the patient; all optional."""

    phone: str = ""
    id_number: str = ""
    name: str = ""

    def columns(self, key: bytes, keys: PiiKeys) -> dict[str, Any]:
        """The hashed (and, for the phone, sealed) columns for the non-empty fields (an empty
        field leaves the stored one)."""
        out: dict[str, Any] = {}
        phone = normalise("phone", self.phone)
        if self.phone:
            if not 5 <= len(phone) <= 15:
                raise InvalidRequest("phone: 5-15 digits")
            out |= {"phone_hash": pseudonym(key, "phone", phone), "phone_last4": phone[-4:],
                    "phone_sealed": keys.seal(phone, PHONE)}
        if self.id_number:
            out["id_hash"] = pseudonym(key, "id", self.id_number)
        if self.name:
            out["name_hash"] = pseudonym(key, "name", self.name)
        return out


def _new_capability(conn: Any, token: str, hospital: str, study: str, created_by: str, now: int) -> str:
    cap_id = "c_" + secrets.token_hex(8)
    conn.execute(insert(capability_tokens).values(
        id=cap_id, token_hash=digest(token), label="exam", hospital_id=hospital, studies=[study], series=[],
        permissions=["download", "view"], kind="patient", not_before=now, expires_at=now + EXAM_TOKEN_LIFETIME,
        code_hash=hash_password(secrets.token_urlsafe(24), "code", 4),  # never told: exchange refuses it
        failed_attempts=0, created_by=created_by, created_at=now))
    return cap_id


def issue_exam(store: Store, key: bytes, keys: PiiKeys, *, hospital: str, study: str, accession: str, contact: Contact,
               created_by: str, renew: bool = False) -> dict[str, Any]:
    """The exam's token (the same one again unless `renew`), creating the exam on first call."""
    now = int(time.time())
    cols = contact.columns(key, keys)
    fits(exams, {"hospital_id": hospital, "study_uid": study, "accession": accession})
    with store.engine.begin() as conn:
        row = conn.execute(select(exams).where(exams.c.hospital_id == hospital, exams.c.study_uid == study)).first()
        if row is None:
            token = exam_token(key, hospital, study, 0)
            exam_id = "e_" + secrets.token_hex(8)
            cap = _new_capability(conn, token, hospital, study, created_by, now)
            conn.execute(insert(exams).values(id=exam_id, hospital_id=hospital, study_uid=study, accession=accession,
                                              capability_id=cap, generation=0, created_at=now, **cols))
            return {"exam": exam_id, "token": token, "created": True}
        cap_row = conn.execute(select(capability_tokens).where(capability_tokens.c.id == row.capability_id)).first()
        stale = cap_row is None or cap_row.revoked_at is not None or cap_row.expires_at - now < 30 * 86400
        generation = row.generation + (1 if renew or stale else 0)
        token = exam_token(key, hospital, study, generation)
        values = dict(cols, accession=accession or row.accession)
        if generation != row.generation:
            conn.execute(update(capability_tokens).where(capability_tokens.c.id == row.capability_id,
                                                         capability_tokens.c.revoked_at.is_(None)).values(revoked_at=now))
            values |= {"generation": generation, "capability_id": _new_capability(conn, token, hospital, study,
                                                                                  created_by, now)}
        conn.execute(update(exams).where(exams.c.id == row.id).values(**values))
    if generation != row.generation:
        store.revoked()
    return {"exam": row.id, "token": token, "created": False}


def remember_phone(store: Store, key: bytes, keys: PiiKeys, phone: str) -> None:
    """A phone just verified by SMS, sealed into its exams that have only its hash (rows from
    before sealing existed): notifications can reach it from now on."""
    ph = pseudonym(key, "phone", phone)
    with store.engine.begin() as conn:
        conn.execute(update(exams).where(exams.c.phone_hash == ph, exams.c.phone_sealed.is_(None))
                     .values(phone_sealed=keys.seal(normalise("phone", phone), PHONE)))


def phone_of(keys: PiiKeys, exam: Any) -> str:
    """The exam's phone in clear (for a notification), "" when none is kept."""
    return keys.unseal(exam.phone_sealed, PHONE) if exam.phone_sealed else ""


def made_by_patients(created_by: Any) -> Any:
    """The condition on capability_tokens.created_by for what patients' portal accounts made."""
    return created_by.like("p\\_%", escape="\\") | created_by.like("i\\_%", escape="\\")


def set_delivery(store: Store, hospital: str, study: str, on: bool) -> dict[str, Any]:
    """Switch online delivery of an exam on or off; off ends its patients' access tokens at once."""
    with store.engine.begin() as conn:
        row = conn.execute(select(exams.c.id).where(exams.c.hospital_id == hospital, exams.c.study_uid == study)).first()
        if row is None:
            raise NotFound("no QR code was issued for this exam")
        conn.execute(update(exams).where(exams.c.id == row.id).values(delivery_off=not on))
    if not on:
        end_patient_access(store, {study})
    return {"exam": row.id, "delivery": on}


def end_patient_access(store: Store, studies: set[str]) -> None:
    """End every patient access token that sees one of `studies`, and withdraw the patients'
    share links of them (their page says "withdrawn"), with every access token they gave;
    switching delivery back on does not revive them."""
    now, cap = int(time.time()), capability_tokens.c
    with store.engine.begin() as conn:
        live = conn.execute(select(access_tokens.c.id, access_tokens.c.studies).where(
            access_tokens.c.kind == "patient", access_tokens.c.revoked_at.is_(None),
            access_tokens.c.expires_at > now)).all()
        ids = [t.id for t in live if studies & set(t.studies)]
        if ids:
            conn.execute(update(access_tokens).where(access_tokens.c.id.in_(ids)).values(revoked_at=now))
        shares = conn.execute(select(cap.id, cap.studies).where(
            cap.kind == "share", cap.revoked_at.is_(None), cap.expires_at > now,
            made_by_patients(cap.created_by))).all()
        withdrawn = [c.id for c in shares if studies & set(c.studies)]
        if withdrawn:
            conn.execute(update(capability_tokens).where(cap.id.in_(withdrawn)).values(revoked_at=now))
            conn.execute(update(access_tokens).where(access_tokens.c.capability_id.in_(withdrawn))
                         .values(revoked_at=now))
    store.revoked()


def off_studies(store: Store, studies: list[str]) -> set[str]:
    """The studies among `studies` whose exam has delivery switched off."""
    with store.engine.connect() as conn:
        return set(conn.execute(select(exams.c.study_uid).where(
            exams.c.study_uid.in_(studies), exams.c.delivery_off.is_(True))).scalars()) if studies else set()


def exam_of_token(store: Store, token: str) -> Any:
    """The exam row a valid (unrevoked, unexpired) exam token names; NotFound otherwise."""
    now = int(time.time())
    with store.engine.connect() as conn:
        cap = conn.execute(select(capability_tokens).where(
            capability_tokens.c.token_hash == digest(token or ""), capability_tokens.c.kind == "patient")).first()
        if cap is None or cap.revoked_at is not None or not cap.not_before <= now < cap.expires_at:
            raise NotFound("unknown, expired or revoked exam code")
        row = conn.execute(select(exams).where(exams.c.capability_id == cap.id)).first()
    if row is None:
        raise NotFound("unknown, expired or revoked exam code")
    if row.delivery_off:
        raise DeliveryOff("online delivery of this exam is switched off by the hospital")
    return row
