"""Doctors' self-registration: submitted with ID card and qualification photos, reviewed by an
admin of the chosen hospital (approve with roles, or reject with a reason). The photos are
served to that reviewer only (the admin API checks the hospital), never listed with the data.

The phone number and the photos are sealed at rest (SM4-GCM, `yunying.pii`): the reviewer's
answers unseal them, a copy of the database shows neither (issue 12 part 6)."""
from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select, update

from yunying.auth import directory
from yunying.auth.errors import Conflict, InvalidRequest, NotFound
from yunying.auth.schema import fits, registration_photos, registrations, row_dict, users
from yunying.auth.store import Store
from yunying.pii import PiiKeys, sealed_column

PHONE = sealed_column(registrations, "phone")
PHOTO = sealed_column(registration_photos, "data")

PHOTO_KINDS = {"id_card", "qualification"}
PHOTO_TYPES = {"image/jpeg", "image/png", "image/webp"}
MAX_PHOTO = 4 * 1024 * 1024
MAGIC = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG": "image/png", b"RIFF": "image/webp"}


def submit(store: Store, keys: PiiKeys, *, username: str, password: str, display_name: str, phone: str, hospital: str,
           department: str = "", title: str = "", photos: Sequence[tuple[str, str, bytes]] = ()) -> str:
    """Record a pending registration; returns its id. photos: (kind, content type, bytes)."""
    directory._name("username", username)
    if not display_name or len(display_name) > 200 or not phone or len(phone) > 40:
        raise InvalidRequest("display_name and phone are required")
    fits(registrations, {"department": department, "title": title})
    for kind, ctype, data in photos:
        if kind not in PHOTO_KINDS or ctype not in PHOTO_TYPES:
            raise InvalidRequest(f"photos: kind one of {sorted(PHOTO_KINDS)}, type one of {sorted(PHOTO_TYPES)}")
        if not 0 < len(data) <= MAX_PHOTO or not any(data.startswith(m) and t == ctype for m, t in MAGIC.items()):
            raise InvalidRequest(f"photos: a {ctype} image of at most {MAX_PHOTO} bytes expected")
    if not {k for k, _, _ in photos} >= PHOTO_KINDS:
        raise InvalidRequest("photos: an ID card photo and a qualification photo are required")
    pw_hash = directory.hash_password(password)
    reg_id = "r_" + secrets.token_hex(8)
    with store.engine.begin() as conn:
        directory.require_hospital(conn, hospital)
        if conn.execute(select(users.c.username).where(users.c.username == username)).first() or conn.execute(
                select(registrations.c.id).where(registrations.c.username == username,
                                                 registrations.c.status == "pending")).first():
            raise Conflict(f"username {username} is taken")
        conn.execute(insert(registrations).values(
            id=reg_id, username=username, display_name=display_name, phone=keys.seal(phone, PHONE), hospital_id=hospital,
            department=department, title=title, password_hash=pw_hash, status="pending", reason="",
            created_at=int(time.time())))
        for kind, ctype, data in photos:
            conn.execute(insert(registration_photos).values(registration_id=reg_id, kind=kind,
                                                            content_type=ctype,
                                                            data=keys.seal_bytes(data, PHOTO).encode()))
    return reg_id


def list_pending(store: Store, keys: PiiKeys, hospital: str | None = None, status: str = "pending") -> list[dict[str, Any]]:
    q = select(registrations).where(registrations.c.status == status).order_by(registrations.c.created_at)
    if hospital is not None:
        q = q.where(registrations.c.hospital_id == hospital)
    with store.engine.connect() as conn:
        out = []
        for r in conn.execute(q):
            item = row_dict(r, ("password_hash",)) | {"phone": keys.unseal(r.phone, PHONE)}
            item["photos"] = [row_dict(p) for p in conn.execute(
                select(registration_photos.c.id, registration_photos.c.kind)
                .where(registration_photos.c.registration_id == r.id))]
            out.append(item)
        return out


def get(store: Store, keys: PiiKeys, reg_id: str) -> dict[str, Any]:
    with store.engine.connect() as conn:
        row = conn.execute(select(registrations).where(registrations.c.id == reg_id)).first()
    if row is None:
        raise NotFound(f"no registration {reg_id}")
    return row_dict(row) | {"phone": keys.unseal(row.phone, PHONE)}


def photo(store: Store, keys: PiiKeys, reg_id: str, photo_id: int) -> tuple[str, bytes]:
    with store.engine.connect() as conn:
        row = conn.execute(select(registration_photos).where(registration_photos.c.id == photo_id,
                                                             registration_photos.c.registration_id == reg_id)).first()
    if row is None:
        raise NotFound("no such photo")
    return row.content_type, keys.unseal_bytes(row.data.decode("latin-1"), PHOTO)


def approve(store: Store, keys: PiiKeys, reg_id: str, reviewer: str, roles: list[tuple[str, str | None]]) -> str:
    """Create the user (the password they chose, no change needed) with `roles`; returns the username."""
    reg = get(store, keys, reg_id)
    if reg["status"] != "pending":
        raise Conflict(f"registration {reg_id} is {reg['status']}")
    if not roles:
        raise InvalidRequest("roles: approve with at least one role")
    directory.add_user(store, reg["username"], reg["hospital_id"], display_name=reg["display_name"],
                       title=reg["title"], phone=reg["phone"], roles=roles, must_change_password=False,
                       password_hash=reg["password_hash"])
    _close(store, reg_id, "approved", "", reviewer)
    return reg["username"]


def reject(store: Store, keys: PiiKeys, reg_id: str, reviewer: str, reason: str) -> None:
    reg = get(store, keys, reg_id)
    if reg["status"] != "pending":
        raise Conflict(f"registration {reg_id} is {reg['status']}")
    if not reason or not reason.strip():
        raise InvalidRequest("reason: say why the registration is rejected")
    _close(store, reg_id, "rejected", reason.strip(), reviewer)


def _close(store: Store, reg_id: str, status: str, reason: str, reviewer: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(update(registrations).where(registrations.c.id == reg_id).values(
            status=status, reason=reason, reviewed_by=reviewer))
        conn.execute(registration_photos.delete().where(registration_photos.c.registration_id == reg_id))
