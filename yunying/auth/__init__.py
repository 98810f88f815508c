"""Identity and access (issue 11): the app-state store, users and roles, keys and tokens, and the
one authorization point. `start(settings)` is what the composition root calls."""
from __future__ import annotations

import os
from dataclasses import dataclass

from yunying.auth import directory, keys
from yunying.auth.identify import Identifier
from yunying.auth.principal import DEFAULT_HOSPITAL
from yunying.auth.store import Store, open_store
from yunying.errors import ArchiveError
from yunying.settings import SettingError, Settings


@dataclass
class Auth:
    """What the HTTP face needs: the store and the identifier over it."""

    store: Store
    identifier: Identifier
    first_password: str | None = None  # generated for the first super admin: print once, never log


def start(settings: Settings, environ: dict[str, str] | None = None) -> Auth:
    """Open (and migrate) the store, create defaults and the first super admin, provision keys."""
    environ = dict(os.environ) if environ is None else environ
    store = open_store(settings.data, settings.app_database, settings.pii_key_file)
    directory.ensure_defaults(store)
    first = directory.first_admin(store, environ)
    if settings.api_key:
        keys.provision(store, keys.ENV_KEY_NAME, settings.api_key, keys.FULL_SCOPE, DEFAULT_HOSPITAL, "env")
    keys.retire(store, "env", {keys.ENV_KEY_NAME} if settings.api_key else set())
    keys.retire(store, "config", {"config:" + e["name"] for e in settings.api_keys})
    for entry in settings.api_keys:
        secret = entry.get("key") or environ.get(entry.get("key_env", ""), "")
        if not secret:
            raise SettingError(f"api_keys {entry['name']}: environment variable {entry.get('key_env')} is not set")
        hospital = entry.get("hospital") or DEFAULT_HOSPITAL
        if hospital not in {h["id"] for h in directory.list_hospitals(store)}:
            directory.add_hospital(store, hospital, hospital)
        try:
            keys.provision(store, "config:" + entry["name"], secret, entry["scopes"], hospital, "config")
        except ArchiveError as exc:
            raise SettingError(f"api_keys {entry['name']}: {exc.reason}") from None
    return Auth(store, Identifier(store), first)
