"""Hospitals, departments, users and roles in the app-state store (no HTTP, no CLI here)."""
from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from yunying.auth import roles as R
from yunying.auth.errors import Conflict, InvalidRequest, NotFound
from yunying.auth.passwords import (  # noqa: F401 - part of this module's interface
    MIN_PASSWORD,
    authenticate,
    change_password,
    generated_password,
    hash_password,
    remember,
    reset_password,
    verify_password,
)
from yunying.auth.principal import DEFAULT_HOSPITAL
from yunying.auth.schema import departments, fits, hospitals, row_dict, user_roles, users
from yunying.auth.schema import roles as roles_t
from yunying.auth.store import Store
from yunying.pii import PREFIX, sealed_column

PHONE = sealed_column(users, "phone")  # a user's phone is personal data: sealed at rest (issue 12 part 6)
PHONE_MAX = 40


def _sealed_phone(store: Store, phone: str) -> str:
    if len(phone) > PHONE_MAX:
        raise InvalidRequest(f"phone: at most {PHONE_MAX} characters")
    return store.pii().seal(phone, PHONE) if phone else ""


def _clear_phone(store: Store, value: str) -> str:
    """The phone of a user row; a value from before sealing (sealed at the next start) as it is."""
    return store.pii().unseal(value, PHONE) if value.startswith(PREFIX + ".") else value

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


def _name(kind: str, value: str) -> str:
    if not isinstance(value, str) or not NAME.match(value):
        raise InvalidRequest(f"{kind}: 1-64 letters, digits, '_', '.', '@' or '-' expected")
    return value


def ensure_defaults(store: Store) -> None:
    """The default hospital and the default roles (missing ones only: edits are kept)."""
    now = int(time.time())
    with store.engine.begin() as conn:
        if conn.execute(select(hospitals.c.id).where(hospitals.c.id == DEFAULT_HOSPITAL)).first() is None:
            conn.execute(insert(hospitals).values(id=DEFAULT_HOSPITAL, name="Default hospital", created_at=now))
        have = set(conn.execute(select(roles_t.c.name)).scalars())
        for name, (perms, platform, text) in R.DEFAULT_ROLES.items():
            if name not in have:
                conn.execute(insert(roles_t).values(name=name, permissions=sorted(perms), description=text,
                                                    platform=platform, builtin=True))


# hospitals and departments
def add_hospital(store: Store, hospital_id: str, name: str) -> None:
    _name("hospital", hospital_id)
    try:
        with store.engine.begin() as conn:
            conn.execute(insert(hospitals).values(fits(hospitals, {
                "id": hospital_id, "name": name or hospital_id, "created_at": int(time.time())})))
    except IntegrityError:
        raise Conflict(f"hospital {hospital_id} exists") from None


def list_hospitals(store: Store) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        return [row_dict(r) for r in conn.execute(select(hospitals).order_by(hospitals.c.id))]


def require_hospital(conn: Any, hospital_id: str) -> None:
    if conn.execute(select(hospitals.c.id).where(hospitals.c.id == hospital_id)).first() is None:
        raise NotFound(f"no hospital {hospital_id}")


def add_department(store: Store, hospital_id: str, name: str) -> int:
    if not isinstance(name, str) or not 0 < len(name) <= 200:
        raise InvalidRequest("department name: 1-200 characters")
    try:
        with store.engine.begin() as conn:
            require_hospital(conn, hospital_id)
            key = conn.execute(insert(departments).values(hospital_id=hospital_id, name=name)).inserted_primary_key
            assert key is not None
            return int(key[0])
    except IntegrityError:
        raise Conflict(f"department {name!r} exists in {hospital_id}") from None


def list_departments(store: Store, hospital_id: str | None = None) -> list[dict[str, Any]]:
    q = select(departments).order_by(departments.c.hospital_id, departments.c.name)
    if hospital_id is not None:
        q = q.where(departments.c.hospital_id == hospital_id)
    with store.engine.connect() as conn:
        return [row_dict(r) for r in conn.execute(q)]


def _require_department(conn: Any, hospital_id: str, department: int | None) -> None:
    if department is not None and conn.execute(select(departments.c.id).where(
            departments.c.id == department, departments.c.hospital_id == hospital_id)).first() is None:
        raise NotFound(f"no department {department} in {hospital_id}")


