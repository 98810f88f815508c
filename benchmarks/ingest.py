"""`python -m benchmarks.ingest`: only the ingest figures of the main run, side by side.

STOW-RS CT with 4 clients, C-STORE CT over 1 and 4 associations, and the small-instance load
over 4 `storescu`, against a fresh Yunying and (with --vs-orthanc) a fresh Orthanc, each
workload `--rounds` times alternating servers (one fresh server per round), medians. The
same data and clients as `python -m benchmarks` (see benchmarks/README.md); a few minutes
instead of a quarter of an hour, for measuring a change to the write path on a shared machine.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import dimse, stow
from benchmarks.data import build_corpus, build_ct
from benchmarks.net import REPO_ROOT, free_port
from benchmarks.run import remove_in_background
from benchmarks.servers import Server, tree_memory

ENVS: dict[str, dict[str, str]] = {}  # variant name -> environment of its server (--ab)
TREES: dict[str, Path] = {}  # git ref -> an exported tree of it (--ref)
FIGURES = ("stow_ips", "cstore_1", "cstore_4", "cstore_small", "rss_peak_mb", "rss_idle_mb")
LABELS = {"stow_ips": "STOW-RS CT, 4 clients", "cstore_1": "C-STORE CT, 1 association",
          "cstore_4": "C-STORE CT, 4 associations", "cstore_small": "C-STORE small, 4 storescu",
          "rss_peak_mb": "memory peak (PSS), MiB, lower", "rss_idle_mb": "memory idle after, MiB, lower"}
IDLE_S = 12.0  # seconds without requests before the idle memory is read (ingest workers exit after 10)


StatReader = Callable[[int], "tuple[int, int, int, int] | None"]
ChildLister = Callable[[int], list[int]]


def parse_stat(text: str) -> tuple[int, int, int, int]:
    """utime, stime, cutime, cstime (clock ticks) of a /proc/PID/stat line (proc(5) fields
    14-17); the command in parentheses may hold spaces, so fields are counted after its ')'."""
    f = text.rsplit(")", 1)[1].split()
    return int(f[11]), int(f[12]), int(f[13]), int(f[14])


def read_stat(pid: int) -> tuple[int, int, int, int] | None:
    try:
        return parse_stat(Path(f"/proc/{pid}/stat").read_text())
    except (OSError, IndexError, ValueError):
        return None  # gone (and reaped) meanwhile


def child_pids(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            out += [int(c) for c in task.read_text().split()]
        except OSError:
            pass
    return out


def _ticks(pid: int, stat: StatReader, children: ChildLister) -> tuple[int, int]:
    """(own, descendants) ticks of a process: descendants are the children it reaped (cutime,
    cstime: a child's CPU moves there when its parent waits for it) plus every live or zombie
    child's own whole tree. Read again if a child was reaped while its tree was summed, so an
    exiting child is counted once, neither in both places nor in none."""
    first = stat(pid)
    if first is None:
        return 0, 0
    for _ in range(5):
        live = sum(sum(_ticks(c, stat, children)) for c in children(pid))
        again = stat(pid)
        if again is None or again[2:] == first[2:]:
            break
        first = again
    return first[0] + first[1], first[2] + first[3] + live


def tree_cpu(pid: int, stat: StatReader = read_stat, children: ChildLister = child_pids) -> tuple[float, float]:
    """CPU seconds (user + system) of a process, and of all its descendants since they started,
    those that exited included (ingest workers exit after 10 s idle, maybe inside a measured
    window: counting live ones only made the difference negative). Both only ever grow."""
    own, rest = _ticks(pid, stat, children)
    tick = os.sysconf("SC_CLK_TCK")
    return own / tick, rest / tick


def cpu_seconds(pid: int) -> float:
    """tree_cpu's two parts together."""
    return sum(tree_cpu(pid))


class PeakSampler:
    """The largest total PSS of a server's process tree, sampled while it works: workers that
    exit before the end count too (the tree's VmHWM at the end misses them), and pages that
    workers share with their forkserver count once (a sum of RSS counts them in every process)."""

    def __init__(self, pid: int, every_s: float = 0.25) -> None:
        self.pid, self.every_s, self.peak = pid, every_s, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.peak = max(self.peak, sum(m["Pss"] or m["VmRSS"] for m in tree_memory(self.pid).values()))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def one_round(name: str, workdir: Path, scp_port: int, ct: Any, store1: Any, store4: Any,
              small: Sequence[Path], cstore_n: int, only: Sequence[str] = ()) -> dict[str, float]:
    """Every ingest workload against one fresh server, in the main run's order."""
    os.sync()
    base, _, env = name.partition("+")
    base, _, ref = base.partition("@")
    saved = {k: os.environ.get(k) for k in ENVS.get(env, {})}
    os.environ.update(ENVS.get(env, {}))
    try:
        server = Server(base, workdir, scp_port, repo_root=TREES.get(ref))
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    out: dict[str, float] = {}
    steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("stow_ips", lambda: stow.stow(server.dicomweb_url, ct.files, clients=4, per_request=10)),
        ("cstore_1", lambda: dimse.c_store(server.peer, store1.files[:cstore_n], associations=1)),
        ("cstore_4", lambda: dimse.c_store(server.peer, store4.files[:cstore_n], associations=4)),
        ("cstore_small", lambda: dimse.c_store(server.peer, small, associations=4)),
    ]
    steps = [(k, fn) for k, fn in steps if not only or k in only]
    sampler = PeakSampler(server.proc.pid)
    try:
        for key, fn in steps:
            before = tree_cpu(server.proc.pid)
            try:
                got = fn()
                out[key] = got["instances_per_s"]
            except Exception as exc:  # noqa: BLE001 - a failed figure is reported, the rest runs
                log(f"{name}: {key} failed: {exc}")
            else:
                # CPU per instance moves far less with the machine's load than instances/s
                main, rest = (1000 * (a - b) / got["instances"] for a, b in zip(tree_cpu(server.proc.pid), before))
                log(f"{name}: {LABELS[key]}: {out[key]:.0f} inst/s; CPU ms/instance: server process "
                    f"{main:.2f}, its child processes {rest:.2f}")
        time.sleep(IDLE_S)  # idle: what the server keeps between bursts of work
        memory = tree_memory(server.proc.pid)
        # PSS: worker processes share pages with their forkserver (RSS would count them twice)
        out["rss_idle_mb"] = sum(m["Pss"] or m["VmRSS"] for m in memory.values()) / 2**20
        out["rss_peak_mb"] = sampler.stop() / 2**20
        log(f"{name}: memory idle {out['rss_idle_mb']:.0f} MiB, peak {out['rss_peak_mb']:.0f} MiB; "
            + ", ".join(f"{m['cmd'][:40]} {m['Pss'] / 2**20:.0f}" for m in memory.values()))
    finally:
        sampler.stop()
        server.stop()
    return out


