"""The audit writer's hot path (issue 11's cost target, issue 12's promises): a journaled record
needs no Future, a journal that cannot be written makes the caller wait for the commit, and the
keyed SM3 HMAC reused across records gives the same chain as one keyed per record."""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import yunying.audit.schema  # noqa: F401 - registers the "audit" migrations
from yunying.audit import chain
from yunying.audit.store import search, verify
from yunying.audit.trail import Trail
from yunying.auth.store import Store, open_store

KEY = bytes(range(32))


@pytest.fixture
def trail(tmp_path: Path) -> Iterator[Trail]:
    store = open_store(tmp_path, "", "")
    Store(store.engine, None).migrate()
    t = Trail(store.engine, KEY, journal=tmp_path / "audit.journal", window=0.5)  # the writer waits: the journal is read first
    yield t
    t.close()


def _entry(i: int) -> dict:
    return {"action": "query", "principal_kind": "system", "principal_id": "ris", "status": "200",
            "detail": {"method": "GET", "path": "/dicomweb/studies", "n": i}}


def test_a_journaled_record_is_on_disk_when_the_call_returns_and_committed_later(trail: Trail) -> None:
    assert trail.journal is not None
    assert trail.journal_or_submit(_entry(1)) is None  # nothing to wait for: it is in the journal
    # the line was written before the call returned (what survives a kill -9)
    assert b'"principal_id":"ris"' in trail.journal.path.read_bytes()
    for i in range(2, 50):
        assert trail.journal_or_submit(_entry(i)) is None
    trail.sync()
    rows = search(trail.engine, limit=100)
    assert sorted(r["detail"] for r in rows) == sorted(f'{{"method":"GET","path":"/dicomweb/studies","n":{i}}}'
                                                       for i in range(1, 50))
    assert verify(trail.engine, KEY) == (49, [])
    assert trail.journal.path.read_bytes() == b""  # all committed: the journal starts afresh


def test_a_journal_that_cannot_be_written_makes_the_caller_wait(trail: Trail,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    assert trail.journal is not None

    def full_disk(entry: dict) -> None:
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(trail.journal, "append", full_disk)
    fut = trail.journal_or_submit(_entry(1))
    assert fut is not None and not getattr(fut, "durable", True)
    assert fut.result(timeout=10) == 1  # committed before the answer may go out
    assert verify(trail.engine, KEY) == (1, [])


def test_the_reused_keyed_hmac_equals_a_fresh_one() -> None:
    import hashlib
    import hmac as std_hmac

    from cryptography.hazmat.primitives import hashes, hmac
    for data in (b"", b"a", b"x" * 5000):
        if chain.ALG == "hmac-sm3":
            fresh = hmac.HMAC(KEY, hashes.SM3())
            fresh.update(data)
            expected = fresh.finalize().hex()
        else:  # an OpenSSL without SM3: the chain uses HMAC-SHA256
            expected = std_hmac.new(KEY, data, hashlib.sha256).hexdigest()
        assert chain.mac(KEY, data) == expected
    assert chain.mac(KEY, b"a") != chain.mac(bytes(32), b"a")  # one keyed object per key


def test_the_writer_blocks_until_work_arrives_and_wakes_for_a_fold_window(tmp_path: Path) -> None:
    """No open fold window: the writer waits on its queue without a timeout (it polled every
    0.5 s); a window open: it wakes when that window is due, and the window's count is written."""
    store = open_store(tmp_path, "", "")
    Store(store.engine, None).migrate()
    t = Trail(store.engine, KEY, journal=tmp_path / "audit.journal", window=0.01, fold_idle=0.2, fold_max=1.0)
    try:
        assert t._next_wait() is None
        key = ("system", "ris", "127.0.0.1", "1.2.3", "1.2.3.4")
        for i in range(3):
            t.fold(key, {**_entry(i), "action": "frames", "studies": "1.2.3", "series": "1.2.3.4"})
        wait = t._next_wait()
        assert wait is not None and 0 < wait <= 0.2
        deadline = time.monotonic() + 10
        while sum(r["count"] for r in search(t.engine, limit=10)) < 3:  # the first record, then the count of 2
            assert time.monotonic() < deadline, search(t.engine, limit=10)
            time.sleep(0.05)
        assert t._next_wait() is None  # the window closed with its count written
    finally:
        t.close()


def test_a_reader_does_not_wait_for_the_batching_window(tmp_path: Path) -> None:
    """The writer gathers journaled records for `window` seconds per commit (fewer synced
    commits); sync() (the audit API reading its own trail) cuts that window short."""
    store = open_store(tmp_path, "", "")
    Store(store.engine, None).migrate()
    t = Trail(store.engine, KEY, journal=tmp_path / "audit.journal", window=120.0)
    try:
        for i in range(3):
            assert t.journal_or_submit(_entry(i)) is None
        t.sync(timeout=30)  # raises TimeoutError if it waited for the 120 s window
        assert len(search(t.engine, limit=10)) == 3
    finally:
        t.close()


def test_counted_adds_to_an_open_window_only(tmp_path: Path) -> None:
    """What the HTTP middleware asks before building a frame's record: counted() is False with
    no window open (the record is built and folded), True once one is, and every count is kept."""
    store = open_store(tmp_path, "", "")
    Store(store.engine, None).migrate()
    t = Trail(store.engine, KEY, journal=tmp_path / "audit.journal", window=0.01, fold_idle=0.2, fold_max=1.0)
    key = ("system", "ris", "127.0.0.1", "1.2.3", "1.2.3.4")
    try:
        assert t.counted(key) is False
        t.fold(key, {**_entry(0), "action": "frames", "studies": "1.2.3", "series": "1.2.3.4"})
        assert t.counted(key) is True and t.counted(key) is True
        assert t.counted(("system", "ris", "127.0.0.1", "1.2.3", "other")) is False  # another series
    finally:
        t.close()  # writes the open window
    assert sorted(r["count"] for r in search(store.engine, limit=10)) == [1, 2]


def test_values_longer_than_their_column_are_clipped_before_hashing(trail: Trail) -> None:
    """Stored as they fit a PostgreSQL column, hashed as stored: the chain verifies."""
    long_id, studies = "u" * 500, " ".join(["1.2.3"] * 1000)  # principal_id is String(200); studies Text
    trail.submit({**_entry(1), "principal_id": long_id, "studies": studies}).result(10)
    trail.submit(_entry(2)).result(10)
    rows = sorted(search(trail.engine), key=lambda r: r["seq"])
    assert rows[0]["principal_id"] == "u" * 200 and rows[0]["studies"] == studies
    assert rows[1]["principal_id"] == "ris"
    assert rows[1]["prev_hash"] == rows[0]["hash"] == chain.record_hash(KEY, rows[0])
    assert verify(trail.engine, KEY) == (2, [])
