"""Writing one received instance: parse, write its version folder, make it durable.

This is the CPU-heavy half of a store (pydicom parsing, the DICOM JSON, hashing, pixel
compression). It needs only storage/, so it runs in the server process or in ingest worker
processes (`IngestPool`): one Python process tops out near 180 CT instances/s under the GIL
(measured-facts), and the index and the re-store rule stay with the one Archive that decides.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from index.model import InstanceRecord, Origin
from storage import Storage, StorageError
from storage.packed import PACK_BELOW
from storage.store import HEADER, PIXELDATA, RECORD
from yunying.bigfile import FileRange
from yunying.errors import ArchiveError, StudyMismatch
from yunying.ingest import Parsed, dump_record, instance_json, load_record, parse_instance
from yunying.lenient import noting

log = logging.getLogger("yunying.writing")
CLAIM_WAIT_S = 30.0  # how long to wait for another writer of the very same version


class WorkerFailure(ArchiveError):
    """The ingest worker process died on this instance (PS3.4 Annex GG: processing failure)."""

    http_status, dimse_status = 400, 0x0110


@dataclass(frozen=True)
class Written:
    """A durable, complete version folder, not yet indexed."""

    record: InstanceRecord
    sop_class: str
    sop: str
    study: str
    series: str
    existed: bool  # the same version (same content) was already complete: nothing was written

    @property
    def key(self) -> str:
        return self.record.storage_key

    @property
    def digest(self) -> str:
        return self.record.digest

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        # from an ingest worker back to the server: the record as its JSON file's bytes (orjson
        # both ways) instead of a pickled tree of dicts, whose unpickling cost the server ~0.4 ms
        # of GIL per small instance (issue 9, py-spy --gil)
        return _written_from, (dump_record(self.record), self.sop_class, self.sop, self.study,
                               self.series, self.existed)


def _written_from(record: bytes, sop_class: str, sop: str, study: str, series: str, existed: bool) -> Written:
    return Written(load_record(record), sop_class, sop, study, series, existed)


def write_instance(storage: Storage, source: Path | bytes, origin: Origin,
                   expected_study: str | None = None, sync: bool = True) -> Written:
    """Parse and store one instance's bytes durably; raises ArchiveError for bad input.

    sync=False leaves the durability step to the caller (the server syncs what its ingest
    workers wrote: with group sync one syncfs then covers the writes of every worker).
    """
    parsed = parse_instance(source)
    if expected_study is not None and parsed.study != expected_study:
        raise StudyMismatch(f"instance belongs to study {parsed.study}, not {expected_study}")
    key = f"{parsed.study}/{parsed.series}/{parsed.sop}.{parsed.digest[:16]}"
    if parsed.size < PACK_BELOW:  # per-version costs that do not depend on size, cut (issue 9)
        return _write_packed(storage, parsed, key, origin, sync)
    new_parents = storage.prepare(key)
    if new_parents == 0:  # the folder exists: this exact content is stored or being stored
        record = _await_version(storage, key)
        if record is not None and record.digest == parsed.digest:
            if sync:  # its writer may not have synced it yet
                storage.sync(key, 0)
            return _written(parsed, record, existed=True)
        storage.delete(key)  # an abandoned partial write (a worker died): write it again
        new_parents = storage.prepare(key) or 1
    record = _write_version(storage, parsed, key, origin)
    if sync:
        storage.sync(key, new_parents)
    return _written(parsed, record, existed=False)


def _write_packed(storage: Storage, parsed: Parsed, key: str, origin: Origin, sync: bool) -> Written:
    """A small instance as one file (storage/packed.py): the same members, one create."""
    for _attempt in (0, 1):
        if storage.complete(key):  # this exact content is stored (a packed version is whole)
            record = _await_version(storage, key)
            if record is not None and record.digest == parsed.digest:
                if sync:  # its writer may not have synced it yet
                    storage.sync(key, 0)
                return _written(parsed, record, existed=True)
            storage.delete(key)  # unreadable: write it again
        members: dict[str, bytes] = {}
        if parsed.pixel_form == "native":
            arr = parsed.native
            members.update(storage.frame_members(iter(arr), arr.shape[0], arr.shape[1:],
                                                 arr.dtype.newbyteorder("<")))
        elif parsed.pixel_form in ("encapsulated", "blob"):
            assert parsed.blob is not None
            blob: Any = parsed.blob  # bytes, or a FileRange of a file parsed in place (yunying.bigfile)
            members[PIXELDATA] = b"".join(blob.chunks()) if isinstance(blob, FileRange) else bytes(blob)
        members[HEADER] = parsed.head
        record = _record(parsed, key, origin)
        members[RECORD] = dump_record(record)
        new_parents = storage.put_packed(key, members)
        if new_parents:
            if sync:
                try:
                    storage.sync(key, new_parents)
                except OSError:
                    storage.delete(key)
                    raise
            return _written(parsed, record, existed=False)
    raise OSError(f"version {key} could not be written")  # pragma: no cover - two lost races


def _record(parsed: Parsed, key: str, origin: Origin) -> InstanceRecord:
    """The index record of a version (its DICOM JSON made here: pydicom converts elements lazily)."""
    with noting() as converted:  # elements first read here that could only be kept as UN
        json = instance_json(parsed.header, parsed)
    if converted:
        parsed.extra["warnings"] = [*parsed.extra.get("warnings", ()), *converted]
    return InstanceRecord(
        json=json, transfer_syntax=parsed.transfer_syntax,
        pixel_form=parsed.pixel_form, frames=parsed.frames, size=parsed.size,
        digest=parsed.digest, storage_key=key, origin=origin, extra=parsed.extra)


def _written(parsed: Parsed, record: InstanceRecord, existed: bool) -> Written:
    return Written(record, parsed.sop_class, parsed.sop, parsed.study, parsed.series, existed)


def _await_version(storage: Storage, key: str) -> InstanceRecord | None:
    """The record of a version another writer is completing, or None if none appears in time."""
    deadline = time.monotonic() + CLAIM_WAIT_S
    while True:
        try:
            return load_record(storage.read_blob(key, RECORD))
        except (StorageError, ValueError, KeyError, TypeError):
            if time.monotonic() > deadline:
                return None
            time.sleep(0.005)


def _write_version(storage: Storage, parsed: Parsed, key: str, origin: Origin) -> InstanceRecord:
    try:
        if parsed.pixel_form == "native":
            assert parsed.native is not None
            arr = parsed.native
            storage.put_frames(key, iter(arr), arr.shape[0], arr.shape[1:], arr.dtype.newbyteorder("<"))
        elif parsed.pixel_form in ("encapsulated", "blob"):
            assert parsed.blob is not None
            blob = parsed.blob
            storage.put_blob(key, PIXELDATA, blob.chunks() if hasattr(blob, "chunks") else bytes(blob),
                             atomic=False)
        storage.put_blob(key, HEADER, parsed.head, atomic=False)
        record = _record(parsed, key, origin)
        storage.put_blob(key, RECORD, dump_record(record))  # last: marks the version complete
    except OSError:
        storage.delete(key)
        raise
    return record


# -- worker processes ---------------------------------------------------------------------------
_storage: Storage | None = None


def _init_worker(root: str, group_sync: bool, server_pid: int) -> None:
    global _storage
    threading.Thread(target=_exit_with, args=(server_pid,), name="yunying-server-watch", daemon=True).start()
    # the server decides when workers stop (after draining): a Ctrl-C or a SIGTERM sent to the
    # whole process group must not kill a write the server is waiting for
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from yunying.cli import quiet_pydicom

    quiet_pydicom()
    _storage = Storage(Path(root), group_sync=group_sync)


def _exit_with(server_pid: int) -> None:
    """End this worker once the server is gone (killed, not stopped: a stop drains and ends it).

    Pool workers hold both ends of their call queue, so they never see the server's end close;
    without this, a server killed with SIGKILL left its workers (and their forkserver) behind.
    """
    born = _start_time(server_pid)
    while born is not None:  # None: the server died before this worker even started
        time.sleep(1.0)
        if _start_time(server_pid) != born:  # gone, or its PID reused by another process
            break
    os._exit(0)


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[19].decode()  # field 22: starttime
    except OSError:
        try:
            os.kill(pid, 0)
            return "alive"  # no /proc here: existence is all we can tell
        except OSError:
            return None


def _work(source: Path | bytes, origin: Origin, expected_study: str | None) -> Written:
    assert _storage is not None
    # with group sync the server makes it durable (IngestPool.write): one syncfs for all workers
    return write_instance(_storage, source, origin, expected_study, sync=not _storage.group_sync)


IDLE_EXIT_S = 10.0  # seconds without a write before the worker processes exit
SHM_ROOT = Path("/dev/shm")
HANDOFF_ABOVE = 64 << 10  # bytes: smaller instances travel in the call itself


class IngestPool:
    """`processes` worker processes running write_instance; a dead worker is replaced.

    An instance received in memory reaches its worker as a file in shared memory (tmpfs), not
    through the call pipe: pickling a 512 KiB CT slice through the pipe cost ~1.3 ms of CPU
    (both sides, mostly the kernel), a tmpfs write and read ~0.2 ms. Where there is no usable
    /dev/shm (or it is full) the bytes go through the pipe as before.
    """

    def __init__(self, storage: Storage, processes: int, idle_exit_s: float = IDLE_EXIT_S) -> None:
        self._storage = storage
        self._args = (str(storage.root), storage.group_sync, os.getpid())
        self._processes = processes
        self._lock = threading.Lock()
        self._handoff = _handoff_folder()
        self._pool: ProcessPoolExecutor | None = self._start()
        # idle workers exit (issue 9: ~25 MB PSS, ~55 MB RSS each) and come back with the next
        # overlapping stores; a lone store is written in the server meanwhile (Archive.store)
        self._busy = 0
        self._last = time.monotonic()
        self._closed = threading.Event()
        self._idle_exit_s = idle_exit_s
        threading.Thread(target=self._reap, name="yunying-ingest-idle", daemon=True).start()

    def _reap(self) -> None:
        while not self._closed.wait(max(self._idle_exit_s / 4, 0.05)):
            with self._lock:
                pool = self._pool
                if pool is None or self._busy or time.monotonic() - self._last < self._idle_exit_s:
                    continue
                self._pool = None
            pool.shutdown(wait=True)
            log.debug("ingest workers idle for %.0f s: stopped", self._idle_exit_s)

    @property
    def running(self) -> bool:
        """Whether worker processes are up (False after an idle exit, until the next write)."""
        return self._pool is not None

    def _start(self) -> ProcessPoolExecutor:
        # forkserver: never fork the server itself (its threads hold locks: DuckDB, pynetdicom)
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["yunying.writing"])
        pool = ProcessPoolExecutor(self._processes, mp_context=ctx, initializer=_init_worker,
                                   initargs=self._args)
        for _ in range(self._processes):  # start the workers now, not under the first store
            pool.submit(os.getpid)
        return pool

    def write(self, source: Path | bytes, origin: Origin, expected_study: str | None = None) -> Written:
        """write_instance in a worker; one retry in a fresh pool if a worker died under it."""
        sent = self._hand_off(source)
        with self._lock:
            self._busy += 1
            if self._pool is None:  # back after an idle exit
                self._pool = self._start()
        try:
            for _attempt in (0, 1):
                pool = self._pool
                assert pool is not None  # not reaped while busy
                try:
                    written = pool.submit(_work, sent, origin, expected_study).result()
                    if self._storage.group_sync:
                        self._sync(written)
                    return written
                except BrokenProcessPool:
                    with self._lock:
                        if self._pool is pool:
                            log.error("an ingest worker process died; starting new workers (pid %d)", os.getpid())
                            pool.shutdown(wait=False, cancel_futures=True)
                            self._pool = self._start()
            raise WorkerFailure("the ingest worker stopped while processing this instance")
        finally:
            with self._lock:
                self._busy -= 1
                self._last = time.monotonic()
            if sent is not source:
                assert isinstance(sent, Path)
                sent.unlink(missing_ok=True)

    def _sync(self, written: Written) -> None:
        """Make a worker's version durable: a syncfs shared with every other store. If it
        fails, a version this store wrote goes, as it would have in the worker."""
        try:
            self._storage.sync(written.key, 0)
        except OSError:
            if not written.existed:
                self._storage.delete(written.key)
            raise

    def _hand_off(self, source: Path | bytes) -> Path | bytes:
        """A tmpfs file holding `source` when it is large bytes, else `source` itself."""
        if self._handoff is None or isinstance(source, Path) or len(source) <= HANDOFF_ABOVE:
            return source
        path = self._handoff / os.urandom(8).hex()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(source)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
        except OSError:  # /dev/shm full or gone: the pipe still works
            path.unlink(missing_ok=True)
            return source
        return path

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        if self._handoff is not None:
            shutil.rmtree(self._handoff, ignore_errors=True)


def _handoff_folder() -> Path | None:
    """A private folder in /dev/shm for this server's hand-offs; older servers' dead ones removed."""
    if not SHM_ROOT.is_dir():
        return None
    try:
        for old in SHM_ROOT.glob("yunying-ingest-*"):
            pid = old.name.split("-")[2]
            if pid.isdigit() and _start_time(int(pid)) is None:
                shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix=f"yunying-ingest-{os.getpid()}-", dir=SHM_ROOT))
    except OSError:
        return None
