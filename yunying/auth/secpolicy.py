"""The security admin's policy (issue 12 part 4): passwords, lockout, sessions, second factor.

Kept in the app-state store (`security_policy`, one row per setting that differs from the
default), read at each login, password change and session check, so a change counts at once
in every process. Defaults follow GB/T 22239-2019 level 3 practice; every change names who made
it and goes to the audit trail (the HTTP route records it, see dicomweb/security_api.py).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from sqlalchemy import delete, insert, select

from yunying.auth import clock
from yunying.auth import roles as R
from yunying.auth.errors import InvalidRequest
from yunying.auth.principal import ADMIN
from yunying.auth.schema import security_policy
from yunying.auth.store import Store

# permissions that make a role an administrator's: TOTP is mandatory for their holders
ADMIN_PERMISSIONS = frozenset({ADMIN, R.USERS_MANAGE, R.SECURITY_MANAGE, R.AUDIT_READ, R.OPERATIONS, R.BREAK_GLASS})


@dataclass(frozen=True)
class Policy:
    password_min_length: int = 8
    password_classes: int = 3  # of lower case, upper case, digits, other characters
    password_history: int = 5  # none of the last N passwords again
    password_max_age_days: int = 90  # 0: never expires
    lockout_failures: int = 5  # wrong passwords or codes in a row lock the account ...
    lockout_minutes: int = 15  # ... for this long
    address_failures: int = 20  # wrong passwords or codes from one address within lockout_minutes
    session_idle_minutes: int = 30
    session_absolute_hours: int = 12
    totp_admins: bool = True  # mandatory for administrator roles
    totp_others: bool = True  # others may turn it on


# name -> (lowest, highest) accepted; booleans are any bool
RANGES: dict[str, tuple[int, int]] = {
    "password_min_length": (6, 128), "password_classes": (1, 4), "password_history": (0, 24),
    "password_max_age_days": (0, 3650), "lockout_failures": (3, 100), "lockout_minutes": (1, 1440),
    "address_failures": (5, 10000), "session_idle_minutes": (5, 480), "session_absolute_hours": (1, 72),
}
DEFAULT = Policy()


def load(store: Store) -> Policy:
    """The policy in force: the defaults, overridden by the stored settings."""
    with store.engine.connect() as conn:
        rows = {r.name: r.value for r in conn.execute(select(security_policy))}
    known = {f.name for f in fields(Policy)}
    return Policy(**{k: v for k, v in rows.items() if k in known})


def validate(changes: dict[str, Any]) -> dict[str, Any]:
    """Type and range checks; InvalidRequest naming the setting."""
    kinds = {f.name: f.type for f in fields(Policy)}
    for name, value in changes.items():
        if name not in kinds:
            raise InvalidRequest(f"{name}: no such setting")
        if name in RANGES:
            low, high = RANGES[name]
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise InvalidRequest(f"{name}: a whole number {low}-{high}")
        elif not isinstance(value, bool):
            raise InvalidRequest(f"{name}: true or false")
    return changes


def save(store: Store, changes: dict[str, Any], by: str) -> tuple[Policy, dict[str, tuple[Any, Any]]]:
    """Apply `changes`; returns the new policy and {setting: (old, new)} of what changed."""
    validate(changes)
    old = load(store)
    diff = {k: (getattr(old, k), v) for k, v in changes.items() if getattr(old, k) != v}
    now = clock.seconds()
    with store.engine.begin() as conn:
        for name, (_, value) in diff.items():
            conn.execute(delete(security_policy).where(security_policy.c.name == name))
            if value != getattr(DEFAULT, name):
                conn.execute(insert(security_policy).values(name=name, value=value, changed_at=now, changed_by=by))
    return load(store), diff


def as_dict(policy: Policy) -> dict[str, Any]:
    return asdict(policy)


def needs_totp(policy: Policy, permissions: frozenset[str]) -> bool:
    """Whether an account with these permissions must use a second factor."""
    return policy.totp_admins and bool(permissions & ADMIN_PERMISSIONS)


class PasswordWeak(InvalidRequest):
    """A new password the policy refuses: `key` names the rule (login.policy.<key>), `n` its number."""

    def __init__(self, key: str, reason: str, n: int = 0) -> None:
        super().__init__(f"password: {reason}")
        self.key, self.n = key, n


def check_password(policy: Policy, username: str, password: str) -> None:
    """Refuse a password shorter than the policy, of too few character classes, or holding the name."""
    if not isinstance(password, str) or len(password) > 200:
        raise PasswordWeak("length", f"at least {policy.password_min_length} characters (at most 200)",
                           policy.password_min_length)
    if len(password) < policy.password_min_length:
        raise PasswordWeak("length", f"at least {policy.password_min_length} characters",
                           policy.password_min_length)
    classes = sum((any(c.islower() for c in password), any(c.isupper() for c in password),
                   any(c.isdigit() for c in password),
                   any(not (c.islower() or c.isupper() or c.isdigit()) for c in password)))
    if classes < policy.password_classes:
        raise PasswordWeak("classes", f"at least {policy.password_classes} of: lower case, upper case, digits, "
                           "other characters", policy.password_classes)
    if username and len(username) >= 3 and username.lower() in password.lower():
        raise PasswordWeak("username", "must not contain the user name")
