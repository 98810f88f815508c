"""Passwords: argon2id hashes, login with a lockout after repeated failures, changes and resets."""
from __future__ import annotations

import secrets
import time
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from yunying.auth.errors import BadCredentials, InvalidRequest, NotFound
from yunying.auth.schema import login_failures, row_dict, users
from yunying.auth.store import Store

_hasher = PasswordHasher()
MIN_PASSWORD = 10
MAX_LOGIN_FAILURES = 5
LOGIN_LOCK_SECONDS = 15 * 60


def hash_password(password: str, name: str = "password", min_length: int = MIN_PASSWORD) -> str:
    """An argon2id hash of an acceptable password (or access code)."""
    if not isinstance(password, str) or not min_length <= len(password) <= 200:
        raise InvalidRequest(f"{name}: {min_length}-200 characters")
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """True when `password` matches the stored argon2 hash."""
    if not stored or not isinstance(password, str):
        return False
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def reset_password(store: Store, username: str, password: str | None = None) -> str:
    """Set a one-time password (generated unless given) that must be changed at the next login."""
    password = password or secrets.token_urlsafe(12)
    with store.engine.begin() as conn:
        done = conn.execute(update(users).where(users.c.username == username).values(
            password_hash=hash_password(password), must_change_password=True)).rowcount
        conn.execute(delete(login_failures).where(login_failures.c.username == username))  # unlocked
    if not done:
        raise NotFound(f"no user {username}")
    store.revoked()
    return password


def authenticate(store: Store, username: str, password: str) -> dict[str, Any]:
    """The user row for a correct password of an enabled user; BadCredentials otherwise.

    MAX_LOGIN_FAILURES wrong passwords in a row lock the username for LOGIN_LOCK_SECONDS.
    """
    now = int(time.time())
    with store.engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.username == username)).first()
        lock = conn.execute(select(login_failures.c.locked_until).where(login_failures.c.username == username)).first()
    if lock is not None and lock.locked_until and now < lock.locked_until:
        raise BadCredentials("too many failed logins; try again later")
    if row is None:
        _hasher.hash("timing")  # same cost whether or not the user exists
        raise BadCredentials("wrong username or password")
    if not verify_password(row.password_hash, password) or row.disabled:
        _count_failure(store, username, now)
        raise BadCredentials("wrong username or password")
    if lock is not None:
        with store.engine.begin() as conn:
            conn.execute(delete(login_failures).where(login_failures.c.username == username))
    return row_dict(row)


def _count_failure(store: Store, username: str, now: int) -> None:
    """One more failure, counted in SQL (parallel guesses all count) and committed."""
    f = login_failures.c
    with store.engine.begin() as conn:
        if conn.execute(update(login_failures).where(f.username == username)
                        .values(failures=f.failures + 1)).rowcount == 0:
            try:
                with conn.begin_nested():
                    conn.execute(insert(login_failures).values(username=username, failures=1))
            except IntegrityError:  # inserted meanwhile by a parallel guess
                conn.execute(update(login_failures).where(f.username == username).values(failures=f.failures + 1))
        conn.execute(update(login_failures).where(f.username == username, f.failures >= MAX_LOGIN_FAILURES)
                     .values(failures=0, locked_until=now + LOGIN_LOCK_SECONDS))


def change_password(store: Store, username: str, old: str, new: str) -> None:
    """Change one's own password (clears must_change_password)."""
    authenticate(store, username, old)
    if old == new:
        raise InvalidRequest("password: the new password must differ")
    with store.engine.begin() as conn:
        conn.execute(update(users).where(users.c.username == username).values(
            password_hash=hash_password(new), must_change_password=False))
    store.revoked()