# roles
def list_roles(store: Store, q: str = "") -> list[dict[str, Any]]:
    """Roles, those whose name or description contains `q` (case-insensitive) when given."""
    query = select(roles_t).order_by(roles_t.c.name)
    if q:
        like = f"%{q.lower()}%"
        query = query.where(or_(func.lower(roles_t.c.name).like(like), func.lower(roles_t.c.description).like(like)))
    with store.engine.connect() as conn:
        return [row_dict(r) for r in conn.execute(query)]


def save_role(store: Store, name: str, permissions: list[str], description: str = "",
              platform: bool = False, *, create: bool = True) -> None:
    """Create (or, with create=False, change) a role; separation of duties holds for it and its holders."""
    _name("role", name)
    if not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions):
        raise InvalidRequest("permissions: a list of permission names")
    fits(roles_t, {"description": description})
    perms = frozenset(permissions)
    R.check_permissions(perms)
    R.check_separation(perms, f"role {name}")
    with store.engine.begin() as conn:
        exists = conn.execute(select(roles_t.c.name).where(roles_t.c.name == name)).first() is not None
        if create and exists:
            raise Conflict(f"role {name} exists")
        if not create and not exists:
            raise NotFound(f"no role {name}")
        if exists:
            holders = conn.execute(select(user_roles.c.username, user_roles.c.hospital_id)
                                   .where(user_roles.c.role == name)).all()
            for username, hospital in set(holders):
                others = _role_permissions(conn, username, hospital, exclude=name)
                R.check_separation(others | perms, f"role {name} for {username}")
            conn.execute(update(roles_t).where(roles_t.c.name == name).values(
                permissions=sorted(perms), description=description, platform=platform))
        else:
            conn.execute(insert(roles_t).values(name=name, permissions=sorted(perms), description=description,
                                                platform=platform, builtin=False))
    store.revoked()


def delete_role(store: Store, name: str) -> None:
    with store.engine.begin() as conn:
        if conn.execute(select(user_roles.c.role).where(user_roles.c.role == name)).first():
            raise Conflict(f"role {name} is still assigned")
        if conn.execute(delete(roles_t).where(roles_t.c.name == name)).rowcount == 0:
            raise NotFound(f"no role {name}")


def _role_permissions(conn: Any, username: str, hospital: str, exclude: str = "") -> frozenset[str]:
    rows = conn.execute(select(roles_t.c.permissions).join(user_roles, user_roles.c.role == roles_t.c.name)
                        .where(user_roles.c.username == username, user_roles.c.hospital_id == hospital,
                               user_roles.c.role != exclude)).scalars()
    return frozenset(p for perms in rows for p in perms)


# users
def add_user(store: Store, username: str, hospital: str = DEFAULT_HOSPITAL, password: str | None = None, *,
             display_name: str = "", department: int | None = None, title: str = "", phone: str = "",
             roles: Sequence[tuple[str, str | None]] = (), must_change_password: bool = True,
             password_hash: str | None = None) -> str | None:
    """Create a user; returns the generated one-time password when none was given."""
    _name("username", username)
    generated = None
    if password_hash is None:
        if password is None:
            password = generated = generated_password()
        password_hash = hash_password(password)
    try:
        with store.engine.begin() as conn:
            require_hospital(conn, hospital)
            _require_department(conn, hospital, department)
            row = fits(users, {
                "username": username, "display_name": display_name, "hospital_id": hospital,
                "department_id": department, "title": title, "phone": "", "password_hash": password_hash,
                "disabled": False, "must_change_password": must_change_password, "created_at": int(time.time())})
            conn.execute(insert(users).values({**row, "phone": _sealed_phone(store, phone)}))
            for role, level in roles:
                _assign(conn, username, hospital, role, level)
            remember(conn, username, password_hash)  # its age counts for expiry
    except IntegrityError:
        raise Conflict(f"user {username} exists") from None
    return generated


def get_user(store: Store, username: str) -> dict[str, Any]:
    with store.engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.username == username)).first()
        if row is None:
            raise NotFound(f"no user {username}")
        out = row_dict(row)
        out.pop("password_hash")
        out["phone"] = _clear_phone(store, out["phone"] or "")
        out["roles"] = [row_dict(r) for r in conn.execute(
            select(user_roles.c.hospital_id, user_roles.c.role, user_roles.c.level)
            .where(user_roles.c.username == username).order_by(user_roles.c.hospital_id, user_roles.c.role))]
        return out


