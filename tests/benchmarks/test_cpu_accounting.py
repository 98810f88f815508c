"""benchmarks.ingest's CPU accounting per process tree, and its table's ratios.

The CPU of child processes that exit inside a measured window must stay counted (it moves into
the parent's cutime/cstime when the parent reaps them): the figure used to go negative when idle
ingest workers exited during a workload.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from benchmarks.ingest import parse_stat, ratio_text, tree_cpu

TICK = os.sysconf("SC_CLK_TCK")
Table = dict[int, tuple[int, int, int, int]]


class Procs:
    """A fake process table: stat (utime, stime, cutime, cstime) and children per pid."""

    def __init__(self, stats: Table, kids: dict[int, list[int]]) -> None:
        self.stats, self.kids = stats, kids

    def stat(self, pid: int) -> tuple[int, int, int, int] | None:
        return self.stats.get(pid)

    def children(self, pid: int) -> list[int]:
        return [c for c in self.kids.get(pid, []) if c in self.stats]

    def reap(self, parent: int, child: int) -> None:
        """The child exits and its parent waits for it: its whole CPU moves to the parent's c*time."""
        u, s, cu, cs = self.stats.pop(child)
        pu, ps, pcu, pcs = self.stats[parent]
        self.stats[parent] = (pu, ps, pcu + u + cu, pcs + s + cs)

    def cpu(self, pid: int) -> tuple[float, float]:
        return tree_cpu(pid, self.stat, self.children)


def test_parse_stat_counts_fields_after_the_command() -> None:
    line = "4242 (python -m x) S 1 2 3 4 5 6 7 8 9 10 111 222 333 444 20 0 1 0 5 6 7"
    assert parse_stat(line) == (111, 222, 333, 444)


def test_a_worker_that_exits_in_the_window_stays_counted() -> None:
    # server 1 -> forkserver 2 -> worker 3
    procs = Procs({1: (10, 5, 0, 0), 2: (1, 1, 0, 0), 3: (100, 20, 0, 0)}, {1: [2], 2: [3]})
    own0, rest0 = procs.cpu(1)
    procs.stats[3] = (110, 25, 0, 0)  # works 15 ticks more, then exits and is reaped
    procs.reap(2, 3)
    own1, rest1 = procs.cpu(1)
    assert own0 == own1 == pytest.approx(15 / TICK)
    # the old reading (live descendants only) gave 2 - 122 ticks here
    assert (rest0, rest1) == (pytest.approx(122 / TICK), pytest.approx(137 / TICK))


def test_a_child_reaped_while_its_tree_is_read_counts_once() -> None:
    procs = Procs({1: (0, 0, 0, 0), 2: (4, 0, 0, 0), 3: (50, 10, 0, 0)}, {1: [2], 2: [3]})
    reads = {"n": 0}
    stat = procs.stat

    def racing_stat(pid: int) -> tuple[int, int, int, int] | None:
        if pid == 3 and reads["n"] == 0:  # reaped between its parent's read and its own
            reads["n"] += 1
            procs.reap(2, 3)
        return stat(pid)

    racing = tree_cpu(1, racing_stat, procs.children)
    assert reads["n"] == 1
    assert racing == procs.cpu(1) == (0, pytest.approx(64 / TICK))


def test_a_gone_process_reads_as_nothing() -> None:
    assert tree_cpu(7, lambda _: None, lambda _: []) == (0.0, 0.0)


def test_real_child_cpu_after_it_exited() -> None:
    """A real parent whose child burns CPU and exits between two readings."""
    script = textwrap.dedent("""
        import subprocess, sys
        print("ready", flush=True)
        sys.stdin.readline()
        subprocess.run([sys.executable, "-c",
                        "import time\\nwhile time.process_time() < 0.3: pass"], check=True)
        print("done", flush=True)
        sys.stdin.readline()
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "ready"
        own0, rest0 = tree_cpu(proc.pid)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "done"
        own1, rest1 = tree_cpu(proc.pid)
        assert rest1 - rest0 >= 0.25  # the exited child's 0.3 s, in clock ticks
        assert own1 >= own0
        proc.stdin.write("end\n")
        proc.stdin.flush()
    finally:
        proc.wait(timeout=30)


def test_ratio_text() -> None:
    assert ratio_text(200.0, 100.0) == "2.00x"
    assert ratio_text(100.0, 400.0, lower_is_better=True) == "4.00x"
    assert ratio_text(float("nan"), 100.0) == "-"
    assert ratio_text(100.0, float("nan")) == "-"
    assert ratio_text(100.0, 0.0) == "-"
