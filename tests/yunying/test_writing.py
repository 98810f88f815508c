"""Ingest in worker processes keeps the archive's rules: one version per content, conflicts leave
nothing behind, a dead worker is replaced, and a crash between write and decision is recovered."""
from __future__ import annotations

import hashlib
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from index.model import Origin
from tests.dicomweb.helpers import make_ct, part10
from yunying.archive import Archive
from yunying.errors import InstanceConflict, UnknownResource
from yunying.workers import IngestPool
from yunying.writing import write_instance

ORIGIN = Origin("import", "test")


@pytest.fixture
def ingest_processes() -> int:
    """Two workers for tests/conftest.py's `pooled`: a dead one must not stop the other."""
    return 2


def _worker_pids(pool: IngestPool) -> list[int]:
    """The pool's worker processes."""
    assert pool.running
    return pool.pids()


def _problems(archive: Archive) -> tuple[list[str], list[str]]:
    report = archive.check()
    return report["missing"], report["orphans"]


def _sops(archive: Archive, study: str) -> list[str]:
    try:
        return [r.sop for r in archive.instances(study)]
    except UnknownResource:
        return []


def test_overlapping_stores_go_through_the_workers_and_come_back_identical(pooled: Archive,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    study = make_ct().StudyInstanceUID
    items = [make_ct(study, rows=64, cols=64, frames=3, number=i) for i in range(12)]
    datas = [part10(ds) for ds in items]
    pool = pooled._pool
    assert pool is not None
    calls = []
    real = pool.write

    def counted(*a: Any, **k: Any) -> Any:
        calls.append(1)
        return real(*a, **k)
    monkeypatch.setattr(pool, "write", counted)
    with ThreadPoolExecutor(4) as ex:
        outcomes = list(ex.map(lambda d: pooled.store(d, ORIGIN).outcome, datas))
    assert outcomes == ["stored"] * 12 and calls  # overlapping stores used the workers
    for ds, data in zip(items, datas):
        row = pooled.instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        assert pooled.read_part10(row) == data  # as received, file meta included
    assert pooled.store(datas[0], ORIGIN).outcome == "duplicate"


def test_the_same_instance_sent_many_times_at_once_is_stored_once(pooled: Archive) -> None:
    ds = make_ct(rows=128, cols=128)
    data = part10(ds)
    with ThreadPoolExecutor(8) as ex:
        outcomes = list(ex.map(lambda _: pooled.store(data, ORIGIN).outcome, range(16)))
    assert outcomes.count("stored") == 1 and outcomes.count("duplicate") == 15
    assert _sops(pooled, ds.StudyInstanceUID) == [ds.SOPInstanceUID]
    assert _problems(pooled) == ([], [])


def test_a_conflict_leaves_no_bytes_behind(pooled: Archive) -> None:
    ds = make_ct()
    pooled.store(part10(ds), ORIGIN)
    moved = make_ct(sop=ds.SOPInstanceUID)  # same SOP Instance UID, another study
    with pytest.raises(InstanceConflict):
        pooled.store(part10(moved), ORIGIN)
    assert _problems(pooled) == ([], [])
    assert _sops(pooled, moved.StudyInstanceUID) == []


def test_a_killed_worker_is_replaced_and_the_store_goes_through(tmp_path: Path) -> None:
    archive = Archive(tmp_path / "data", ingest_processes=1)
    try:
        first = make_ct()
        archive.store(part10(first), ORIGIN)
        pool = archive._pool
        assert pool is not None
        pids = _worker_pids(pool)
        assert pids
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        second = make_ct(first.StudyInstanceUID)
        written = pool.write(part10(second), ORIGIN)  # the first attempt meets the dead worker
        assert not written.existed and written.sop == second.SOPInstanceUID
        assert _worker_pids(pool) != pids
        assert archive.store(part10(second), ORIGIN).outcome == "stored"
        assert sorted(_sops(archive, first.StudyInstanceUID)) == sorted([first.SOPInstanceUID, second.SOPInstanceUID])
    finally:
        archive.close()


def test_recovery_drops_a_version_written_for_a_conflict_before_a_crash(tmp_path: Path) -> None:
    archive = Archive(tmp_path / "data")
    ds = make_ct()
    archive.store(part10(ds), ORIGIN)
    moved = make_ct(sop=ds.SOPInstanceUID)
    # the bytes are written (as a worker does) and the server dies before refusing them
    written = write_instance(archive.storage, part10(moved), ORIGIN)
    archive.close()
    (tmp_path / "data" / "RUNNING").write_text("unclean stop\n")
    archive = Archive(tmp_path / "data")
    try:
        assert written.key not in set(archive.storage.versions())
        assert _sops(archive, ds.StudyInstanceUID) == [ds.SOPInstanceUID]
        assert _sops(archive, moved.StudyInstanceUID) == []
    finally:
        archive.close()


def test_workers_ignore_a_terminal_or_group_signal(pooled: Archive) -> None:
    pool = pooled._pool
    assert pool is not None
    pool.write(part10(make_ct()), ORIGIN)  # the workers are up
    before = _worker_pids(pool)
    for pid in before:
        os.kill(pid, signal.SIGTERM)
        os.kill(pid, signal.SIGINT)
    assert not pool.write(part10(make_ct()), ORIGIN).existed
    assert _worker_pids(pool) == before


def test_a_resend_of_a_version_being_replaced_keeps_its_bytes(tmp_path: Path) -> None:
    """A -> B (same SOP, new content) -> A again, acknowledged before B is indexed: when B's commit
    removes A's folder, the resend of A must not be indexed pointing at the removed folder."""
    archive = Archive(tmp_path / "data")
    try:
        a = make_ct()
        b = make_ct(a.StudyInstanceUID, a.SeriesInstanceUID, sop=a.SOPInstanceUID, name="Other^Name")
        archive.store(part10(a), ORIGIN)
        archive.store(part10(b), ORIGIN, wait=False)
        assert archive.store(part10(a), ORIGIN, wait=False).outcome == "replaced"
        row = archive.instance(a.StudyInstanceUID, a.SeriesInstanceUID, a.SOPInstanceUID)
        assert archive.read_part10(row) == part10(a)
        assert _problems(archive) == ([], [])
    finally:
        archive.close()


def test_workers_end_when_their_server_is_killed(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    script = (
        "import sys, time\n"
        "from yunying.archive import Archive\n"
        "a = Archive(sys.argv[1], ingest_processes=2)\n"
        "deadline = time.monotonic() + 60\n"
        "while len(a._pool.pids()) < 2 and time.monotonic() < deadline:\n"
        "    time.sleep(0.05)\n"
        "print(' '.join(str(p) for p in a._pool.pids()), flush=True)\n"
        "time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "data")], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2 and all(Path(f"/proc/{p}").exists() for p in pids)
    finally:
        proc.kill()  # SIGKILL: no drain, no close
        proc.wait()
    deadline = time.monotonic() + 20
    while any(Path(f"/proc/{p}").exists() and b"zombie" not in Path(f"/proc/{p}/status").read_bytes().lower()
              for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in pids if Path(f"/proc/{p}").exists()
                and b"zombie" not in Path(f"/proc/{p}/status").read_bytes().lower()]


def _big(i: int) -> bytes:
    return part10(make_ct(rows=256, cols=256, number=i))  # > HANDOFF_ABOVE: goes through /dev/shm


def test_instances_reach_the_workers_through_shared_memory_and_leave_nothing_there(tmp_path: Path,
                                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from yunying import workers as writing

    a = Archive(tmp_path / "data", ingest_processes=2)
    pool = a._pool
    assert pool is not None and pool._files is not None and pool._files.folder.is_dir()
    handoff = pool._files.folder
    # the same file reused for the next ones: a shorter instance, then a longer one again
    datas = [_big(1), part10(make_ct(rows=160, cols=256, number=3)), _big(4)]
    assert all(len(d) > writing.HANDOFF_ABOVE for d in datas)
    sent: list[tuple[Path, int] | None] = []
    real = pool._hand_off
    def recorded(source: Path | bytes) -> tuple[Path, int] | None:
        sent.append(real(source))
        return sent[-1]
    monkeypatch.setattr(pool, "_hand_off", recorded)
    for data in datas:
        w = pool.write(data, ORIGIN)
        assert a.storage.complete(w.key)
        assert w.digest == hashlib.sha256(data).hexdigest()  # the worker read this instance, no more
    assert all(s is not None and s[0].parent == handoff for s in sent)  # tmpfs files, not the pipe
    assert len({s[0] for s in sent if s is not None}) == 1  # one file, written over each time
    assert len(list(handoff.iterdir())) == 1  # kept for the next write ...
    pool._files.clear()
    assert list(handoff.iterdir()) == []  # ... and removed when idle
    a.close()
    assert not handoff.exists()


def test_without_room_in_shared_memory_the_instance_goes_through_the_pipe(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    a = Archive(tmp_path / "data", ingest_processes=1)
    try:
        pool = a._pool
        assert pool is not None and pool._files is not None
        real_write = os.write

        def full(fd: int, data: bytes) -> int:  # /dev/shm full (a container's 64 MB default)
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "write", full)
        data = _big(2)
        assert pool._hand_off(data) is None  # the pipe takes it; nothing half-written is left behind
        assert list(pool._files.folder.iterdir()) == []
        monkeypatch.setattr(os, "write", real_write)
        w = pool.write(data, ORIGIN)
        assert a.storage.complete(w.key)
    finally:
        a.close()


def test_a_dead_servers_hand_off_folder_is_swept_at_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from yunying import workers as writing

    monkeypatch.setattr(writing, "SHM_ROOT", tmp_path / "shm")
    (tmp_path / "shm").mkdir()
    dead = tmp_path / "shm" / "yunying-ingest-999999999-abc"  # no such pid
    dead.mkdir()
    (dead / "leftover").write_bytes(b"x")
    mine = writing._handoff_folder()
    assert mine is not None and mine.is_dir() and not dead.exists()


def test_a_failed_sync_after_a_worker_wrote_leaves_no_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server syncs what its workers wrote; an I/O error there fails the store and removes
    the version it wrote (as the worker itself did before), so nothing unsynced is indexed later."""
    a = Archive(tmp_path / "data", ingest_processes=1)
    try:
        pool = a._pool
        assert pool is not None and a.storage.group_sync  # Linux: syncfs, done by the server

        def broken_sync(key: str, new_parents: int = 3) -> None:
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(a.storage, "sync", broken_sync)
        with pytest.raises(OSError):
            pool.write(_big(3), ORIGIN)
        assert list(a.storage.versions()) == []
    finally:
        a.close()


def test_idle_workers_exit_and_come_back(tmp_path: Path) -> None:
    """Issue 9 part 5: worker processes do not sit in memory between bursts of stores."""
    import time

    from storage import Storage

    pool = IngestPool(Storage(tmp_path / "store"), 1, idle_exit_s=0.3)
    try:
        first = pool.write(part10(make_ct()), ORIGIN)
        pids = _worker_pids(pool)
        deadline = time.monotonic() + 10

        def gone() -> bool:  # exited and reaped by their parent, the forkserver
            return not pool.running and not any(Path(f"/proc/{pid}").exists() for pid in pids)

        while not gone() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pids and gone()
        again = pool.write(part10(make_ct()), ORIGIN)  # the next store brings them back
        assert pool.running and again.sop != first.sop and pool.pids() != pids
    finally:
        pool.close()


def test_small_instances_are_one_file_and_large_ones_a_folder(tmp_path: Path) -> None:
    """Issue 9: a small version is packed (one create, one inode); retrieval is unchanged."""
    archive = Archive(tmp_path / "data")
    try:
        small, large = make_ct(rows=8, cols=8), make_ct(rows=256, cols=256)
        for ds in (small, large):
            raw = part10(ds)
            first = archive.store(raw, ORIGIN)
            assert first.outcome == "stored"
            assert archive.store(raw, ORIGIN).outcome == "duplicate"  # the same bytes again
            row = archive.row(str(ds.SOPInstanceUID))
            assert row is not None
            back = archive.read_dataset(row)
            assert back.PixelData == ds.PixelData and back.PatientName == ds.PatientName
        small_path = archive.storage.path(archive.row(str(small.SOPInstanceUID)).storage_key)  # type: ignore[union-attr]
        large_path = archive.storage.path(archive.row(str(large.SOPInstanceUID)).storage_key)  # type: ignore[union-attr]
        assert small_path.is_file() and large_path.is_dir()
        assert _problems(archive) == ([], [])
    finally:
        archive.close()


def test_the_patient_of_a_study_just_stored_is_known_without_an_index_search(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The audit trail names the patient of each store; asking the index for it waited for the
    group commit of everything acknowledged (a forced commit per STOW request, issue 9)."""
    from yunying.audit.patients import study_patients

    archive = Archive(tmp_path / "data")
    try:
        ds = make_ct(patient_id="PX-1", accession="ACC-9")
        archive.store(part10(ds), ORIGIN, wait=False)

        def no_search(query: object) -> None:
            raise AssertionError("the look-up searched the index")
        monkeypatch.setattr(archive, "search", no_search)
        assert study_patients(archive)(str(ds.StudyInstanceUID)) == ("PX-1", "", "ACC-9")
        assert archive.study_patient("1.2.3.4") is None
    finally:
        archive.close()
