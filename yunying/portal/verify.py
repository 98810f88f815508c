"""Proving who one is: an SMS code to the phone on record, or ID card number + name; then the
exam is bound to the patient's account and a short patient access token is minted.

Codes: 6 digits, valid CODE_TTL, one use, a new one after RESEND_AFTER, locked for LOCK_SECONDS
after MAX_FAILURES wrong tries (per phone); ID card tries (and wrong phones) lock the exam the
same way. Sends are also limited per client address (ADDRESS_SENDS per hour). Every one of these
counts is the shared, store-backed throttle's (yunying.auth.throttle: one mechanism, every
process), and each wrong answer also counts in the address throttle of the login page.
"""
from __future__ import annotations

import hmac
import secrets
import time
from typing import Any

from sqlalchemy import and_, insert, select, update

from yunying.auth import throttle, tokens
from yunying.auth.errors import BadCredentials, Forbidden, NotFound
from yunying.auth.schema import capability_tokens
from yunying.auth.store import Store
from yunying.errors import ArchiveError
from yunying.portal.keyed import code_digest, normalise, pseudonym
from yunying.portal.schema import accounts, bindings, codes, exams
from yunying.portal.sms import SmsFailed, SmsGateway

CODE_TTL = 5 * 60
RESEND_AFTER = 60
MAX_FAILURES = 5
LOCK_SECONDS = 15 * 60
ADDRESS_SENDS = 10
RESEND = throttle.Limit("sms.resend", 1, RESEND_AFTER, RESEND_AFTER)  # per phone
SENDS = throttle.Limit("sms.address", ADDRESS_SENDS, 3600, 3600)  # per client address
WRONG_CODES = throttle.Limit("sms.code", MAX_FAILURES, LOCK_SECONDS, LOCK_SECONDS)  # per phone
WRONG_ANSWERS = throttle.Limit("exam.id", MAX_FAILURES, LOCK_SECONDS, LOCK_SECONDS)  # per exam


class TooSoon(ArchiveError):
    """Asked again before the wait is over (resend interval, address limit)."""

    http_status = 429

    def __init__(self, reason: str, retry_after: int) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class GatewayFailed(ArchiveError):
    """The SMS gateway did not take the message (its reason; no phone number)."""

    http_status = 502


class Locked(Forbidden):
    """Too many wrong tries: locked for a while."""


def _wait(store: Store, subject: str, limit: throttle.Limit) -> int:
    """The seconds `subject` still waits under `limit` (0: none)."""
    try:
        throttle.check(store, subject, limit)
    except throttle.TooManyAttempts as exc:
        return max(exc.retry_after, 1)
    return 0


def _wrong(store: Store, address: str, subject: str, limit: throttle.Limit) -> int:
    """Count a wrong answer against `subject` and against the address (the login page's throttle)."""
    if address:
        throttle.failed(store, address)
    return throttle.failed(store, subject, limit)


def _check_address(store: Store, address: str) -> None:
    """TooManyAttempts (429) while the address waits after too many wrong answers anywhere."""
    if address:
        throttle.check(store, address)


def phone_account(phone_hash: str) -> str:
    return "p_" + phone_hash[:24]


def _check_exam_lock(store: Store, exam: Any) -> None:
    if exam is not None and _wait(store, str(exam.id), WRONG_ANSWERS):
        raise Locked("too many wrong tries for this exam; try again later")


def send_code(store: Store, key: bytes, gateway: SmsGateway, exam: Any | None, phone: str, address: str) -> int:
    """Send a new code to `phone` (the exam's phone on record, or a known account's); returns the
    seconds until another may be asked."""
    now = int(time.time())
    ph = pseudonym(key, "phone", phone)
    _check_address(store, address)
    _check_exam_lock(store, exam)
    if exam is not None and (exam.phone_hash is None or not hmac.compare_digest(exam.phone_hash, ph)):
        _wrong(store, address, str(exam.id), WRONG_ANSWERS)  # guessing the phone of a found report
        raise BadCredentials("this is not the phone number on record for this exam")
    with store.engine.connect() as conn:
        if exam is None and conn.execute(select(accounts.c.id).where(accounts.c.id == phone_account(ph))).first() is None:
            raise NotFound("no exams are bound to this phone number yet; scan the code on your report")
        row = conn.execute(select(codes.c.phone_hash).where(codes.c.phone_hash == ph)).first()
    if _wait(store, ph, WRONG_CODES):
        raise Locked("too many wrong codes; try again later")
    if wait := _wait(store, ph, RESEND):
        raise TooSoon(f"a code was just sent; ask again in {wait} s", wait)
    if wait := _wait(store, address, SENDS):
        raise TooSoon("too many codes asked from this address; try again later", wait)
    throttle.failed(store, ph, RESEND)
    throttle.failed(store, address, SENDS)
    code = f"{secrets.randbelow(10 ** 6):06d}"
    values = {"code_hash": code_digest(key, ph, code), "expires_at": now + CODE_TTL}
    with store.engine.begin() as conn:
        if row is None:
            conn.execute(insert(codes).values(phone_hash=ph, **values))
        else:
            conn.execute(update(codes).where(codes.c.phone_hash == ph).values(**values))
    try:
        gateway.send_code(normalise("phone", phone), code)
    except (SmsFailed, OSError) as exc:  # the vendor refused, or the outbox file could not be written
        with store.engine.begin() as conn:  # nothing was sent: the code is void and a retry is allowed at once
            conn.execute(update(codes).where(codes.c.phone_hash == ph).values(expires_at=now))
        throttle.clear(store, ph, RESEND)
        raise GatewayFailed(f"the SMS could not be sent ({type(exc).__name__}); try again") from None
    return RESEND_AFTER


