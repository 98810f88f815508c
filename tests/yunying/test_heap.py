"""yunying.heap: what a burst of work leaves is released once, when the process goes idle."""
from __future__ import annotations

import logging
import re
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from yunying import heap

REPO = Path(__file__).resolve().parents[2]


# Run in a fresh interpreter: idleness is the whole process's CPU, and a test worker's process
# carries threads other tests left running (a pool, a feeder), which read as work here.
IDLE_SCRIPT = """
import threading, time
from yunying import heap

def burn(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass

before = heap._cpu()
burn(0.1)
assert heap._cpu() - before >= 0.09, "the process's CPU clock does not count its own work"
# From here the thread reads a CPU clock the script advances: on a loaded machine a real burst
# could be starved for a whole check interval, read as idle, and release in its middle (twice
# per burst); "work" below is exactly what the clock says, whatever the machine's load.
spent = [0.0]
heap._cpu = lambda: spent[0]

def burn(seconds):
    spent[0] += seconds

heap.IDLE_CHECK_S = 0.2
heap._on_idle = []
calls = []
released = threading.Event()

def release():
    calls.append(time.monotonic())
    released.set()

def failing():
    raise RuntimeError("a release that fails does not stop the others")

heap.on_idle(failing)
heap.on_idle(release)
stop = heap.start_idle_trim()
time.sleep(1.0)
assert calls == [], "released while idle from the start: nothing to give back"
burn(0.6)  # work: well above 3 % of a core over 0.2 s
assert released.wait(10), "no release after a burst of work"
time.sleep(1.0)  # still idle: not again
assert len(calls) == 1, f"released {len(calls)} times after one burst"
burn(0.6)
deadline = time.monotonic() + 10
while len(calls) < 2 and time.monotonic() < deadline:
    time.sleep(0.05)
assert len(calls) == 2, "the next burst's idle did not release again"
stop.set()
"""


def test_releases_run_once_after_work_not_while_idle() -> None:
    done = subprocess.run([sys.executable, "-c", IDLE_SCRIPT], cwd=REPO, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]


def test_with_tracemalloc_the_idle_release_logs_where_the_python_heap_sits(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(heap, "_on_idle", [])
    heap._release()
    assert "python heap" not in caplog.text  # tracemalloc off (the default): nothing to say
    tracemalloc.start()
    try:
        kept = [bytearray(1 << 20) for _ in range(3)]  # 3 MiB from one line of this file
        with caplog.at_level(logging.INFO, logger="yunying.heap"):
            heap._release()
    finally:
        tracemalloc.stop()
    assert len(kept) == 3
    assert re.search(r"python heap [\d.]+ MiB .*test_heap.py:\d+ 3\.0 MiB", caplog.text)
