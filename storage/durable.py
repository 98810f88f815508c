"""Group sync: many writers made durable by one syncfs(2), as a database's group commit does.

A writer that finished writing calls `wait()`. A syncfs that *starts* after its writes
covers them, so a writer arriving while a sync runs waits for the next one; one sync then
serves every writer that arrived meanwhile. syncfs flushes the data and metadata of the
whole file system holding the store (file contents and the folder entries that name them),
so the store is best on its own volume. Where syncfs is missing, each file and folder is
fsync'ed instead (`enabled` is False).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from pathlib import Path


def _syncfs() -> object | None:
    if not hasattr(os, "O_DIRECTORY"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.syncfs
    except (OSError, AttributeError):
        return None


class GroupSync:
    """One syncfs for every writer that finished before it started."""

    def __init__(self, root: Path, wanted: bool = True) -> None:
        self._fn = _syncfs()
        self.enabled = wanted and self._fn is not None
        self._root = str(root)
        self._lock = threading.Lock()
        self._waiting: dict[int, threading.Condition] = {}  # sync number -> the writers waiting for it
        self._started = 0
        self._done = 0
        self._running = False

    def wait(self) -> None:
        """Return once everything this thread wrote before the call is on stable storage."""
        with self._lock:
            need = self._started + 1
            while self._done < need:
                if self._running:
                    cond = self._waiting.get(need)
                    if cond is None:
                        cond = self._waiting[need] = threading.Condition(self._lock)
                    cond.wait()
                    continue
                self._running = True
                self._started += 1
                mine = self._started
                ok = False
                self._lock.release()
                try:
                    self._sync()
                    ok = True
                finally:
                    self._lock.acquire()
                    self._running = False
                    if ok:  # a failed sync raises in its caller; the writers it was to cover try again
                        self._done = mine
                    self._wake(ok)

    def _wake(self, ok: bool) -> None:
        """Wake the writers a sync covered, and one of those waiting for the next to run it. One
        condition for all woke every waiter at each sync, most only to wait again: a thread
        switch and a GIL hand-off each in the server (issue 9 part 3). After a failure all retry."""
        for number in sorted(self._waiting):
            if number <= self._done or not ok:
                self._waiting.pop(number).notify_all()
            else:
                self._waiting[number].notify()
                return

    def _sync(self) -> None:
        fd = os.open(self._root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if self._fn(fd) != 0:  # type: ignore[operator]
                err = ctypes.get_errno()
                raise OSError(err, f"syncfs failed: {os.strerror(err)}")
        finally:
            os.close(fd)