def check_code(store: Store, key: bytes, exam: Any | None, phone: str, code: str, address: str = "") -> str:
    """The phone's account once `code` is right (the code is then used up); binds the exam."""
    now = int(time.time())
    ph = pseudonym(key, "phone", phone)
    _check_address(store, address)
    if _wait(store, ph, WRONG_CODES):
        raise Locked("too many wrong codes; try again later")
    with store.engine.begin() as conn:
        row = conn.execute(select(codes).where(codes.c.phone_hash == ph)).first()
        if row is None:
            raise BadCredentials("no code was sent to this phone; ask for one")
        if now >= row.expires_at:
            raise BadCredentials("the code has expired; ask for a new one")
        right = hmac.compare_digest(row.code_hash, code_digest(key, ph, str(code).strip()))
        if right:
            conn.execute(update(codes).where(codes.c.phone_hash == ph).values(expires_at=now))  # one use
    if not right:
        if _wrong(store, address, ph, WRONG_CODES):
            with store.engine.begin() as conn:  # locked: this code is void as well
                conn.execute(update(codes).where(codes.c.phone_hash == ph).values(expires_at=now))
            raise Locked("too many wrong codes; try again later")
        raise BadCredentials("wrong code")
    throttle.clear(store, ph, WRONG_CODES)
    if exam is not None and exam.phone_hash != ph:
        raise BadCredentials("this is not the phone number on record for this exam")
    return _bind(store, phone_account(ph), "phone", normalise("phone", phone)[-4:], exam, now,
                 exams.c.phone_hash == ph)


def check_id(store: Store, key: bytes, exam: Any, id_number: str, name: str, address: str = "") -> str:
    """The ID card's account once number and name match the exam's record; binds the exam."""
    now = int(time.time())
    _check_address(store, address)
    _check_exam_lock(store, exam)
    ih, nh = pseudonym(key, "id", id_number), pseudonym(key, "name", name)
    if exam.id_hash is None or exam.name_hash is None or not (
            hmac.compare_digest(exam.id_hash, ih) & hmac.compare_digest(exam.name_hash, nh)):
        if _wrong(store, address, str(exam.id), WRONG_ANSWERS):
            raise Locked("too many wrong tries for this exam; try again later")
        raise BadCredentials("the ID card number or the name does not match the exam's record")
    return _bind(store, "i_" + ih[:24], "id", normalise("id", id_number)[-4:], exam, now,
                 and_(exams.c.id_hash == ih, exams.c.name_hash == nh))


def _bind(store: Store, account: str, kind: str, hint: str, exam: Any | None, now: int, same_patient: Any) -> str:
    """Bind the scanned exam, and every other exam recorded with the same verified phone (or
    ID card + name): the patient's other exams at the hospital appear without scanning each."""
    with store.engine.begin() as conn:
        if conn.execute(select(accounts.c.id).where(accounts.c.id == account)).first() is None:
            conn.execute(insert(accounts).values(id=account, kind=kind, hint=hint, created_at=now))
        bound = set(conn.execute(select(bindings.c.exam_id).where(bindings.c.account_id == account)).scalars())
        found = set(conn.execute(select(exams.c.id).where(same_patient)).scalars())
        for exam_id in sorted(found - bound):
            conn.execute(insert(bindings).values(account_id=account, exam_id=exam_id, bound_at=now))
        if exam is not None and exam.id in bound:  # scanned again: it moves to the top
            conn.execute(update(bindings).where(bindings.c.account_id == account, bindings.c.exam_id == exam.id)
                         .values(bound_at=now))
    if exam is not None:  # proven: the exam's count of wrong answers starts afresh
        throttle.clear(store, str(exam.id), WRONG_ANSWERS)
    return account


def account_exams(store: Store, account: str) -> list[dict[str, Any]]:
    """The account's deliverable exams (bound, delivery on, exam token not revoked), newest binding first."""
    now = int(time.time())
    q = (select(exams.c.id, exams.c.study_uid, exams.c.hospital_id, exams.c.accession, bindings.c.bound_at)
         .join(bindings, bindings.c.exam_id == exams.c.id)
         .join(capability_tokens, capability_tokens.c.id == exams.c.capability_id)
         .where(bindings.c.account_id == account, exams.c.delivery_off.is_(False),
                capability_tokens.c.revoked_at.is_(None), capability_tokens.c.expires_at > now)
         .order_by(bindings.c.bound_at.desc()))
    with store.engine.connect() as conn:
        return [{"exam": r.id, "study": r.study_uid, "hospital": r.hospital_id, "accession": r.accession,
                 "bound_at": r.bound_at} for r in conn.execute(q)]


def session(store: Store, account: str, found: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A patient access token seeing exactly the account's exams (view and download): `found`,
    the deliverable exams and history the portal worked out, else the bound exams."""
    found = account_exams(store, account) if found is None else found
    if not found:
        raise NotFound("no exams are bound to this account")
    token, ttl = tokens.issue_access_token(
        store, kind="patient", subject=account, hospital=found[0]["hospital"], studies=[e["study"] for e in found],
        permissions=["dicomweb.read", "download"])
    with store.engine.connect() as conn:
        hint = conn.execute(select(accounts.c.hint).where(accounts.c.id == account)).scalar_one()
    return {"access_token": token, "token_type": "Bearer", "expires_in": ttl, "account": account,
            "hint": hint, "exams": found}
