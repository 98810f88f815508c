"""One throttle for every secret a caller may guess and every costly thing a caller may ask for:
passwords on the login page, second-factor codes, current passwords at a change, access codes of
shared links, the portal's SMS codes and ID card checks, and SMS sends.

Counted in the app-state store (`address_failures`, one row per counted subject), so every
process and worker shares the counts. The default limit is the policy's per-address one: after
`address_failures` wrong answers within `lockout_minutes`, the address waits `lockout_minutes`
(429 with Retry-After). Beside it, the per-account lockout (yunying.auth.passwords) stops guessing
one account. Other limits (a `Limit`: so many events per subject in a window, then a wait) are
keyed `<kind>:<subject>` in the same table: the portal's (yunying.portal.verify) are per phone,
per exam and per address.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from yunying.auth import clock, secpolicy
from yunying.auth.schema import address_failures
from yunying.auth.store import Store
from yunying.errors import ArchiveError


class TooManyAttempts(ArchiveError):
    """This address (or subject) reached its limit; it waits `retry_after` seconds."""

    http_status = 429

    def __init__(self, retry_after: int, reason: str = "") -> None:
        super().__init__(reason or f"too many failed attempts from this address; try again in {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Limit:
    """At most `most` events of `kind` per subject within `window` seconds; then `block` seconds' wait."""

    kind: str
    most: int
    window: int
    block: int

    def key(self, subject: str) -> str:
        return f"{self.kind}:{subject}"[:64]


def _policy_limit(store: Store) -> Limit:
    policy = secpolicy.load(store)
    return Limit("", policy.address_failures, policy.lockout_minutes * 60, policy.lockout_minutes * 60)


def _key(subject: str, limit: Limit | None) -> str:
    return subject[:64] if limit is None else limit.key(subject)  # the address alone: rows kept from before


def check(store: Store, subject: str, limit: Limit | None = None) -> None:
    """TooManyAttempts while the subject (by default: a client address, the policy's limit) waits."""
    now = clock.seconds()
    with store.engine.connect() as conn:
        until = conn.execute(select(address_failures.c.blocked_until)
                             .where(address_failures.c.address == _key(subject, limit))).scalar()
    if until and now < until:
        raise TooManyAttempts(int(until - now))


def failed(store: Store, subject: str, limit: Limit | None = None) -> int:
    """Count one event (a wrong answer, a send) of `subject`; blocks it when the limit is reached.
    Returns the seconds it now waits (0: not blocked)."""
    limit = limit or _policy_limit(store)
    now = clock.seconds()
    a = address_failures.c
    key = _key(subject, limit if limit.kind else None)
    with store.engine.begin() as conn:
        row = conn.execute(select(address_failures).where(a.address == key)).first()
        if row is None:
            try:
                with conn.begin_nested():
                    conn.execute(insert(address_failures).values(address=key, window_start=now, failures=0))
            except IntegrityError:  # a parallel request inserted it
                pass
        elif now - row.window_start >= limit.window and not (row.blocked_until and now < row.blocked_until):
            conn.execute(update(address_failures).where(a.address == key)
                         .values(window_start=now, failures=0, blocked_until=None))  # a new window
        conn.execute(update(address_failures).where(a.address == key).values(failures=a.failures + 1))
        conn.execute(update(address_failures).where(a.address == key, a.failures >= limit.most)
                     .values(blocked_until=now + limit.block, failures=0, window_start=now))
        until = conn.execute(select(a.blocked_until).where(a.address == key)).scalar()
    return int(until - now) if until and now < until else 0


def clear(store: Store, subject: str, limit: Limit) -> None:
    """Forget a subject's count (a right answer ends the wrong ones; an SMS that was not sent)."""
    with store.engine.begin() as conn:
        conn.execute(delete(address_failures).where(address_failures.c.address == limit.key(subject)))