def ratio_text(first: float, other: float, lower_is_better: bool = False) -> str:
    """The first server's figure against another's, as "1.23x" (>1: the first is better, for
    rates and, inverted, for memory), or "-" when either is missing or zero."""
    if not (first > 0 and other > 0):  # NaN (no figure) compares false too
        return "-"
    return f"{(other / first if lower_is_better else first / other):.2f}x"


def export(ref: str, root: Path) -> Path:
    """The files of `ref` in a folder of their own (the repository itself is not touched)."""
    sha = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", ref], capture_output=True,
                         text=True, check=True).stdout.strip()
    tree = root / sha
    if not (tree / "yunying").is_dir():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", sha], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ingest", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vs-orthanc", action="store_true", help="Orthanc too, rounds alternating")
    p.add_argument("--ab", metavar="KEY=VALUE", action="append", default=[],
                   help="also a Yunying started with this environment (e.g. YUNYING_DIMSE_LEAN_STORE=false)")
    p.add_argument("--ref", action="append", default=[],
                   help="also a Yunying of this git commit (exported with `git archive`, no worktree)")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--small-studies", type=int, default=2000,
                   help="small-instance set size in studies (the main run: 8000, ~20,000 instances)")
    p.add_argument("--cstore", type=int, default=300, help="CT instances per C-STORE run")
    p.add_argument("--slices", type=int, default=300, help="CT slices (the main run: 300)")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "out")
    p.add_argument("--only", action="append", default=[], choices=FIGURES[:4],
                   help="only this workload (repeatable), e.g. --only stow_ips while working on STOW-RS")
    args = p.parse_args(argv)
    root = args.out.resolve() / "data"
    ct = build_ct(root, args.slices, "A")
    wanted = set(args.only or FIGURES[:4])  # the data sets of the other workloads are not built
    store1 = build_ct(root, args.slices, "B") if "cstore_1" in wanted else None
    store4 = build_ct(root, args.slices, "C") if "cstore_4" in wanted else None
    small = build_corpus(root, args.small_studies + (args.small_studies == 5000)).files if "cstore_small" in wanted else []
    os.sync()
    servers = ["yunying", "orthanc"] if args.vs_orthanc else ["yunying"]
    for ref in args.ref:
        # outside the checkout: mypy and the tests would otherwise walk the exported copy
        TREES[ref] = export(ref, Path(tempfile.gettempdir()) / "yunying-bench-trees")
        servers.append(f"yunying@{ref}")
    for i, kv in enumerate(args.ab):
        ENVS[f"b{i}"] = dict([kv.split("=", 1)])
        servers.append(f"yunying+b{i}")
        print(f"yunying+b{i}: {kv}")
    run_dir = args.out.resolve() / "runs" / ("ingest-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))
    results: dict[str, dict[str, list[float]]] = {s: {k: [] for k in FIGURES} for s in servers}
    scp_port = free_port()
    for r in range(args.rounds):
        for name in servers if r % 2 == 0 else servers[::-1]:
            workdir = run_dir / f"{name}-{r}"
            got = one_round(name, workdir, scp_port, ct, store1, store4, small, args.cstore, args.only)
            for k, v in got.items():
                results[name][k].append(v)
            remove_in_background(workdir, ["data", "storage"])
    def med(name: str, k: str) -> float:
        got = results.get(name, {}).get(k)
        return statistics.median(got) if got else float("nan")

    others = servers[1:]
    print(f"\n{'figure':30} " + " ".join(f"{s:>10}" for s in servers)
          + "".join(f"  {servers[0]}/{s}" for s in others) + f"  (inst/s, median of {args.rounds}; "
          f"small set {len(small)} instances, CT {min(args.cstore, args.slices)} x 512x512)")
    for k in FIGURES:
        ratios = [ratio_text(med(servers[0], k), med(s, k), lower_is_better=k.startswith("rss")) for s in others]
        print(f"{LABELS[k]:30} " + " ".join(f"{med(s, k):10.0f}" if med(s, k) >= 0 else f"{'-':>10}" for s in servers)
              + "".join(f"  {r:>{len(servers[0]) + len(s) + 1}}" for r, s in zip(ratios, others)) + "   "
              + " / ".join(str([round(v) for v in results[s][k]]) for s in servers))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
