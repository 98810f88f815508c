"""Ingest worker processes: write_instance off the server's GIL, one pipe per worker.

One Python process tops out near 180 CT instances/s under the GIL (measured-facts), so
overlapping stores are parsed and written in worker processes; the index and the re-store
rule stay with the one Archive that decides. Each worker has its own duplex pipe: a storing
thread takes an idle worker, sends it the instance and reads its answer itself. A
ProcessPoolExecutor did the same through a feeder thread, a manager thread and futures: ~0.2 ms
of the server's CPU per call against ~0.03 ms for the pipe (issue 9, measured here), on the
process whose GIL every association shares.

A worker ends when its pipe closes: the server closing it (idle exit, shutdown) or dying (the
kernel closes its end), so a server killed with SIGKILL leaves no worker behind.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import shutil
import signal
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from index.model import Origin
from storage import Storage
from yunying.errors import ArchiveError
from yunying.writing import Written, write_instance

log = logging.getLogger("yunying.writing")
IDLE_EXIT_S = 10.0  # seconds without a write before the worker processes exit
SHM_ROOT = Path("/dev/shm")
HANDOFF_ABOVE = 64 << 10  # bytes: smaller instances travel in the pipe itself


class WorkerFailure(ArchiveError):
    """The ingest worker process died on this instance (PS3.4 Annex GG: processing failure)."""

    http_status, dimse_status = 400, 0x0110


def _serve(conn: Connection, root: str, group_sync: bool) -> None:
    """A worker's life: write what arrives on `conn`, answer (True, Written) or (False, exc)."""
    # the server decides when workers stop (after draining): a Ctrl-C or a SIGTERM sent to the
    # whole process group must not kill a write the server is waiting for
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from yunying.cli import quiet_pydicom

    quiet_pydicom()
    storage = Storage(Path(root), group_sync=group_sync)
    while True:
        try:
            source, origin, expected_study = conn.recv()
        except (EOFError, OSError):  # the server closed the pipe, or is gone
            os._exit(0)
        try:
            # with group sync the server makes it durable (IngestPool.write): one syncfs for all
            answer: tuple[bool, Any] = (True, write_instance(storage, source, origin, expected_study,
                                                             sync=not storage.group_sync))
        except Exception as exc:  # noqa: BLE001 - the server raises it in the storing thread
            answer = (False, exc)
        try:
            conn.send(answer)
        except (OSError, ValueError):
            os._exit(0)
        except Exception:  # noqa: BLE001 - an exception that does not pickle: say which it was
            conn.send((False, ArchiveError(f"ingest failed: {type(answer[1]).__name__}")))


class _Worker:
    def __init__(self, ctx: Any, args: tuple[str, bool]) -> None:
        self.conn, theirs = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=_serve, args=(theirs, *args), name="yunying-ingest", daemon=True)
        self.process.start()
        theirs.close()  # the worker's end lives in the worker only: its death is our EOF

    def stop(self, wait: float) -> None:
        """Close the pipe (the worker reads EOF and exits); killed if it is still there after `wait` s."""
        self.conn.close()
        self.process.join(wait)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(1)


class IngestPool:
    """`processes` worker processes running write_instance; a dead worker is replaced.

    An instance received in memory above HANDOFF_ABOVE reaches its worker as a file in shared
    memory (tmpfs), not through the pipe: pickling a 512 KiB CT slice through a pipe cost ~1.3 ms
    of CPU (both sides, mostly the kernel), a tmpfs write and read ~0.2 ms. Where there is no
    usable /dev/shm (or it is full) the bytes go through the pipe.
    """

    def __init__(self, storage: Storage, processes: int, idle_exit_s: float = IDLE_EXIT_S) -> None:
        self._storage = storage
        self._args = (str(storage.root), storage.group_sync)
        self._processes = processes
        # forkserver: never fork the server itself (its threads hold locks: DuckDB, pynetdicom)
        self._ctx = multiprocessing.get_context("forkserver")
        self._ctx.set_forkserver_preload(["yunying.workers"])
        self._lock = threading.Lock()
        self._handoff = _handoff_folder()
        self._idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        self._workers: list[_Worker] = []
        self._start()
        # idle workers exit (issue 9 part 5: ~55 MB RSS each) and come back with the next
        # overlapping stores (a fork of the forkserver, which stays: ~48 MB PSS once alone; stopped
        # too, or the stores written in the server while workers start in the background, 4
        # associations after an idle pause ran at ~27 CT instances/s instead of ~49; load ~15)
        self._busy = 0
        self._last = time.monotonic()
        self._closed = threading.Event()
        self._idle_exit_s = idle_exit_s
        threading.Thread(target=self._reap, name="yunying-ingest-idle", daemon=True).start()

    def _start(self) -> None:
        """Start the workers (the caller holds _lock, or is __init__)."""
        for _ in range(self._processes):
            worker = _Worker(self._ctx, self._args)
            self._workers.append(worker)
            self._idle.put(worker)

    def _reap(self) -> None:
        while not self._closed.wait(min(max(self._idle_exit_s / 10, 0.05), 1.0)):
            with self._lock:
                if not self._workers or self._busy or time.monotonic() - self._last < self._idle_exit_s:
                    continue
                workers, self._workers = self._workers, []
                while not self._idle.empty():
                    self._idle.get_nowait()
            for worker in workers:
                worker.stop(5.0)
            log.debug("ingest workers idle for %.0f s: stopped", self._idle_exit_s)

    @property
    def running(self) -> bool:
        """Whether worker processes are up (False after an idle exit, until the next write)."""
        return bool(self._workers)

    def pids(self) -> list[int]:
        """The worker processes' ids (tests, diagnostics)."""
        return sorted(w.process.pid for w in self._workers if w.process.pid is not None)

    def write(self, source: Path | bytes, origin: Origin, expected_study: str | None = None) -> Written:
        """write_instance in a worker; one retry in a fresh worker if the worker died under it."""
        sent = self._hand_off(source)
        with self._lock:
            self._busy += 1
            if not self._workers:  # back after an idle exit
                self._start()
        try:
            for _attempt in (0, 1):
                worker = self._idle.get()
                try:
                    worker.conn.send((sent, origin, expected_study))
                    ok, answer = worker.conn.recv()
                except (EOFError, OSError):
                    self._replace(worker)
                    continue
                self._idle.put(worker)
                if not ok:
                    raise answer
                if self._storage.group_sync:
                    self._sync(answer)
                return answer  # type: ignore[no-any-return]
            raise WorkerFailure("the ingest worker stopped while processing this instance")
        finally:
            with self._lock:
                self._busy -= 1
                self._last = time.monotonic()
            if sent is not source:
                assert isinstance(sent, Path)
                sent.unlink(missing_ok=True)

    def _replace(self, dead: _Worker) -> None:
        log.error("an ingest worker process died; starting a new one (pid %d)", os.getpid())
        dead.stop(1.0)
        with self._lock:
            fresh = _Worker(self._ctx, self._args)
            self._workers = [fresh if w is dead else w for w in self._workers]
        self._idle.put(fresh)

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

    def close(self, drain_s: float = 60.0) -> None:
        """Stop the workers once the writes in flight have their answers."""
        self._closed.set()
        deadline = time.monotonic() + drain_s
        while self._busy and time.monotonic() < deadline:
            time.sleep(0.01)
        with self._lock:
            workers, self._workers = self._workers, []
        for worker in workers:
            worker.stop(5.0)
        if self._handoff is not None:
            shutil.rmtree(self._handoff, ignore_errors=True)


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
