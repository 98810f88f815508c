"""What the provider needs from the user store: log in, look up, change a password.

The store itself (users, roles, hospitals) belongs to `yunying.auth`; this small interface keeps
the provider independent of its tables, and lets tests run the provider with a directory in memory.
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Protocol

from yunying.auth.principal import DEFAULT_HOSPITAL, Principal, Visibility


@dataclass(frozen=True)
class Account:
    """A user as the provider sees it: never a patient, never a password."""

    id: str
    username: str
    name: str = ""
    hospital: str = DEFAULT_HOSPITAL
    roles: frozenset[str] = frozenset()
    permissions: frozenset[str] = frozenset()
    must_change_password: bool = False  # a one-time password, or one the policy says expired
    active: bool = True
    password_expired: bool = False
    totp: bool = False  # a second factor is set up
    totp_required: bool = False  # the policy requires one (administrator roles)


class PasswordRefused(ValueError):
    """A new password the store does not accept; the message says why (shown to the user);
    `key` and `n` name the policy rule (login.policy.<key>) when one refused it."""

    def __init__(self, reason: str, key: str = "", n: int = 0) -> None:
        super().__init__(reason)
        self.key, self.n = key, n


class AccountLocked(Exception):
    """Too many wrong passwords or codes: the account waits `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("locked")
        self.retry_after = retry_after


class Directory(Protocol):
    def authenticate(self, username: str, password: str) -> Account | None: ...

    def get_user(self, user_id: str) -> Account | None: ...

    def find_user(self, username: str) -> Account | None: ...

    def change_password(self, user_id: str, old: str, new: str) -> None: ...

    def principal(self, user_id: str, token_id: str | None) -> Principal | None:
        """The user's current Principal (roles, visibility); None when disabled or gone."""
        ...

    def role_permissions(self, roles: frozenset[str]) -> frozenset[str]: ...

    def check_second_factor(self, user_id: str, code: str) -> str | None:
        """"totp" or "recovery" for a good, unused code; None (counted as a failure) otherwise."""
        ...

    def begin_second_factor(self, user_id: str) -> str:
        """A new TOTP secret awaiting confirmation."""
        ...

    def confirm_second_factor(self, user_id: str, code: str) -> list[str] | None:
        """Turn the pending secret on with a code; the recovery codes, or None for a wrong code."""
        ...


@dataclass
class MemoryDirectory:
    """A directory in memory (tests, and servers started without a user store)."""

    accounts: dict[str, tuple[Account, bytes]] = field(default_factory=dict)

    def add(self, account: Account, password: str) -> None:
        self.accounts[account.id] = (account, _digest(password))

    def authenticate(self, username: str, password: str) -> Account | None:
        for account, digest in self.accounts.values():
            if account.username == username and account.active:
                return account if hmac.compare_digest(digest, _digest(password)) else None
        return None

    def get_user(self, user_id: str) -> Account | None:
        found = self.accounts.get(user_id)
        return found[0] if found else None

    def find_user(self, username: str) -> Account | None:
        return next((a for a, _ in self.accounts.values() if a.username == username), None)

    def change_password(self, user_id: str, old: str, new: str) -> None:
        account, digest = self.accounts[user_id]
        if not hmac.compare_digest(digest, _digest(old)):
            raise PasswordRefused("the current password is wrong")
        if len(new) < 8 or new == old:
            raise PasswordRefused("the new password must have 8 characters or more and differ from the old one")
        self.accounts[user_id] = (Account(**{**account.__dict__, "must_change_password": False}), _digest(new))


    def principal(self, user_id: str, token_id: str | None) -> Principal | None:
        account = self.get_user(user_id)
        if account is None or not account.active:
            return None
        return Principal(kind="user", id=account.id, hospital=account.hospital, roles=account.roles,
                         permissions=account.permissions, visibility=Visibility(hospitals=frozenset({account.hospital})),
                         token_id=token_id)

    def role_permissions(self, roles: frozenset[str]) -> frozenset[str]:
        return frozenset({"dicomweb.read"}) if roles else frozenset()

    def check_second_factor(self, user_id: str, code: str) -> str | None:
        return None  # no second factors in memory

    def begin_second_factor(self, user_id: str) -> str:
        raise PasswordRefused("no second factor in a directory in memory")

    def confirm_second_factor(self, user_id: str, code: str) -> list[str] | None:
        return None


def _digest(password: str) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), b"memory-directory", 10_000)