def list_users(store: Store, hospital: str | None = None, q: str = "") -> list[dict[str, Any]]:
    query = select(users.c.username).order_by(users.c.username)
    if hospital is not None:
        query = query.where(users.c.hospital_id == hospital)
    if q:
        like = f"%{q.lower()}%"
        query = query.where(or_(func.lower(users.c.username).like(like), func.lower(users.c.display_name).like(like)))
    with store.engine.connect() as conn:
        names = list(conn.execute(query).scalars())
    return [get_user(store, n) for n in names]


def update_user(store: Store, username: str, **values: Any) -> None:
    kinds: dict[str, type | tuple[type, ...]] = {"display_name": str, "title": str, "phone": str, "department_id": (int, type(None)), "disabled": bool}
    bad = set(values) - set(kinds)
    if bad:
        raise InvalidRequest(f"cannot change {', '.join(sorted(bad))}")
    for name, value in values.items():
        if not isinstance(value, kinds[name]) or (name == "department_id" and isinstance(value, bool)):
            raise InvalidRequest(f"{name}: wrong type")
    fits(users, {k: v for k, v in values.items() if k != "phone"})
    if "phone" in values:
        values["phone"] = _sealed_phone(store, values["phone"])
    with store.engine.begin() as conn:
        row = conn.execute(select(users.c.hospital_id).where(users.c.username == username)).first()
        if row is None:
            raise NotFound(f"no user {username}")
        _require_department(conn, row.hospital_id, values.get("department_id"))
        conn.execute(update(users).where(users.c.username == username).values(**values))
    store.revoked()  # a disabled user fails on the very next request


def delete_user(store: Store, username: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(delete(user_roles).where(user_roles.c.username == username))
        if conn.execute(delete(users).where(users.c.username == username)).rowcount == 0:
            raise NotFound(f"no user {username}")
    store.revoked()


def assign_role(store: Store, username: str, hospital: str, role: str, level: str | None = None) -> None:
    with store.engine.begin() as conn:
        if conn.execute(select(users.c.username).where(users.c.username == username)).first() is None:
            raise NotFound(f"no user {username}")
        require_hospital(conn, hospital)
        _assign(conn, username, hospital, role, level)
    store.revoked()


def _assign(conn: Any, username: str, hospital: str, role: str, level: str | None) -> None:
    row = conn.execute(select(roles_t.c.permissions).where(roles_t.c.name == role)).first()
    if row is None:
        raise NotFound(f"no role {role}")
    if role == "radiologist":
        level = level or "junior"
    if level is not None and level not in R.REPORTING_LEVELS:
        raise InvalidRequest(f"level: one of {', '.join(R.REPORTING_LEVELS)}")
    R.check_separation(_role_permissions(conn, username, hospital, exclude=role) | frozenset(row.permissions),
                       f"{username}'s roles in {hospital}")
    conn.execute(delete(user_roles).where(user_roles.c.username == username, user_roles.c.hospital_id == hospital,
                                          user_roles.c.role == role))
    conn.execute(insert(user_roles).values(username=username, hospital_id=hospital, role=role, level=level))


def remove_role(store: Store, username: str, hospital: str, role: str) -> None:
    with store.engine.begin() as conn:
        gone = conn.execute(delete(user_roles).where(user_roles.c.username == username,
                                                     user_roles.c.hospital_id == hospital,
                                                     user_roles.c.role == role)).rowcount
    if not gone:
        raise NotFound(f"{username} has no role {role} in {hospital}")
    store.revoked()


def first_admin(store: Store, environ: dict[str, str] | None = None) -> str | None:
    """On a store without users: create `admin` (super admin); returns the one-time password it
    generated (None when taken from YUNYING_ADMIN_PASSWORD or when users exist)."""
    env = dict(os.environ) if environ is None else environ
    with store.engine.connect() as conn:
        if conn.execute(select(users.c.username).limit(1)).first() is not None:
            return None
    given = env.get("YUNYING_ADMIN_PASSWORD") or None
    generated = add_user(store, "admin", DEFAULT_HOSPITAL, given, display_name="Super admin",
                         roles=[("super_admin", None)], must_change_password=True)
    return generated
