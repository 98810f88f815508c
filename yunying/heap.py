"""Keep glibc's malloc from holding the server's freed memory (issue 9 part 5).

Every thread that allocates gets a malloc arena of its own (up to 8 per core: the HTTP thread
pool, each DIMSE association, DuckDB's threads), and memory freed inside an arena is kept by
the process, not given back. At most 2 arenas, and `malloc_trim` once the process has gone
idle, return it. Measured in one `python -m benchmarks.ingest` run each (CT by STOW-RS and
C-STORE, ~4,850 small instances; load 14-17): idle 294 MiB before, 281 with the idle trim
alone, 246 with both; the server's CPU per instance did not move beyond the run-to-run noise.
Without glibc (musl, macOS) both do nothing.

Components that keep memory for the next burst register a release with `on_idle`; it runs at
the same moment, before the trim (the index's DuckDB checkpoint; with DuckDB's background allocator
thread and the forkserver made by fork, idle 178-181 MiB against 229-231 before: `benchmarks/README.md`).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import resource
import threading
import tracemalloc
from collections.abc import Callable
from typing import Any

log = logging.getLogger("yunying.heap")
M_ARENA_MAX = -8  # mallopt parameter (malloc.h)
IDLE_CHECK_S = 2.0  # how often the process looks at its own CPU time
IDLE_CPU_SHARE = 0.03  # below this share of one core over IDLE_CHECK_S, the process counts as idle
_on_idle: list[Callable[[], object]] = []  # run once each time the process goes idle, before the trim


def on_idle(release: Callable[[], object]) -> None:
    """Call `release` once each time the process goes idle after work (before malloc_trim):
    memory a component keeps for the next burst (DuckDB's rows not yet checkpointed) goes back."""
    _on_idle.append(release)


def _release() -> None:
    for release in _on_idle:
        try:
            release()
        except Exception:  # a failed release keeps its memory, nothing more
            log.warning("idle release %s failed", getattr(release, "__qualname__", release), exc_info=True)
    if tracemalloc.is_tracing():  # PYTHONTRACEMALLOC=N: where the Python heap sits once idle
        log_python_heap()


def log_python_heap(top: int = 25) -> None:
    """Log the source lines holding the most of the Python heap (tracemalloc must be tracing)."""
    stats = tracemalloc.take_snapshot().statistics("lineno")
    total = sum(s.size for s in stats)
    log.info("python heap %.1f MiB in %d lines; largest: %s", total / 2**20, len(stats),
             "; ".join(f"{s.traceback[0].filename.rsplit('/', 2)[-1]}:{s.traceback[0].lineno} "
                       f"{s.size / 2**20:.1f} MiB" for s in stats[:top]))


def _libc() -> Any | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim  # noqa: B018 - glibc only: raises AttributeError elsewhere
        return libc
    except (OSError, AttributeError):
        return None


def limit_arenas(arenas: int = 2) -> None:
    """At most `arenas` malloc arenas; call before any thread starts (later threads share them)."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(M_ARENA_MAX, arenas)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def start_idle_trim() -> threading.Event:
    """A thread that runs the on_idle releases and malloc_trim(0) once each time the process
    goes idle after work; set the returned event to stop it. Both cost a few ms; never during a
    burst. Without glibc only the releases run."""
    libc = _libc()
    stop = threading.Event()

    def run() -> None:
        last, trimmed = _cpu(), True
        while not stop.wait(IDLE_CHECK_S):
            now = _cpu()
            busy = now - last > IDLE_CPU_SHARE * IDLE_CHECK_S
            last = now
            if busy:
                trimmed = False
            elif not trimmed:
                _release()
                if libc is not None:
                    libc.malloc_trim(0)
                last, trimmed = _cpu(), True  # the release's own CPU is not new work

    threading.Thread(target=run, name="yunying-heap-trim", daemon=True).start()
    return stop
