"""Signed launch links: a hospital's doctor app opens a study in our viewer without a second login.

    GET /launch?hospital=H&user=U&study=UID (or accession=A)&ts=UNIX&nonce=N&sig=HEX

`sig` is HMAC-SHA256, keyed with the hospital's launch secret, of the canonical message
"yunying-launch-v1\\n{hospital}\\n{user}\\n{study|accession}\\n{value}\\n{ts}\\n{nonce}". A link
is valid once (its signature is recorded until it expires) and for at most MAX_AGE seconds
after `ts` (CLOCK_SKEW ahead is tolerated); it is refused on a bad signature, an old or future
time, a replay, or a user who is unknown, disabled or of another hospital.

    GET /launch?jwt=TOKEN

The other form: a JWT of the hospital's own OIDC provider (an `oidc_trusted_issuers` entry),
verified by the trusted-issuer verifier (its pinned algorithms and JWKS) with the audience
"{oidc_issuer}/launch". Its claims: the issuer's username claim, exactly one of STUDY_CLAIM or
ACCESSION_CLAIM, `iat` and `exp` at most MAX_AGE apart, and a `jti` (recorded, used once).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.exc import IntegrityError

from yunying.auth.errors import BadCredentials, InvalidRequest, NotFound
from yunying.auth.schema import hospitals, launch_replays, launch_secrets, user_roles, users
from yunying.auth.store import Store
from yunying.auth.tokens import issue_access_token

MAX_AGE = 300
CLOCK_SKEW = 30
FIELDS = ("hospital", "user", "ts", "nonce", "sig")
STUDY_CLAIM = "study_instance_uid"  # the claims of a launch JWT naming the study
ACCESSION_CLAIM = "accession_number"


def message(hospital: str, user: str, kind: str, value: str, ts: int, nonce: str) -> bytes:
    return f"yunying-launch-v1\n{hospital}\n{user}\n{kind}\n{value}\n{ts}\n{nonce}".encode()


def sign(secret: str, hospital: str, user: str, *, study: str | None = None, accession: str | None = None,
         ts: int | None = None, nonce: str | None = None) -> dict[str, str]:
    """The query parameters of a launch link (what a hospital's app computes; used by tests)."""
    kind, value = ("study", study) if study else ("accession", accession or "")
    ts = int(time.time()) if ts is None else ts
    nonce = nonce or secrets.token_urlsafe(12)
    sig = hmac.new(secret.encode(), message(hospital, user, kind, value, ts, nonce), hashlib.sha256).hexdigest()
    return {"hospital": hospital, "user": user, kind: value, "ts": str(ts), "nonce": nonce, "sig": sig}


def rotate_secret(store: Store, hospital: str) -> str:
    """A new launch secret for `hospital` (the old one stops working); returned once."""
    secret = secrets.token_urlsafe(32)
    with store.engine.begin() as conn:
        if conn.execute(select(hospitals.c.id).where(hospitals.c.id == hospital)).first() is None:
            raise NotFound(f"no hospital {hospital}")
        conn.execute(delete(launch_secrets).where(launch_secrets.c.hospital_id == hospital))
        conn.execute(insert(launch_secrets).values(hospital_id=hospital, secret=secret, created_at=int(time.time())))
    return secret


def redeem(store: Store, params: dict[str, str]) -> dict[str, Any]:
    """Check a launch link and mint a short access token for its user; returns where to go."""
    if any(not params.get(f) for f in FIELDS) or bool(params.get("study")) == bool(params.get("accession")):
        raise InvalidRequest("launch: hospital, user, study or accession, ts, nonce and sig are required")
    kind = "study" if params.get("study") else "accession"
    try:
        ts = int(params["ts"])
    except ValueError:
        raise InvalidRequest("ts: Unix seconds expected") from None
    now = int(time.time())
    with store.engine.begin() as conn:
        row = conn.execute(select(launch_secrets.c.secret).where(
            launch_secrets.c.hospital_id == params["hospital"])).first()
        want = hmac.new(row.secret.encode() if row else b"", message(
            params["hospital"], params["user"], kind, params[kind], ts, params["nonce"]), hashlib.sha256).hexdigest()
        if row is None or not hmac.compare_digest(want, params["sig"].lower()):
            raise BadCredentials("launch: bad signature")
        if not now - MAX_AGE <= ts <= now + CLOCK_SKEW:
            raise BadCredentials("launch: the link is too old (or from the future)")
        user = _use_once(conn, hashlib.sha256(want.encode()).hexdigest(), ts + MAX_AGE + CLOCK_SKEW,
                         params["hospital"], params["user"], now)
    token, ttl = issue_access_token(store, kind="launch", subject=user, hospital=params["hospital"])
    return {"access_token": token, "expires_in": ttl, kind: params[kind]}


def redeem_jwt(store: Store, issuer: str, hospital: str, username: Any, claims: dict[str, Any]) -> dict[str, Any]:
    """A launch JWT whose signature, issuer, audience and `exp` the trusted-issuer verifier checked:
    check what makes it a launch link (short life, once, one study) and mint the user's token."""
    study, accession = claims.get(STUDY_CLAIM), claims.get(ACCESSION_CLAIM)
    value = study or accession
    if bool(study) == bool(accession) or not isinstance(value, str):
        raise BadCredentials(f"launch: the token names the study by exactly one of {STUDY_CLAIM} or {ACCESSION_CLAIM}")
    iat, exp, jti = claims.get("iat"), claims.get("exp"), claims.get("jti")
    if not isinstance(iat, int) or not isinstance(exp, int) or not isinstance(jti, str) or not jti:
        raise BadCredentials("launch: the token needs iat, exp and jti")
    if exp - iat > MAX_AGE:
        raise BadCredentials(f"launch: the token lives longer than {MAX_AGE} seconds")
    now = int(time.time())
    if not now - MAX_AGE - CLOCK_SKEW <= iat <= now + CLOCK_SKEW or exp + CLOCK_SKEW < now:
        raise BadCredentials("launch: the token is expired (or issued in the future)")
    if not isinstance(username, str) or not username:
        raise BadCredentials("launch: the token names no user")
    with store.engine.begin() as conn:
        user = _use_once(conn, hashlib.sha256(f"jwt\n{issuer}\n{jti}".encode()).hexdigest(), exp + CLOCK_SKEW,
                         hospital, username, now)
    token, ttl = issue_access_token(store, kind="launch", subject=user, hospital=hospital)
    kind = "study" if study else "accession"
    return {"access_token": token, "expires_in": ttl, kind: value}


def _use_once(conn: Connection, replay_key: str, expires_at: int, hospital: str, username: str, now: int) -> str:
    """Record the link as used (refused if it was) and return its user, enabled and of `hospital`."""
    conn.execute(delete(launch_replays).where(launch_replays.c.expires_at < now))
    try:
        with conn.begin_nested():
            conn.execute(insert(launch_replays).values(signature_hash=replay_key, expires_at=expires_at))
    except IntegrityError:
        raise BadCredentials("launch: this link was used already") from None
    user = conn.execute(select(users).where(users.c.username == username)).first()
    member = user is not None and (user.hospital_id == hospital or conn.execute(
        select(user_roles.c.role).where(user_roles.c.username == user.username,
                                        user_roles.c.hospital_id == hospital)).first() is not None)
    if user is None or not member or user.disabled:
        raise BadCredentials("launch: no such enabled user in this hospital")
    return str(user.username)
