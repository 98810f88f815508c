"""Passwords: argon2id hashes, the security policy's rules (length, classes, history, expiry),
login with a lockout after repeated failures, changes and resets."""
from __future__ import annotations

import logging
import secrets
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from yunying.auth import clock, secpolicy
from yunying.auth.errors import BadCredentials, InvalidRequest, NotFound
from yunying.auth.schema import login_failures, password_history, row_dict, users
from yunying.auth.store import Store

log = logging.getLogger("yunying.auth")
_hasher = PasswordHasher()  # argon2id (argon2-cffi's default type)
MIN_PASSWORD = secpolicy.DEFAULT.password_min_length


class Locked(BadCredentials):
    """Too many wrong passwords or codes: the account waits `retry_after` seconds."""

    http_status = 423

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many failed logins; try again later")
        self.retry_after = retry_after


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


def remember(conn: Any, username: str, password_hash: str) -> None:
    """Keep a password in the user's history (reuse, expiry), trimmed to the 24 the policy may ask."""
    conn.execute(insert(password_history).values(username=username, password_hash=password_hash,
                                                 changed_at=clock.seconds()))
    h = password_history.c
    keep = select(h.id).where(h.username == username).order_by(h.id.desc()).limit(24).scalar_subquery()
    conn.execute(delete(password_history).where(h.username == username, h.id.not_in(keep)))


def set_password(store: Store, username: str, password: str, *, must_change: bool,
                 policy: secpolicy.Policy | None = None) -> None:
    """Store a new password: one's own choice must meet the policy (rules and history)."""
    policy = policy or secpolicy.load(store)
    if must_change:  # a one-time password (generated, or an admin's): replaced at the first login
        hash_password(password)
    else:
        secpolicy.check_password(policy, username, password)
    with store.engine.begin() as conn:
        if not must_change and policy.password_history:
            recent = conn.execute(select(password_history.c.password_hash).where(
                password_history.c.username == username).order_by(password_history.c.id.desc())
                .limit(policy.password_history)).scalars().all()
            if any(verify_password(old, password) for old in recent):
                raise secpolicy.PasswordWeak("reused", f"not one of your last {policy.password_history} passwords",
                                             policy.password_history)
        new_hash = _hasher.hash(password)
        done = conn.execute(update(users).where(users.c.username == username).values(
            password_hash=new_hash, must_change_password=must_change)).rowcount
        if not done:
            raise NotFound(f"no user {username}")
        remember(conn, username, new_hash)
        if must_change:
            conn.execute(delete(login_failures).where(login_failures.c.username == username))  # unlocked
            end_sessions(conn, username)
    store.revoked()


def end_sessions(conn: Any, username: str) -> None:
    """End a user's login sessions and grants (a reset password, a removed second factor): whoever
    held them signs in again. The caller calls store.revoked(), so every process drops them."""
    from sqlalchemy import inspect

    from yunying.auth.oidc.tables import families, sessions

    if not inspect(conn).has_table("oauth_sessions"):
        return  # a store no server has opened yet: no provider, no sessions
    conn.execute(delete(sessions).where(sessions.c.user_id == username))
    conn.execute(update(families).where(families.c.user_id == username, families.c.revoked_at.is_(None))
                 .values(revoked_at=clock.seconds(), revoked_why="password reset"))


def reset_password(store: Store, username: str, password: str | None = None) -> str:
    """Set a one-time password (generated unless given) that must be changed at the next login."""
    password = password or generated_password()
    set_password(store, username, password, must_change=True)
    return password


def generated_password() -> str:
    """A one-time password meeting any policy: 16 random characters of four classes."""
    return secrets.token_urlsafe(12) + "aA1-"


def password_expired(store: Store, username: str, created_at: int, policy: secpolicy.Policy) -> bool:
    """Whether the user's password is older than the policy's maximum age."""
    if not policy.password_max_age_days:
        return False
    with store.engine.connect() as conn:
        changed = conn.execute(select(func.max(password_history.c.changed_at))
                               .where(password_history.c.username == username)).scalar()
    return clock.seconds() - int(changed or created_at) > policy.password_max_age_days * 86400


def authenticate(store: Store, username: str, password: str, clear: bool = True) -> dict[str, Any]:
    """The user row for a correct password of an enabled user; BadCredentials otherwise
    (Locked while the account waits after `lockout_failures` wrong passwords or codes).
    clear=False keeps the failure count (a second factor still to pass: its wrong codes count)."""
    now = clock.seconds()
    with store.engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.username == username)).first()
    check_lock(store, username, now)
    if row is None:
        _hasher.hash("timing")  # same cost whether or not the user exists
        raise BadCredentials("wrong username or password")
    if not verify_password(row.password_hash, password) or row.disabled:
        if count_failure(store, username):
            raise Locked(secpolicy.load(store).lockout_minutes * 60)
        raise BadCredentials("wrong username or password")
    if clear:
        clear_failures(store, username)
    return row_dict(row)


def check_lock(store: Store, username: str, now: int | None = None) -> None:
    """Locked while the account waits after too many failures."""
    now = clock.seconds() if now is None else now
    with store.engine.connect() as conn:
        until = conn.execute(select(login_failures.c.locked_until)
                             .where(login_failures.c.username == username)).scalar()
    if until and now < until:
        raise Locked(int(until - now))


def clear_failures(store: Store, username: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(delete(login_failures).where(login_failures.c.username == username))


def count_failure(store: Store, username: str) -> bool:
    """One more failure (a password or a second-factor code), counted in SQL so parallel guesses
    all count; True when it locked the account (recorded in the audit trail)."""
    policy = secpolicy.load(store)
    now = clock.seconds()
    f = login_failures.c
    with store.engine.begin() as conn:
        if conn.execute(update(login_failures).where(f.username == username)
                        .values(failures=f.failures + 1)).rowcount == 0:
            try:
                with conn.begin_nested():
                    conn.execute(insert(login_failures).values(username=username, failures=1))
            except IntegrityError:  # inserted meanwhile by a parallel guess
                conn.execute(update(login_failures).where(f.username == username).values(failures=f.failures + 1))
        locked = conn.execute(update(login_failures).where(f.username == username,
                                                           f.failures >= policy.lockout_failures)
                              .values(failures=0, locked_until=now + policy.lockout_minutes * 60)).rowcount > 0
    if locked:
        from yunying import audit
        audit.record("lockout", "refused", principal_id=username, principal_kind="user",
                     detail=f'{{"minutes": {policy.lockout_minutes}}}')
        log.info("an account was locked for %d minutes after repeated failures", policy.lockout_minutes)
    return locked


def change_password(store: Store, username: str, old: str, new: str) -> None:
    """Change one's own password (clears must_change_password); the policy's rules apply."""
    authenticate(store, username, old)
    if old == new:
        raise secpolicy.PasswordWeak("same", "the new password must differ")
    set_password(store, username, new, must_change=False)
