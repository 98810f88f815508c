"""Server start-up time: `yunying serve` until DICOMweb answers, and the memory it then holds.

`python -m benchmarks.startup [--runs N] [--repo CHECKOUT ...]`: N cold starts on a fresh data folder and N restarts
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

from benchmarks.net import REPO_ROOT, start_yunying
from benchmarks.servers import tree_memory


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (its reaped children included)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def one_start(data_dir: Path, repo: Path) -> tuple[float, float, float]:
    """Seconds from launch to the first answer of /dicomweb/studies, the CPU seconds the
    process tree spent until then (what a loaded machine does not stretch), and PSS (MiB)."""
    t0 = time.perf_counter()
    server = start_yunying(data_dir, repo_root=repo)
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
    p.add_argument("--repo", type=Path, action="append",
                   help="start the server of this checkout (repeat to compare, runs alternating)")
    args = p.parse_args(argv)
    repos: list[Path] = args.repo or [REPO_ROOT]
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    times: dict[Path, dict[str, list[float]]] = {r: {k: [] for k in ("cold", "warm", "cold_cpu", "warm_cpu", "pss")}
                                                 for r in repos}
    with tempfile.TemporaryDirectory(prefix="yunying-start-") as tmp:
        for i in range(args.runs):
            for n, repo in enumerate(repos):
                t = times[repo]
                data = Path(tmp) / f"d{i}-{n}"
                s, c, m = one_start(data, repo)
                t["cold"].append(s)
                t["cold_cpu"].append(c)
                s, c, m = one_start(data, repo)
                t["warm"].append(s)
                t["warm_cpu"].append(c)
                t["pss"].append(m)
    for repo, t in times.items():
        print(repo)
        for label, key in (("fresh data folder", "cold"), ("existing data folder", "warm")):
            xs, cpu = t[key], t[key + "_cpu"]
            print(f"  {label}: median {statistics.median(xs):.2f} s (min {min(xs):.2f}, max {max(xs):.2f}, "
                  f"{len(xs)} runs); CPU of the process tree median {statistics.median(cpu):.2f} s")
        print(f"  PSS of the process tree once answering: median {statistics.median(t['pss']):.0f} MiB")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
