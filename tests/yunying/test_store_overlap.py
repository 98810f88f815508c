"""Where Archive.store writes: here while stores come one at a time, in the ingest workers while
they overlap and for OVERLAP_S after (issue 9: the small-instance load over 4 associations)."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from index.model import Origin
from tests.dicomweb.helpers import make_ct, part10
from yunying import archive as archive_module
from yunying.archive import Archive

ORIGIN = Origin("import", "test")


def _counting(archive: Archive, monkeypatch: pytest.MonkeyPatch, hold: threading.Event | None = None) -> list[str]:
    """Record the SOP of each store handed to a worker (optionally held until `hold` is set)."""
    pool = archive._pool
    assert pool is not None
    calls: list[str] = []
    real = pool.write

    def counted(source: Any, *a: Any, **k: Any) -> Any:
        calls.append("worker")
        if hold is not None:
            hold.wait(10)
        return real(source, *a, **k)
    monkeypatch.setattr(pool, "write", counted)
    return calls


class _Clock:
    """yunying.archive's time module, its monotonic clock stopped and moved forward at will (on a
    loaded machine the real one could pass OVERLAP_S between two steps of a test)."""

    def __init__(self) -> None:
        self.now = time.monotonic()
        self.sleep = time.sleep

    def monotonic(self) -> float:
        return self.now


def test_stores_one_at_a_time_stay_in_this_process(pooled: Archive, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _counting(pooled, monkeypatch)
    study = make_ct().StudyInstanceUID
    for i in range(5):
        assert pooled.store(part10(make_ct(study, rows=16, cols=16, number=i)), ORIGIN).outcome == "stored"
    assert calls == []


def test_after_an_overlap_the_next_lone_stores_go_to_a_worker_until_it_is_old(
        pooled: Archive, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(archive_module, "time", clock)
    hold = threading.Event()
    calls = _counting(pooled, monkeypatch, hold)
    study = make_ct().StudyInstanceUID
    items = [make_ct(study, rows=16, cols=16, number=i) for i in range(4)]
    datas = [part10(ds) for ds in items]
    # the first store is alone: it writes here; make it overlap with a second one held in a worker
    first_done, first_writing = threading.Event(), threading.Event()
    real_write = archive_module.write_instance

    def slow_write(*a: Any, **k: Any) -> Any:
        first_writing.set()
        first_done.wait(10)
        return real_write(*a, **k)
    monkeypatch.setattr(archive_module, "write_instance", slow_write)
    t = threading.Thread(target=pooled.store, args=(datas[0], ORIGIN))
    t.start()
    assert first_writing.wait(10)  # the first is writing here (events, not sleeps: a loaded machine)
    second = threading.Thread(target=pooled.store, args=(datas[1], ORIGIN))
    second.start()  # overlaps: goes to the worker (held there)
    deadline = time.monotonic() + 10
    while not calls and time.monotonic() < deadline:
        time.sleep(0.01)
    assert calls == ["worker"], "the overlapping store did not go to a worker"
    first_done.set()
    t.join(10)
    hold.set()
    second.join(10)
    monkeypatch.setattr(archive_module, "write_instance", real_write)
    assert calls == ["worker"]
    assert pooled.store(datas[2], ORIGIN).outcome == "stored"  # alone, but right after an overlap
    assert calls == ["worker", "worker"]
    clock.now += archive_module.OVERLAP_S
    assert pooled.store(datas[3], ORIGIN).outcome == "stored"  # alone, the overlap long past
    assert calls == ["worker", "worker"]
    pooled.flush()
    assert sorted(r.sop for r in pooled.instances(study)) == sorted(ds.SOPInstanceUID for ds in items)


@pytest.mark.parametrize("as_file", [False, True])
def test_while_stores_overlap_a_small_instance_is_written_here_a_large_one_in_a_worker(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, as_file: bool) -> None:
    archive = Archive(tmp_path / "data", ingest_processes=1, inline_bytes=64 * 1024)
    try:
        calls = _counting(archive, monkeypatch)
        # stores overlapped a moment ago (how that is detected: the test above)
        archive._overlap_until = time.monotonic() + 60
        study = make_ct().StudyInstanceUID
        small = part10(make_ct(study, rows=16, cols=16, number=1))
        large = part10(make_ct(study, rows=256, cols=256, number=2))  # 128 KiB of pixels
        assert len(small) < 64 * 1024 < len(large)
        sources: list[bytes | Path] = [small, large]
        if as_file:  # a spooled STOW part / received file: its size is read from the file
            sources = [tmp_path / "small.dcm", tmp_path / "large.dcm"]
            sources[0].write_bytes(small)  # type: ignore[union-attr]
            sources[1].write_bytes(large)  # type: ignore[union-attr]
        assert archive.store(sources[0], ORIGIN).outcome == "stored"
        assert calls == []
        assert archive.store(sources[1], ORIGIN).outcome == "stored"
        assert calls == ["worker"]
        assert len(archive.instances(study)) == 2
    finally:
        archive.close()


def test_c_store_has_its_own_inline_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """dimse_inline_bytes (ct10, issue 9): while stores overlap, a C-STORE'd CT slice under it is
    written here; the same bytes from STOW-RS go to a worker (ingest_inline_bytes)."""
    archive = Archive(tmp_path / "data", ingest_processes=1, inline_bytes=64 * 1024,
                      dimse_inline_bytes=16 << 20)
    try:
        calls = _counting(archive, monkeypatch)
        archive._overlap_until = time.monotonic() + 60
        study = make_ct().StudyInstanceUID
        by_dimse = part10(make_ct(study, rows=256, cols=256, number=1))
        by_stow = part10(make_ct(study, rows=256, cols=256, number=2))
        assert archive.store(by_dimse, Origin("dimse", "MODALITY")).outcome == "stored"
        assert calls == []
        assert archive.store(by_stow, Origin("stow", "client")).outcome == "stored"
        assert calls == ["worker"]
        assert len(archive.instances(study)) == 2
    finally:
        archive.close()


def test_dimse_inline_bytes_resolves_by_cpu_count(monkeypatch: pytest.MonkeyPatch) -> None:
    from yunying.settings import Settings

    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert Settings().dimse_inline() == 16 << 20
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert Settings().dimse_inline() == Settings().ingest_inline_bytes
    assert Settings(dimse_inline_bytes=0).dimse_inline() == 0
