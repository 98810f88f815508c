"""The archive's index writer lingers for more records without being woken by each one; a
reader's flush, a full batch and close still cut the lingering short (read-your-writes)."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

from index.model import Origin
from tests.dicomweb.helpers import make_ct, part10
from yunying import archive as archive_module
from yunying.archive import Archive

ORIGIN = Origin("import", "test")
HANG_S = 60.0  # lingering this long would show as a hang, not as slowness


def _flushed_within(archive: Archive, timeout: float) -> bool:
    done = threading.Event()

    def run() -> None:
        archive.flush()
        done.set()
    threading.Thread(target=run, daemon=True).start()
    return done.wait(timeout)


def test_flush_behind_full_batches_does_not_linger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archive_module, "LINGER_S", HANG_S)
    archive = Archive(tmp_path / "data", batch=3)
    try:
        study = make_ct().StudyInstanceUID
        sops = [archive.store(part10(make_ct(study, number=i)), ORIGIN, wait=False).sop_instance
                for i in range(10)]
        # the flush marker is queued behind three full batches and one partial one
        assert _flushed_within(archive, HANG_S / 4), "flush waited for the writer's lingering"
        assert archive._pending == {}
        assert all(archive.index.lookup(sop) is not None for sop in sops)
    finally:
        archive.close()


def test_store_with_wait_is_indexed_on_return(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archive_module, "LINGER_S", HANG_S)
    archive = Archive(tmp_path / "data")
    try:
        result = archive.store(part10(make_ct()), ORIGIN, wait=False)  # lingers in the queue
        waited = archive.store(part10(make_ct(result.study)), ORIGIN)  # wait=True: a flush of its own
        assert waited.committed is not None and waited.committed.done()
        assert result.committed is not None and result.committed.done()  # queued before: same batch
        assert archive.index.lookup(waited.sop_instance) is not None
        assert archive.index.lookup(result.sop_instance) is not None
    finally:
        archive.close()


def test_concurrent_stores_all_indexed_and_close_commits_the_rest(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archive_module, "LINGER_S", HANG_S)
    archive = Archive(tmp_path / "data", batch=7)
    study = make_ct().StudyInstanceUID
    blobs = [part10(make_ct(study, number=i)) for i in range(40)]
    sops: list[str] = []

    def run(part: list[bytes]) -> None:
        for b in part:
            sops.append(archive.store(b, ORIGIN, wait=False).sop_instance)
    threads = [threading.Thread(target=run, args=(blobs[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    closer = threading.Thread(target=archive.close, daemon=True)
    closer.start()
    closer.join(HANG_S / 4)
    assert not closer.is_alive(), "close waited for the writer's lingering"
    again = Archive(tmp_path / "data")
    try:
        assert all(again.index.lookup(sop) is not None for sop in sops) and len(sops) == 40
        assert again.check()["orphans"] == []
    finally:
        again.close()
