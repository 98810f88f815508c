"""Ingest worker processes: write_instance off the server's GIL, one pipe per worker.

One Python process tops out near 180 CT instances/s under the GIL (measured-facts), so
overlapping stores are parsed and written in worker processes; the index and the re-store
rule stay with the one Archive that decides. Each worker has its own duplex pipe: a storing
thread takes an idle worker, sends it the instance and reads its answer itself. A
ProcessPoolExecutor did the same through a feeder thread, a manager thread and futures: ~0.2 ms
of the server's CPU per call against ~0.03 ms for the pipe (issue 9, measured here), on the
process whose GIL every association shares.

A worker can also be lent to one caller for a long task (`IngestPool.lease`): a storage
association's socket is passed to it and it serves the association itself (dimse/pdata.py),
asking the server only to decide each store (issue 9). An idle pool worker is lent first; a
write that finds the pool short while workers are lent starts a replacement.

A worker ends when its pipe closes: the server closing it (idle exit, shutdown) or dying (the
kernel closes its end), so a server killed with SIGKILL leaves no worker behind.
"""
from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import queue
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import reduction
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from index.model import Origin
from storage import Storage
from yunying.errors import ArchiveError
from yunying.handoff import HandOffFiles
from yunying.writing import Written, write_instance

log = logging.getLogger("yunying.writing")
IDLE_EXIT_S = 10.0  # seconds without a write before the worker processes exit
SHM_ROOT = Path("/dev/shm")
HANDOFF_ABOVE = 64 << 10  # bytes: smaller instances travel in the pipe itself
TAKE_WAIT_S = 0.05  # a write waiting this long for a pool worker while some are lent starts one
MAX_LEASED = 8  # worker processes lent at once (storage associations served in them); more wait in the server


class WorkerFailure(ArchiveError):
    """The ingest worker process died on this instance (PS3.4 Annex GG: processing failure)."""

    http_status, dimse_status = 400, 0x0110


def _serve(conn: Connection, root: str, group_sync: bool) -> None:
    """A worker's life: write what arrives on `conn`, answer (True, Written) or (False, exc)."""
    # the server decides when workers stop (after draining): a Ctrl-C or a SIGTERM sent to the
    # whole process group must not kill a write the server is waiting for
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from numcodecs import blosc

    from yunying.cli import quiet_pydicom

    quiet_pydicom()
    # Blosc compresses on a thread pool when called from a process's main thread, as here (not
    # from the server's association threads): a CT frame cost 0.79 ms CPU and 2.2 ms wall so,
    # 0.63 and 0.9 without on this machine (issue 9); the processes are the parallelism here
    blosc.use_threads = False
    storage = Storage(Path(root), group_sync=group_sync)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the server closed the pipe, or is gone
            os._exit(0)
        if isinstance(message, Call):
            _call(conn, storage, message)
            continue
        source, origin, expected_study = message
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


@dataclass(frozen=True)
class Call:
    """Run `target` ("module:function") in a leased worker: function(conn, storage, fd, *args),
    `fd` a descriptor the server passes along (a socket). It talks to the server over `conn`
    until it returns; the worker then goes back to waiting for work."""

    target: str
    args: tuple[Any, ...]


def _call(conn: Connection, storage: Storage, call: Call) -> None:
    try:
        fd = reduction.recv_handle(conn)
        module, _, name = call.target.partition(":")
        getattr(importlib.import_module(module), name)(conn, storage, fd, *call.args)
    except Exception:  # the conversation's state is unknown: the server sees EOF
        log.exception("leased ingest work %s failed", call.target)
        os._exit(1)


