"""The audit trail (issue 12): one append-only, hash-chained record per access and security event.

`start(...)` (the composition root) opens the trail over the app-state store; anything in the
process then calls `record(action, ...)`: login success and failure, logout, lockout, user, role
and key changes, DIMSE hooks. HTTP accesses are recorded by `yunying.audit.middleware`.
Without a started trail (a CLI tool, a unit test), `record` writes straight to the store when
one is given, else does nothing.
"""
from __future__ import annotations

import logging
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from yunying.audit.trail import Entry, PatientLookup, Trail
from yunying.auth.principal import Principal

log = logging.getLogger("yunying.audit")
_trail: Trail | None = None
_forwarder: Any = None


def start(data: Path, engine: Any, patients: PatientLookup | None = None, syslog: str = "",
          syslog_ca: str = "", **options: Any) -> Trail:
    """Open (once per process) the trail writing to the store's engine; forward it to `syslog`
    (tls://host:port) when given."""
    global _trail, _forwarder
    if _trail is None or _trail.engine is not engine:
        import yunying.audit.schema
        import yunying.audit.syslog
        from yunying.audit.chain import load_key
        from yunying.auth.store import Store

        Store(engine, None).migrate()
        _trail = Trail(engine, load_key(data), patients, journal=Path(data) / "audit.journal", **options)
        if syslog:
            _forwarder = yunying.audit.syslog.Forwarder(engine, syslog, syslog_ca)
    return _trail


def current() -> Trail | None:
    return _trail


def stop() -> None:
    """Write what is pending and stop the writer (at shutdown)."""
    global _trail, _forwarder
    if _trail is not None:
        _trail.close()
        _trail = None
    if _forwarder is not None:
        _forwarder.close()
        _forwarder = None


def principal_fields(principal: Principal | None) -> Entry:
    """The record's who: kind, id, roles, hospital (never a patient identifier)."""
    if principal is None:
        return {"principal_kind": "anonymous", "principal_id": ""}
    return {"principal_kind": principal.kind, "principal_id": principal.id,
            "roles": " ".join(sorted(principal.roles)), "hospital": principal.hospital or ""}


def record(action: str, outcome: str = "success", principal: Principal | None = None,
           wait: bool = False, **fields: Any) -> Future[int] | None:
    """Record one event, e.g. record("login", "failure", principal_id=username, client=ip).

    Fields are those of yunying.audit.schema.records (principal_id, client, status, detail,
    studies ...). wait=True blocks until the record is committed.
    """
    trail = _trail
    if trail is None:
        return None
    entry: Entry = {"action": action, "outcome": outcome, **principal_fields(principal), **fields}
    entry.setdefault("face", "http")
    fut = trail.submit(entry)
    if wait:
        fut.result(timeout=30)
    return fut


def write_now(engine: Any, key: bytes, action: str, detail: dict[str, Any]) -> int:
    """Record a command-line act at once, without a writer thread (a one-shot CLI process)."""
    import getpass

    from yunying.audit.trail import _complete

    class _Writer:  # Trail.write needs only these two
        def __init__(self) -> None:
            self.engine, self.key = engine, key
    entry = _complete({"action": action, "principal_kind": "user", "principal_id": "os:" + getpass.getuser(),
                       "face": "cli", "status": "ok", "detail": detail})
    return Trail.write(_Writer(), [entry])  # type: ignore[arg-type]


def record_cli(args: Any, action: str, detail: dict[str, Any]) -> None:
    """Record an administrative command (`yunying users ...`) in the trail of its data folder."""
    import yunying.audit.schema  # noqa: F401 - registers the "audit" migrations
    from yunying.audit.chain import load_key
    from yunying.auth.store import open_store
    from yunying.settings import load_settings

    settings = load_settings(getattr(args, "config", None), {"data": args.data} if getattr(args, "data", None) else {})
    if not settings.audit:
        return
    store = open_store(settings.data, settings.app_database, settings.pii_key_file)
    write_now(store.engine, load_key(settings.data), action, detail)
