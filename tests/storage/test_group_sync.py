"""GroupSync (storage/durable.py): a writer returns only after a sync that started after it
arrived has ended, and a failed sync releases nobody it was to cover."""
from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from storage import durable
from storage.durable import GroupSync


def _group(tmp_path: Path) -> GroupSync:
    group = GroupSync(tmp_path)
    group.enabled = True  # the fake syncs below need no syncfs
    return group


def test_every_writer_returns_after_a_sync_that_started_after_it_arrived(tmp_path: Path) -> None:
    group = _group(tmp_path)
    clock = itertools.count()
    lock = threading.Lock()
    syncs: list[tuple[int, int]] = []  # (start, end) ticks
    writers: list[tuple[int, int]] = []  # (arrival, return) ticks

    def fake_sync() -> None:
        with lock:
            start = next(clock)
        time.sleep(random.uniform(0.001, 0.01))
        with lock:
            syncs.append((start, next(clock)))

    group._sync = fake_sync  # type: ignore[method-assign]

    def writer() -> None:
        for _ in range(20):
            with lock:
                arrived = next(clock)
            group.wait()
            with lock:
                writers.append((arrived, next(clock)))
            time.sleep(random.uniform(0, 0.003))

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(writers) == 160
    for arrived, returned in writers:
        assert any(arrived < start and end < returned for start, end in syncs), (arrived, returned)
    assert len(syncs) < 160  # syncs were shared


def _first_sync_held(group: GroupSync, writer: Callable[[], None], later: int,
                     later_sync: Callable[[int], None]) -> int:
    """`writer` in a thread whose sync is held until `later` more writers wait, then let go;
    the later syncs run `later_sync(its number)`. How many syncs ran."""
    first_started, release_first = threading.Event(), threading.Event()
    calls = []

    def fake_sync() -> None:
        calls.append(1)
        if len(calls) == 1:
            first_started.set()
            release_first.wait(10)
        else:
            later_sync(len(calls))

    group._sync = fake_sync  # type: ignore[method-assign]
    first = threading.Thread(target=writer)
    first.start()
    assert first_started.wait(10)
    others = [threading.Thread(target=writer) for _ in range(later)]
    for t in others:
        t.start()
    time.sleep(0.1)  # all wait for the first sync to end
    release_first.set()
    for t in [first, *others]:
        t.join(10)
    return len(calls)


def test_a_failed_sync_releases_nobody_it_was_to_cover(tmp_path: Path) -> None:
    group = _group(tmp_path)
    outcomes: list[str] = []

    def second_fails(number: int) -> None:
        if number == 2:
            raise OSError(5, "I/O error")  # the sync the two later writers share

    def writer() -> None:
        try:
            group.wait()
            outcomes.append("durable")
        except OSError:
            outcomes.append("error")

    syncs = _first_sync_held(group, writer, 2, second_fails)
    # the second sync failed in one writer; the other got a third sync of its own, not a pass
    assert sorted(outcomes) == ["durable", "durable", "error"] and syncs == 3


def test_writers_waiting_for_the_next_sync_sleep_through_the_one_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The end of a sync wakes only the writers it covered and one writer to run the next: each
    writer woken only to wait again is a thread switch and a GIL hand-off in the server."""
    woken = []

    class Counting(threading.Condition):
        def wait(self, timeout: float | None = None) -> bool:
            got = super().wait(timeout)
            woken.append(1)
            return got

    # only the group's conditions count (threads and events use conditions too)
    monkeypatch.setattr(durable, "threading", SimpleNamespace(Condition=Counting, Lock=threading.Lock))
    group = _group(tmp_path)
    # the second sync long enough for a writer woken in vain to wait again
    assert _first_sync_held(group, group.wait, 4, lambda _: time.sleep(0.1)) == 2  # the four shared one
    assert len(woken) == 4  # one woke to run it, three when it ended; none woke to wait again
