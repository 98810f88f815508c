"""The app-state store: SQLAlchemy Core over SQLite (default) or PostgreSQL, with migrations.

App state (users, roles, keys, tokens, grants; later the OIDC clients, the audit trail, the
portal's shares) lives here; the study index stays in DuckDB.

Migrations are ordered, versioned functions per *component*; `schema_migrations(component,
version)` records which ran. Any component registers its own at import time::

    from yunying.auth.store import migration

    @migration("oidc", 1)
    def create_clients(conn: Connection) -> None:
        oidc_tables.create_all(conn)        # or conn.execute(text("ALTER TABLE ...")) later

`open_store(url)` creates the tables that are missing by running, in one transaction per
migration, every registered migration whose (component, version) is not recorded yet, in
version order within each component (components in registration order). A migration must
be written in portable SQLAlchemy Core (no SQLite-only SQL) so the same history runs on
PostgreSQL. Never change what a released migration creates: a new table or column is a new
version (yunying/auth/schema.py keeps later tables in their own MetaData for that reason).
Import the module that registers migrations before `open_store` (the composition
root imports `yunying.auth` components; others import theirs in their own `mount` code and
call `store.migrate()` again: it is idempotent).
"""
from __future__ import annotations

import logging
import mmap
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    select,
)
from sqlalchemy.engine import Connection

from yunying.pii import PiiKeyError, PiiKeys, keys_for

log = logging.getLogger("yunying.auth")

Migration = Callable[[Connection], None]
_MIGRATIONS: dict[tuple[str, int], Migration] = {}
_COMPONENTS: list[str] = []

_meta = MetaData()
schema_migrations = Table(
    "schema_migrations", _meta,
    Column("component", String(64), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("applied_at", BigInteger, nullable=False),
)


def migration(component: str, version: int) -> Callable[[Migration], Migration]:
    """Register `fn` as migration `version` (1, 2, ...) of `component`."""
    def register(fn: Migration) -> Migration:
        key = (component, version)
        if key in _MIGRATIONS and _MIGRATIONS[key] is not fn:
            raise ValueError(f"migration {component} {version} registered twice")
        _MIGRATIONS[key] = fn
        if component not in _COMPONENTS:
            _COMPONENTS.append(component)
        return fn
    return register


class Stamp:
    """8 bytes in a file, mapped into memory: changed (randomly) on every revocation, so every
    process sharing the data folder sees the change on its next read, without a system call
    per request (a stat() costs 12-20 us on these machines)."""

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < 8:
                os.write(fd, os.urandom(8))
            self._map = mmap.mmap(fd, 8)
        finally:
            os.close(fd)

    def read(self) -> int:
        return int.from_bytes(self._map[:8], "little")

    def change(self) -> None:
        self._map[:8] = os.urandom(8)  # random, not +1: two revocations never write the same value


@dataclass
class Store:
    """The engine of the app-state database and its revocation stamp."""

    engine: Engine
    stamp: Stamp | None  # changed on every revocation so every process drops cached identities
    data: Path | None = None  # the data folder: where the personal-data keys are found (yunying.pii)
    pii_key_file: str = ""

    def pii(self) -> PiiKeys:
        """The personal-data keys of this store's data folder (users' phones are sealed with them)."""
        if self.data is None:
            raise PiiKeyError("this store was opened without its data folder: no personal-data keys")
        return keys_for(self.data, self.pii_key_file)

    def migrate(self) -> list[tuple[str, int]]:
        """Run the registered migrations not yet recorded; returns those it ran."""
        schema_migrations.create(self.engine, checkfirst=True)
        with self.engine.connect() as conn:
            done = {(r.component, r.version) for r in conn.execute(select(schema_migrations))}
        ran = []
        for component in _COMPONENTS:
            for key in sorted(k for k in _MIGRATIONS if k[0] == component):
                if key in done:
                    continue
                with self.engine.begin() as conn:  # one transaction per migration
                    _MIGRATIONS[key](conn)
                    conn.execute(schema_migrations.insert().values(
                        component=key[0], version=key[1], applied_at=int(time.time())))
                log.info("app-state migration %s %d applied", *key)
                ran.append(key)
        return ran

    def revoked(self) -> None:
        """Say that a credential, user or role changed: cached identities are stale now."""
        if self.stamp is not None:
            self.stamp.change()

    def generation(self) -> int:
        """Changes whenever `revoked()` was called, in any process sharing the data folder."""
        return -1 if self.stamp is None else self.stamp.read()  # -1: no shared stamp, never cache


def database_url(data: Path, url: str = "") -> str:
    """The configured URL, or SQLite at `<data>/app.sqlite`."""
    return url or f"sqlite:///{Path(data).resolve() / 'app.sqlite'}"


def open_store(data: Path, url: str = "", pii_key_file: str = "") -> Store:
    """Connect to the app-state database and bring its schema up to date."""
    import yunying.auth.schema  # noqa: F401 - registers the auth component's migrations

    url = database_url(data, url)
    Path(data).mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    stamp = None
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")  # the CLI writes while the server reads
            cur.execute("PRAGMA busy_timeout=5000")
            cur.close()
        stamp = Stamp(Path(data) / "app.revoked")
    store = Store(engine, stamp, Path(data), pii_key_file)
    store.migrate()
    return store
