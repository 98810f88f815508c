"""Where STOW-RS parts are written as they arrive: files in memory (tmpfs) or on disk.

Each part is a file of its own, handed to the store as that file: an ingest worker reads it
itself, so the server neither joins the received chunks nor copies the part again into a
hand-off file (issue 9 part 3). A part goes to the memory folder while it is under SPOOL_MAX
and its request holds less than REQUEST_MEMORY there; those writes are memory copies and run on
the event loop. Beyond that, or without tmpfs, it goes to a spool file in the data folder's
`tmp` on disk, written by `Parts.flush` in a worker thread (disk writes may block: issue 10
part 7).

Memory files are reused (MemoryFiles): writing over a file's pages cost ~0.09 ms per 512 KiB CT
slice here, filling a new file and removing it ~0.24 ms (page allocation, zeroing, freeing).
"""
from __future__ import annotations

import asyncio
import atexit
import functools
import os
import shutil
import tempfile
import time
from pathlib import Path

from yunying.workers import SHM_ROOT

SPOOL_MAX = 32 << 20  # parts up to this size are kept in memory; larger ones are streamed to disk
FEED_BATCH = 1 << 20  # bytes of disk-bound parts written by a worker thread at a time
REQUEST_MEMORY = 64 << 20  # bytes of parts one request may hold in memory before the next go to disk
KEEP_BYTES = 64 << 20  # bytes of memory files kept for reuse between parts
IDLE_S = 10.0  # memory files unused this long are removed (their memory returned)


@functools.cache
def memory_files() -> MemoryFiles | None:
    """This server's memory files, in a tmpfs folder named like the ingest workers' hand-off
    folders (so a later server removes it if this one dies); None without tmpfs."""
    if not SHM_ROOT.is_dir():
        return None
    try:
        folder = Path(tempfile.mkdtemp(prefix=f"yunying-ingest-{os.getpid()}-stow-", dir=SHM_ROOT))
    except OSError:
        return None
    atexit.register(shutil.rmtree, folder, True)
    return MemoryFiles(folder)


class MemoryFiles:
    """Files in a tmpfs folder, open for writing, kept for the next parts once stored. Used on
    the event loop thread only."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._free: list[tuple[Path, int, int]] = []  # path, fd, size
        self._kept = 0
        self._last = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def take(self) -> tuple[Path, int]:
        """A file to write a part into from its start (it may hold an older part's bytes beyond)."""
        if self._free:
            path, fd, size = self._free.pop()
            self._kept -= size
            os.lseek(fd, 0, os.SEEK_SET)
            return path, fd
        path = self.folder / f"stow-{os.urandom(8).hex()}.part"
        return path, os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)

    def give(self, path: Path, fd: int) -> None:
        """A file whose part is stored: kept for reuse, or removed beyond KEEP_BYTES."""
        try:
            size = os.fstat(fd).st_size
        except OSError:
            size = KEEP_BYTES + 1
        if self._kept + size > KEEP_BYTES:
            _remove(path, fd)
            return
        self._free.append((path, fd, size))
        self._kept += size
        self._last = time.monotonic()
        if self._timer is None:
            try:
                self._timer = asyncio.get_running_loop().call_later(IDLE_S, self._check)
            except RuntimeError:  # no loop (a direct call): removed at exit
                pass

    def _check(self) -> None:
        self._timer = None
        idle = time.monotonic() - self._last
        if idle >= IDLE_S:
            self.trim()
        else:
            self._timer = asyncio.get_running_loop().call_later(IDLE_S - idle, self._check)

    def trim(self) -> None:
        """Remove every kept file."""
        free, self._free, self._kept = self._free, [], 0
        for path, fd, _ in free:
            _remove(path, fd)

    def kept(self) -> int:
        return len(self._free)


def _remove(path: Path, fd: int) -> None:
    os.close(fd)
    path.unlink(missing_ok=True)


class Part:
    """One part of the body: the file it is written to as it arrives."""

    __slots__ = ("ctype", "done", "ended", "fast", "fd", "path", "pending", "size", "written")

    def __init__(self, ctype: str) -> None:
        self.ctype = ctype
        self.path: Path | None = None  # None: not opened yet (a disk part opens in flush), or released
        self.fd = -1
        self.size = 0  # bytes received
        self.written = 0  # bytes written to its memory file
        self.fast = False  # in a memory file, written on the event loop
        self.pending: list[bytes | memoryview] = []  # received bytes the next flush writes to disk
        self.ended = False
        self.done = False  # complete and ready to be stored


