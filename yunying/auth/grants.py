"""Grants: a study (or one series) shared with a user or a department, until an optional expiry.

A grant widens the grantee's Visibility (identify.user_principal); revoking or expiring it
narrows it again on the next request (revocation touches the stamp; expiry is checked when the
identity is looked up, at most identify.CACHE_SECONDS late).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, insert, or_, select

from yunying.auth.errors import InvalidRequest, NotFound
from yunying.auth.schema import departments, grants, row_dict, users
from yunying.auth.store import Store

MAX_DAYS = 366


def share(store: Store, *, created_by: str, study: str, series: str | None = None, username: str | None = None,
          department: int | None = None, expires_in: int | None = None, hospital: str | None = None,
          may_share: Callable[[str, str | None], bool] | None = None) -> int:
    """Share `study` (or one of its series) with a user or a department; returns the grant id.

    `hospital`, when given, is where the grantee must belong (a hospital's sharer shares inside it).
    """
    if not isinstance(study, str) or not 0 < len(study) <= 64 or (series is not None and not 0 < len(series) <= 64):
        raise InvalidRequest("study: a UID (and series, when given, a UID)")
    if (username is None) == (department is None):
        raise InvalidRequest("grant to exactly one of username or department_id")
    if expires_in is not None and (not isinstance(expires_in, int) or not 0 < expires_in <= MAX_DAYS * 86400):
        raise InvalidRequest(f"expires_in: 1 s to {MAX_DAYS} days")
    if may_share is not None and not may_share(study, series):
        raise NotFound(f"no study {study}")  # outside the sharer's scope: as if unknown
    now = int(time.time())
    with store.engine.begin() as conn:
        if username is not None:
            found = conn.execute(select(users.c.hospital_id).where(users.c.username == username)).first()
        else:
            found = conn.execute(select(departments.c.hospital_id).where(departments.c.id == department)).first()
        if found is None or (hospital is not None and found.hospital_id != hospital):
            raise NotFound("no such user or department in your hospital")
        key = conn.execute(insert(grants).values(
            study_uid=study, series_uid=series, username=username, department_id=department, created_by=created_by,
            created_at=now, expires_at=None if expires_in is None else now + expires_in)).inserted_primary_key
    store.revoked()  # the grantee's cached identity must see it at once
    assert key is not None
    return int(key[0])


def list_grants(store: Store, created_by: str | None = None) -> list[dict[str, Any]]:
    q = select(grants).where(or_(grants.c.expires_at.is_(None), grants.c.expires_at > int(time.time())))
    if created_by is not None:
        q = q.where(grants.c.created_by == created_by)
    with store.engine.connect() as conn:
        return [row_dict(r) for r in conn.execute(q.order_by(grants.c.id))]


def revoke(store: Store, grant_id: int, created_by: str | None = None) -> None:
    q = delete(grants).where(grants.c.id == grant_id)
    if created_by is not None:
        q = q.where(grants.c.created_by == created_by)
    with store.engine.begin() as conn:
        if conn.execute(q).rowcount == 0:
            raise NotFound(f"no grant {grant_id}")
    store.revoked()
