"""One throttle per client address for every secret a caller may guess: passwords on the login
page, second-factor codes, current passwords at a change, access codes of shared links.

Beside the per-account lockout (yunying.auth.passwords), which stops guessing one account, it
stops one address guessing many: after the policy's `address_failures` wrong answers within
`lockout_minutes`, the address waits `lockout_minutes` (429 with Retry-After). Counted in the
app-state store, so every process and worker shares the count.
"""
from __future__ import annotations

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from yunying.auth import clock, secpolicy
from yunying.auth.schema import address_failures
from yunying.auth.store import Store
from yunying.errors import ArchiveError


class TooManyAttempts(ArchiveError):
    """This address guessed wrong too often; it waits `retry_after` seconds."""

    http_status = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed attempts from this address; try again in {retry_after} s")
        self.retry_after = retry_after


def check(store: Store, address: str) -> None:
    """TooManyAttempts while the address is blocked."""
    now = clock.seconds()
    with store.engine.connect() as conn:
        until = conn.execute(select(address_failures.c.blocked_until)
                             .where(address_failures.c.address == address[:64])).scalar()
    if until and now < until:
        raise TooManyAttempts(int(until - now))


def failed(store: Store, address: str) -> None:
    """Count one wrong answer from `address`; blocks it when the policy's limit is reached."""
    policy = secpolicy.load(store)
    now, window = clock.seconds(), policy.lockout_minutes * 60
    a = address_failures.c
    address = address[:64]
    with store.engine.begin() as conn:
        row = conn.execute(select(address_failures).where(a.address == address)).first()
        if row is None:
            try:
                with conn.begin_nested():
                    conn.execute(insert(address_failures).values(address=address, window_start=now, failures=1))
                return
            except IntegrityError:  # a parallel request inserted it
                row = conn.execute(select(address_failures).where(a.address == address)).first()
        assert row is not None
        if now - row.window_start >= window:  # a new window
            conn.execute(update(address_failures).where(a.address == address)
                         .values(window_start=now, failures=1, blocked_until=None))
            return
        conn.execute(update(address_failures).where(a.address == address).values(failures=a.failures + 1))
        conn.execute(update(address_failures).where(a.address == address, a.failures >= policy.address_failures)
                     .values(blocked_until=now + window, failures=0, window_start=now))
