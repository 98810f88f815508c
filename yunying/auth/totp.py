"""The second factor: TOTP (RFC 6238, 30-second steps, 6 digits, SHA-1 as every authenticator
app speaks it) through pyotp, with one-time recovery codes.

A code is accepted once: the last time step used is kept and only a later step passes (a code
seen over a shoulder or replayed from a log is refused). One step of clock skew either way is
accepted. Recovery codes are 10 random base32 characters (50 bits) kept as SHA-256, each
usable once. Wrong codes count towards the account's lockout like wrong passwords.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

import pyotp
from sqlalchemy import delete, insert, select, update

from yunying.auth import clock
from yunying.auth.schema import TOTP_SECRET, recovery_codes, totp_secrets
from yunying.auth.store import Store
from yunying.pii import PREFIX, PiiKeys

ISSUER = "Yunying"
RECOVERY_CODES = 10
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read off paper


def _seal(secret: str, keys: PiiKeys | None) -> str:
    return keys.seal(secret, TOTP_SECRET) if keys is not None else secret


def _open(stored: str, keys: PiiKeys | None) -> str:
    """The secret of a stored value: sealed (yunying.pii) or, from a store without keys, clear."""
    if stored.startswith(PREFIX + "."):
        if keys is None:
            raise ValueError("a sealed TOTP secret needs the personal-data keys")
        return keys.unseal(stored, TOTP_SECRET)
    return stored


def _code_hash(username: str, code: str) -> str:
    normal = code.strip().lower().replace("-", "").replace(" ", "")
    return hashlib.sha256(f"{username}\n{normal}".encode()).hexdigest()


def enrolled(store: Store, username: str) -> bool:
    with store.engine.connect() as conn:
        return bool(conn.execute(select(totp_secrets.c.confirmed).where(totp_secrets.c.username == username)).scalar())


def begin(store: Store, username: str, keys: PiiKeys | None = None) -> str:
    """A new secret awaiting confirmation (an unconfirmed one is replaced; a confirmed one stays
    until a code of the new one confirms it)."""
    secret = pyotp.random_base32()
    with store.engine.begin() as conn:
        row = conn.execute(select(totp_secrets.c.confirmed).where(totp_secrets.c.username == username)).first()
        if row is not None and row.confirmed:
            raise ValueError("a second factor is set up already")
        conn.execute(delete(totp_secrets).where(totp_secrets.c.username == username))
        conn.execute(insert(totp_secrets).values(username=username, secret=_seal(secret, keys), confirmed=False,
                                                 last_step=0,
                                                 created_at=clock.seconds()))
    return secret


def pending_secret(store: Store, username: str, keys: PiiKeys | None = None) -> str | None:
    with store.engine.connect() as conn:
        stored = conn.execute(select(totp_secrets.c.secret).where(
            totp_secrets.c.username == username, totp_secrets.c.confirmed.is_(False))).scalar()
    return None if stored is None else _open(stored, keys)


def provisioning(secret: str, username: str) -> tuple[str, str]:
    """(otpauth:// URI, an SVG data: URI of its QR code) for an authenticator app."""
    uri = pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)
    import segno  # imported on first use: the server starts without it (issue 9 part 5)

    return uri, segno.make(uri, error="m").svg_data_uri(scale=4)


def _step_of(secret: str, code: str, last_step: int) -> int | None:
    """The time step `code` belongs to (now, or one step either side), if later than `last_step`."""
    code = code.strip().replace(" ", "")
    if len(code) != 6 or not code.isdigit():
        return None
    totp, now = pyotp.TOTP(secret), clock.now()
    current = int(now // totp.interval)
    for step in (current - 1, current, current + 1):
        if step > last_step and hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def confirm(store: Store, username: str, code: str, keys: PiiKeys | None = None) -> list[str] | None:
    """Turn the pending secret on with a code from the app; returns the recovery codes (shown once)."""
    with store.engine.connect() as conn:
        row = conn.execute(select(totp_secrets).where(totp_secrets.c.username == username,
                                                      totp_secrets.c.confirmed.is_(False))).first()
    step = _step_of(_open(row.secret, keys), code, 0) if row is not None else None
    if step is None:
        return None
    codes = ["".join(secrets.choice(_ALPHABET) for _ in range(10)) for _ in range(RECOVERY_CODES)]
    with store.engine.begin() as conn:
        conn.execute(update(totp_secrets).where(totp_secrets.c.username == username)
                     .values(confirmed=True, last_step=step))
        conn.execute(delete(recovery_codes).where(recovery_codes.c.username == username))
        for c in codes:
            conn.execute(insert(recovery_codes).values(username=username, code_hash=_code_hash(username, c)))
    store.revoked()
    return [f"{c[:5]}-{c[5:]}" for c in codes]


def verify(store: Store, username: str, code: str, keys: PiiKeys | None = None) -> str | None:
    """"totp" or "recovery" when `code` is a fresh TOTP code or an unused recovery code; None otherwise."""
    if not isinstance(code, str) or len(code) > 32:
        return None
    with store.engine.connect() as conn:
        row = conn.execute(select(totp_secrets).where(totp_secrets.c.username == username,
                                                      totp_secrets.c.confirmed.is_(True))).first()
    if row is None:
        return None
    step = _step_of(_open(row.secret, keys), code, int(row.last_step))
    now = clock.seconds()
    with store.engine.begin() as conn:
        if step is not None:  # atomic: of two requests with the same code only one passes
            t = totp_secrets.c
            won = conn.execute(update(totp_secrets).where(t.username == username, t.last_step < step)
                               .values(last_step=step)).rowcount == 1
            return "totp" if won else None
        r = recovery_codes.c
        used = conn.execute(update(recovery_codes).where(
            r.username == username, r.code_hash == _code_hash(username, code), r.used_at.is_(None))
            .values(used_at=now)).rowcount == 1
    return "recovery" if used else None


def remaining_recovery_codes(store: Store, username: str) -> int:
    with store.engine.connect() as conn:
        return len(conn.execute(select(recovery_codes.c.id).where(
            recovery_codes.c.username == username, recovery_codes.c.used_at.is_(None))).all())


def reset(store: Store, username: str) -> bool:
    """Remove a user's second factor (a lost phone, by a security admin); True when there was one."""
    with store.engine.begin() as conn:
        conn.execute(delete(recovery_codes).where(recovery_codes.c.username == username))
        gone = conn.execute(delete(totp_secrets).where(totp_secrets.c.username == username)).rowcount
        from yunying.auth.passwords import end_sessions
        end_sessions(conn, username)  # whoever holds the lost phone's sessions signs in again
    store.revoked()
    return bool(gone)


def status(store: Store, username: str) -> dict[str, Any]:
    return {"enrolled": enrolled(store, username), "recovery_codes_left": remaining_recovery_codes(store, username)}
