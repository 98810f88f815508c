"""Server start-up time: `yunying serve` until DICOMweb answers, and the memory it then holds.

`python -m benchmarks.startup [--runs N]`: N cold starts on a fresh data folder and N restarts
on that same folder (migrations done, first admin made); median, min and max of each, the
process tree's PSS once the port answers, and the load average (start-up is CPU-bound: a
busy machine stretches it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.net import start_yunying
from benchmarks.servers import tree_memory


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (its reaped children included)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def one_start(data_dir: Path) -> tuple[float, float, float]:
    """Seconds from launch to the first answer of /dicomweb/studies, the CPU seconds the
    process tree spent until then (what a loaded machine does not stretch), and PSS (MiB)."""
    t0 = time.perf_counter()
    server = start_yunying(data_dir)
    elapsed = time.perf_counter() - t0
    try:
        tree = tree_memory(server.pid)
        cpu = sum(cpu_seconds(p) for p in tree)
        pss = sum(m["Pss"] for m in tree.values()) / 2**20
    finally:
        server.stop()
    return elapsed, cpu, pss


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args(argv)
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="yunying-start-") as tmp:
        cold, warm, cold_cpu, warm_cpu, pss = [], [], [], [], []
        for i in range(args.runs):
            data = Path(tmp) / f"d{i}"
            s, c, m = one_start(data)
            cold.append(s)
            cold_cpu.append(c)
            s, c, m = one_start(data)
            warm.append(s)
            warm_cpu.append(c)
            pss.append(m)
    for label, xs, cpu in (("fresh data folder", cold, cold_cpu), ("existing data folder", warm, warm_cpu)):
        print(f"{label}: median {statistics.median(xs):.2f} s (min {min(xs):.2f}, max {max(xs):.2f}, "
              f"{len(xs)} runs); CPU of the process tree median {statistics.median(cpu):.2f} s")
    print(f"PSS of the process tree once answering: median {statistics.median(pss):.0f} MiB")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
