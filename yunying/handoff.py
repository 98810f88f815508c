"""Hand-off files: tmpfs files an instance received in memory is written to for its ingest worker.

They are reused: writing over a kept file's pages cost ~0.04 ms of the server's CPU per 512 KiB
CT slice here, creating, filling and removing a new file ~0.21 ms (page allocation, zeroing,
freeing), on the process whose GIL every storage association shares (issue 9). A worker only
reads the file while the server waits for its answer, so a file is free again once answered.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

KEEP_FILES = 8  # files kept for reuse (one per write in flight is enough)
KEEP_FILE_MAX = 8 << 20  # bytes: a larger file is removed after its write (its memory returned)


class HandOffFiles:
    """Files in one tmpfs folder, written whole for one write at a time; thread-safe."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._free: list[tuple[Path, int]] = []
        self._lock = threading.Lock()

    def put(self, data: bytes) -> tuple[Path, int] | None:
        """A file holding exactly `data` (the caller gives it back), None when tmpfs refuses it."""
        with self._lock:
            kept = self._free.pop() if self._free else None
        try:
            if kept is None:
                path = self.folder / os.urandom(8).hex()
                kept = path, os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            else:
                os.lseek(kept[1], 0, os.SEEK_SET)
            view = memoryview(data)
            while view:
                view = view[os.write(kept[1], view):]
            os.ftruncate(kept[1], len(data))  # a reused file may have been longer
        except OSError:  # tmpfs full or gone: the caller sends the bytes through the pipe
            if kept is not None:
                _remove(*kept)
            return None
        return kept

    def give(self, path: Path, fd: int, size: int) -> None:
        """A file whose write has its answer: kept for the next one, or removed."""
        with self._lock:
            if size <= KEEP_FILE_MAX and len(self._free) < KEEP_FILES:
                self._free.append((path, fd))
                return
        _remove(path, fd)

    def clear(self) -> None:
        """Remove the kept files (idle: their memory goes back)."""
        with self._lock:
            free, self._free = self._free, []
        for path, fd in free:
            _remove(path, fd)


def _remove(path: Path, fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
    path.unlink(missing_ok=True)