class Parts:
    """The parts of one request's body, fed by the multipart splitter (begin / data... / end).
    Each finished part is `ready` to be stored at once, and `release`d once stored."""

    def __init__(self, tmp: Path, files: MemoryFiles | None) -> None:
        self.tmp, self.files = tmp, files
        self.parts: list[Part] = []
        self.ready: list[int] = []  # parts finished since the last take_ready()
        self._held = 0  # bytes of unstored parts in memory files
        self._pending = 0  # bytes waiting for flush()
        self._flush_needed = False

    def take_ready(self) -> list[int]:
        ready, self.ready = self.ready, []
        return ready

    def source(self, i: int) -> tuple[Path, str]:
        p = self.parts[i]
        assert p.path is not None
        return p.path, p.ctype

    def release(self, i: int) -> None:
        p = self.parts[i]
        if p.path is None:
            return
        if p.fast and self.files is not None:
            self.files.give(p.path, p.fd)
            self._held -= p.size if p.done else 0
        else:
            if p.fd >= 0:
                os.close(p.fd)
            p.path.unlink(missing_ok=True)
        p.path, p.fd = None, -1

    def begin(self, headers: dict[bytes, bytes]) -> None:
        p = Part(headers.get(b"content-type", b"").decode("latin-1"))
        self.parts.append(p)
        if self.files is not None and self._held < REQUEST_MEMORY:
            try:
                p.path, p.fd = self.files.take()
                p.fast = True
            except OSError:  # the memory folder is gone: this part goes to disk
                pass

    def data(self, chunk: bytes | memoryview) -> None:
        p = self.parts[-1]
        p.size += len(chunk)
        if p.fast and (p.size > SPOOL_MAX or self._held + p.size > REQUEST_MEMORY):
            p.fast = False  # a large part, or one beyond the request's memory cap: flush moves it to disk
            self._flush_needed = True
        if p.fast:
            view = memoryview(chunk)
            try:
                while view:
                    n = os.write(p.fd, view)
                    p.written += n
                    view = view[n:]
                return
            except OSError:  # tmpfs full: what it holds and the rest move to disk
                p.fast, self._flush_needed, chunk = False, True, view
        p.pending.append(chunk)
        self._pending += len(chunk)

    def end(self) -> None:
        p = self.parts[-1]
        p.ended = True
        if p.fast:
            os.ftruncate(p.fd, p.size)  # a reused file may be longer
            p.done = True
            self._held += p.size
            self.ready.append(len(self.parts) - 1)
        else:
            self._flush_needed = True

    def must_flush(self) -> bool:
        return self._flush_needed or self._pending >= FEED_BATCH

    def flush(self) -> None:
        """Disk writes of the parts that go to disk (in a worker thread: they may block)."""
        self._flush_needed, self._pending = False, 0
        for i, p in enumerate(self.parts):
            if p.fast or p.done or not (p.pending or p.ended):
                continue
            if p.fd < 0 or p.path is None or p.path.parent != self.tmp:
                self._to_disk(p)
            write_each(p.fd, p.pending)
            p.pending = []
            if p.ended:
                os.close(p.fd)
                p.fd, p.done = -1, True
                self.ready.append(i)

    def _to_disk(self, p: Part) -> None:
        """Open the part's disk file; what its memory file holds moves there."""
        path = self.tmp / f"stow-{os.urandom(8).hex()}.part"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        if p.path is not None:  # it began in a memory file (dropped, not reused: this is rare)
            at = 0
            while at < p.written:
                block = os.pread(p.fd, min(FEED_BATCH, p.written - at), at)
                write_each(fd, [block])
                at += len(block)
            _remove(p.path, p.fd)
        p.path, p.fd = path, fd

    def cleanup(self) -> None:
        """Every part's file released (after a failure, parts not stored)."""
        for i in range(len(self.parts)):
            self.release(i)


def write_each(fd: int, chunks: list[bytes | memoryview]) -> None:
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view):]
