"""Adding an exam by hand (issue 14 part 2): a signed-in patient names the hospital, the exam
number (accession), the exam date and the patient's name; when all match the hospital's record
the exam joins the account. Wrong tries count per account: five lock for 15 minutes (in the
shared, store-backed throttle, yunying.auth.throttle: every process sees the same count)."""
from __future__ import annotations

import hmac
import time
from typing import Any

from sqlalchemy import insert, select

from yunying.auth import throttle
from yunying.auth.errors import BadCredentials, NotFound
from yunying.auth.store import Store
from yunying.portal.keyed import pseudonym
from yunying.portal.schema import bindings, exams
from yunying.portal.verify import LOCK_SECONDS, MAX_FAILURES, Locked

WRONG_CLAIMS = throttle.Limit("claim", MAX_FAILURES, LOCK_SECONDS, LOCK_SECONDS)  # per account


def find_exam(store: Store, hospital: str, accession: str) -> Any:
    with store.engine.connect() as conn:
        row = conn.execute(select(exams).where(exams.c.hospital_id == hospital, exams.c.accession == accession,
                                               exams.c.delivery_off.is_(False))).first()
    return row


def claim(store: Store, key: bytes, account: str, exam: Any | None, name: str, date_matches: bool) -> str:
    """Bind `exam` to `account` when the name and date match; the exam's id."""
    try:
        throttle.check(store, account, WRONG_CLAIMS)
    except throttle.TooManyAttempts:
        raise Locked("too many wrong tries; try again later") from None
    name_ok = exam is not None and exam.name_hash is not None and hmac.compare_digest(
        exam.name_hash, pseudonym(key, "name", name))
    if not (name_ok and date_matches):
        if throttle.failed(store, account, WRONG_CLAIMS):
            raise Locked("too many wrong tries; try again later")
        if exam is None:
            raise NotFound("no exam with this number at this hospital")
        raise BadCredentials("the name or the date does not match the exam's record")
    assert exam is not None  # name_ok implies it
    with store.engine.begin() as conn:
        done = conn.execute(select(bindings.c.exam_id).where(bindings.c.account_id == account,
                                                             bindings.c.exam_id == exam.id)).first()
        if done is None:
            conn.execute(insert(bindings).values(account_id=account, exam_id=exam.id, bound_at=int(time.time())))
    return str(exam.id)
