"""The provider's view of the app-state store's users (yunying.auth.directory) as a `Directory`."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from yunying.auth import directory as users_db
from yunying.auth import passwords, secpolicy, totp
from yunying.auth import roles as R
from yunying.auth.errors import BadCredentials, NotFound
from yunying.auth.identify import InvalidToken, user_principal
from yunying.auth.oidc.users import Account, AccountLocked, PasswordRefused
from yunying.auth.passwords import Locked
from yunying.auth.principal import Principal
from yunying.auth.schema import roles as roles_t
from yunying.auth.store import Store
from yunying.errors import ArchiveError
from yunying.pii import PiiKeys


class AuthDirectory:
    def __init__(self, store: Store, keys: Callable[[], PiiKeys] | None = None) -> None:
        self.store = store
        self._keys = keys  # seal second-factor secrets (yunying.pii); None: kept clear

    @property
    def keys(self) -> PiiKeys | None:
        return self._keys() if self._keys is not None else None  # read again: a rotation counts

    def authenticate(self, username: str, password: str) -> Account | None:
        try:  # with a second factor, failures are forgiven only once its code passed too
            row = users_db.authenticate(self.store, username, password, clear=not totp.enrolled(self.store, username))
        except Locked as exc:
            raise AccountLocked(exc.retry_after) from None
        except ArchiveError:
            return None
        return self._account(row["username"])

    def get_user(self, user_id: str) -> Account | None:
        return self._account(user_id)

    def find_user(self, username: str) -> Account | None:
        return self._account(username)

    def change_password(self, user_id: str, old: str, new: str) -> None:
        try:
            users_db.change_password(self.store, user_id, old, new)
        except Locked as exc:
            raise AccountLocked(exc.retry_after) from None
        except BadCredentials:
            raise PasswordRefused("the current password is wrong", "current") from None
        except secpolicy.PasswordWeak as exc:
            raise PasswordRefused(exc.reason, exc.key, exc.n) from None
        except ArchiveError as exc:
            raise PasswordRefused(exc.reason) from None

    def check_second_factor(self, user_id: str, code: str) -> str | None:
        try:
            passwords.check_lock(self.store, user_id)
        except Locked as exc:
            raise AccountLocked(exc.retry_after) from None
        used = totp.verify(self.store, user_id, code, self.keys)
        if used is None:
            if passwords.count_failure(self.store, user_id):
                raise AccountLocked(secpolicy.load(self.store).lockout_minutes * 60)
        else:
            passwords.clear_failures(self.store, user_id)
        return used

    def begin_second_factor(self, user_id: str) -> str:
        return totp.pending_secret(self.store, user_id, self.keys) or totp.begin(self.store, user_id, self.keys)

    def confirm_second_factor(self, user_id: str, code: str) -> list[str] | None:
        return totp.confirm(self.store, user_id, code, self.keys)

    def principal(self, user_id: str, token_id: str | None) -> Principal | None:
        with self.store.engine.connect() as conn:
            try:
                return user_principal(conn, user_id, token_id=token_id)
            except InvalidToken:
                return None

    def role_permissions(self, roles: frozenset[str]) -> frozenset[str]:
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(roles_t.c.permissions).where(roles_t.c.name.in_(sorted(roles)),
                                                                    roles_t.c.platform.is_(False))).scalars()
            return R.effective(frozenset(p for perms in rows for p in perms))

    def _account(self, username: str) -> Account | None:
        try:
            row: dict[str, Any] = users_db.get_user(self.store, username)
        except NotFound:
            return None
        principal = self.principal(username, None)
        permissions = principal.permissions if principal else frozenset()
        policy = secpolicy.load(self.store)
        expired = passwords.password_expired(self.store, username, row["created_at"], policy)
        return Account(id=row["username"], username=row["username"], name=row.get("display_name") or "",
                       hospital=row["hospital_id"], roles=frozenset(r["role"] for r in row["roles"]),
                       permissions=permissions, must_change_password=bool(row["must_change_password"]) or expired,
                       active=not row["disabled"], password_expired=expired and not row["must_change_password"],
                       totp=totp.enrolled(self.store, username), totp_required=secpolicy.needs_totp(policy, permissions))