class Leased:
    """A worker process lent to one caller (IngestPool.lease): `call` starts the work, whose
    conversation then runs over `conn`; `broken` set by the caller retires the process."""

    def __init__(self, worker: _Worker) -> None:
        self._worker, self.conn, self.broken = worker, worker.conn, False

    @property
    def pid(self) -> int:
        return int(self._worker.process.pid or 0)

    def call(self, target: str, args: tuple[Any, ...], fd: int) -> None:
        self.conn.send(Call(target, args))
        reduction.send_handle(self.conn, fd, self.pid)


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
        folder = _handoff_folder()
        self._files = None if folder is None else HandOffFiles(folder)
        self._idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        self._workers: list[_Worker] = []
        self._spare: list[_Worker] = []  # lent before, idle now (IngestPool.lease)
        self._lent: set[_Worker] = set()
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
                if (not self._workers and not self._spare) or self._busy \
                        or time.monotonic() - self._last < self._idle_exit_s:
                    continue
                workers, self._workers, self._spare = self._workers + self._spare, [], []
                while not self._idle.empty():
                    self._idle.get_nowait()
            for worker in workers:
                worker.stop(5.0)
            if self._files is not None:
                self._files.clear()  # their memory goes back too
            log.debug("ingest workers idle for %.0f s: stopped", self._idle_exit_s)

    @property
    def running(self) -> bool:
        """Whether worker processes are up (False after an idle exit, until the next write)."""
        return bool(self._workers)

    def pids(self) -> list[int]:
        """The worker processes' ids (tests, diagnostics)."""
        with self._lock:
            every = [*self._workers, *self._spare, *self._lent]
        return sorted(w.process.pid for w in every if w.process.pid is not None)

    def lent_pids(self) -> list[int]:
        """The processes lent right now (tests)."""
        with self._lock:
            return sorted(w.process.pid for w in self._lent if w.process.pid is not None)

    @contextmanager
    def lease(self) -> Iterator[Leased | None]:
        """A worker process for the caller alone while the block runs (a storage association
        served in it: issue 9), None when MAX_LEASED are lent or the pool is closing. It is kept
        for the next lease unless the caller marked it broken or it died; idle ones exit as
        the pool's do. An idle pool worker is lent first (no start, no memory for another
        process); write() starts a replacement when it finds none idle meanwhile."""
        with self._lock:
            full = self._closed.is_set() or len(self._lent) >= MAX_LEASED
            worker = None if full or not self._spare else self._spare.pop()
            if not full:
                self._busy += 1
            if not full and worker is None:  # an idle pool worker (started, warm) before a new one
                try:
                    worker = self._idle.get_nowait()
                    self._workers.remove(worker)  # write() starts another if it needs one (_take)
                except (queue.Empty, ValueError):
                    worker = None
        if full:
            yield None
            return
        try:
            if worker is None:
                worker = _Worker(self._ctx, self._args)
        except Exception as exc:  # noqa: BLE001 - the caller serves the work itself
            log.error("could not start a worker process to lend: %s", type(exc).__name__)
            self._return(None, False)
            yield None
            return
        with self._lock:
            self._lent.add(worker)
        leased = Leased(worker)
        try:
            yield leased
        finally:
            self._return(worker, not leased.broken)

    def _return(self, worker: _Worker | None, healthy: bool) -> None:
        with self._lock:
            self._busy -= 1
            self._last = time.monotonic()
            if worker is None:
                return
            self._lent.discard(worker)
            keep = healthy and worker.process.is_alive() and not self._closed.is_set()
            if keep and len(self._workers) < self._processes:  # back to the pool it came from
                self._workers.append(worker)
                self._idle.put(worker)
            elif keep:
                self._spare.append(worker)
        if not keep:
            worker.stop(1.0)

    def write(self, source: Path | bytes, origin: Origin, expected_study: str | None = None) -> Written:
        """write_instance in a worker; one retry in a fresh worker if the worker died under it."""
        handed = self._hand_off(source)
        sent = source if handed is None else handed[0]
        settled = False  # no worker reads the hand-off file any more: it may be reused
        with self._lock:
            self._busy += 1
            if not self._workers:  # back after an idle exit
                self._start()
        try:
            for _attempt in (0, 1):
                worker = self._take()
                try:
                    worker.conn.send((sent, origin, expected_study))
                    ok, answer = worker.conn.recv()
                except (EOFError, OSError):
                    self._replace(worker)  # stopped: it reads nothing any more
                    settled = True
                    continue
                settled = True
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
            if handed is not None and self._files is not None:
                if settled:
                    self._files.give(*handed, 0 if isinstance(source, Path) else len(source))
                else:  # interrupted while a worker may still read it: never written over
                    handed[0].unlink(missing_ok=True)
                    os.close(handed[1])

    def _take(self) -> _Worker:
        """An idle pool worker; a new one when none comes back soon while some are lent out
        (a lease took an idle one: a long association must not hold up this write)."""
        while True:
            try:
                return self._idle.get(timeout=TAKE_WAIT_S)
            except queue.Empty:
                with self._lock:
                    if len(self._workers) < self._processes:
                        worker = _Worker(self._ctx, self._args)
                        self._workers.append(worker)
                        return worker

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

    def _hand_off(self, source: Path | bytes) -> tuple[Path, int] | None:
        """A tmpfs file holding `source` when it is large bytes (path, descriptor), else None."""
        if self._files is None or isinstance(source, Path) or len(source) <= HANDOFF_ABOVE:
            return None
        return self._files.put(source)  # None: /dev/shm full or gone, the pipe still works

    def close(self, drain_s: float = 60.0) -> None:
        """Stop the workers once the writes in flight have their answers."""
        self._closed.set()
        deadline = time.monotonic() + drain_s
        while self._busy and time.monotonic() < deadline:
            time.sleep(0.01)
        with self._lock:
            workers, self._workers, self._spare = self._workers + self._spare, [], []
        for worker in workers:
            worker.stop(5.0)
        if self._files is not None:
            self._files.clear()
            shutil.rmtree(self._files.folder, ignore_errors=True)


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
