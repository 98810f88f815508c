"""Fixtures of the record tests: a record store on a fresh app-state database, hospital databases."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from yunying.archive import Archive
from yunying.auth.store import open_store
from yunying.pii import new_key_line, parse
from yunying.records.idcard import check_character
from yunying.records.store import RecordStore

KEYS = parse(new_key_line("blind") + new_key_line("seal", "k1"))


def id_card(first17: str = "11010519491231002") -> str:
    """A resident ID number with its correct check character."""
    return first17 + check_character(first17)


@pytest.fixture(params=["sqlite", "postgresql"])
def records(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RecordStore]:
    """A record store on SQLite, and the same on PostgreSQL (the code must run on both)."""
    if request.param == "sqlite":
        store = open_store(tmp_path / "data")
        yield RecordStore(store, KEYS)
        store.engine.dispose()
        return
    url = request.getfixturevalue("pg_url")
    store = open_store(tmp_path / "data", url)
    yield RecordStore(store, KEYS)
    store.engine.dispose()


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    """A real archive in the test's folder (in-process)."""
    a = Archive(tmp_path / "archive")
    yield a
    a.close()


@contextmanager
def hospital_service(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A hospital's web service: `handler` on a free loopback port; yields its exams URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/his/exams"
    finally:
        server.shutdown()
        server.server_close()
