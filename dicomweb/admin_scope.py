"""What an administrator's request may touch (issue 11): `admin` acts on every hospital, a
hospital's user or security admin on their own hospital, a department admin on the users of
their own department only."""
from __future__ import annotations

from typing import Any

from starlette.requests import Request

from dicomweb.accounts import call, principal_of, store_of
from yunying.auth import directory
from yunying.auth import roles as R
from yunying.auth.errors import Forbidden
from yunying.auth.principal import ADMIN, Principal


def hospital_for(p: Principal, asked: str | None) -> str | None:
    """The hospital a request acts on: any for `admin` (None = all), else the caller's own."""
    if p.may(ADMIN):
        return asked
    if asked is not None and asked != p.hospital:
        raise Forbidden("you administer your own hospital only")
    return p.hospital


ADMIN_DUTIES = frozenset({ADMIN, R.USERS_MANAGE, R.SECURITY_MANAGE, R.AUDIT_READ, R.OPERATIONS, R.BREAK_GLASS})


async def department_of(request: Request) -> int | None:
    """The one department a department admin acts on (None: not limited to one). A user whose only
    user-managing role is `department_admin` manages the users of their own department only."""
    p = principal_of(request)
    if p.kind != "user" or "department_admin" not in p.roles or p.may(ADMIN):
        return None
    roles = {r["name"]: r for r in await call(directory.list_roles, store_of(request))}
    if any(R.USERS_MANAGE in roles[name]["permissions"] for name in p.roles - {"department_admin"} if name in roles):
        return None  # also a hospital-wide user admin
    department = (await call(directory.get_user, store_of(request), p.id))["department_id"]
    if department is None:
        raise Forbidden("a department admin needs a department of their own")
    return int(department)


def same_department(department: int | None, asked: Any) -> None:
    if department is not None and asked is not None and asked != department:
        raise Forbidden("you administer your own department only")
