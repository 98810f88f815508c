"""CPU and thread switches per STOW-RS CT instance, per thread of the server process.

    python -m benchmarks.stow_threads [--ref COMMIT] [--rounds N]

Stores the three cached CT studies (900 slices) from 4 clients, 10 per request, into a fresh
server and reads /proc/PID/task/*/{stat,status} before and after: user and system CPU per
instance, and per thread group (named by `py-spy dump`) its CPU and its voluntary + involuntary
context switches per instance. Switches are the GIL hand-offs and wake-ups of the store threads
(issue 9 part 3); they move less with the machine's load than CPU does. With `--ref`, rounds of
that commit (exported with `git archive`) alternate with this checkout's.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from benchmarks import stow
from benchmarks.data import build_ct
from benchmarks.ingest import export
from benchmarks.net import REPO_ROOT, start_yunying

TICK = os.sysconf("SC_CLK_TCK")


def _tasks(pid: int) -> dict[str, tuple[float, float, int]]:
    """Per thread id: user and system CPU seconds, context switches."""
    out = {}
    for t in Path(f"/proc/{pid}/task").iterdir():
        try:
            f = (t / "stat").read_text().rsplit(")", 1)[1].split()
            switches = sum(int(line.split()[1]) for line in (t / "status").read_text().splitlines()
                           if "ctxt_switches" in line)
        except OSError:
            continue
        out[t.name] = (int(f[11]) / TICK, int(f[12]) / TICK, switches)
    return out


def _names(pid: int) -> dict[str, str]:
    dump = subprocess.run(["py-spy", "dump", "-p", str(pid)], capture_output=True, text=True, check=False).stdout  # no names: "?"
    return {m[1]: re.sub(r"_\d+$", "_N", m[2]) for m in re.finditer(r'Thread (\d+) \(\w+\): "([^"]*)"', dump)}


def one_round(label: str, tree: Path) -> None:
    sets = [build_ct(REPO_ROOT / "benchmarks" / "out" / "data", 300, tag) for tag in "ABC"]
    work = Path(tempfile.mkdtemp(prefix="yunying-stow-threads-"))
    server = start_yunying(work / "data", repo_root=tree)
    try:
        before = _tasks(server.pid)
        n = sum(stow.stow(server.dicomweb_url, s.files, clients=4, per_request=10)["instances"] for s in sets)
        after, names = _tasks(server.pid), _names(server.pid)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    groups: dict[str, list[float]] = {}
    for tid, (user, system, switches) in after.items():
        u0, s0, w0 = before.get(tid, (0.0, 0.0, 0))
        g = groups.setdefault(names.get(tid, "?"), [0.0, 0.0, 0.0])
        g[0] += 1
        g[1] += user + system - u0 - s0
        g[2] += switches - w0
    user = sum((a[0] - before.get(t, (0.0, 0.0, 0))[0] for t, a in after.items()), 0.0)
    system = sum((a[1] - before.get(t, (0.0, 0.0, 0))[1] for t, a in after.items()), 0.0)
    print(f"{label}: server CPU ms/instance {1000 * (user + system) / n:.2f} (user {1000 * user / n:.2f}, "
          f"system {1000 * system / n:.2f}); switches/instance {sum(g[2] for g in groups.values()) / n:.1f}")
    for name, (count, cpu, woke) in sorted(groups.items(), key=lambda kv: -kv[1][1])[:4]:
        print(f"    {name:24} x{count:<3.0f} {1000 * cpu / n:.2f} ms  {woke / n:.1f} switches")


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.stow_threads", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ref", help="also a Yunying of this git commit, rounds alternating")
    p.add_argument("--rounds", type=int, default=1)
    args = p.parse_args()
    trees = [("this", REPO_ROOT)]
    if args.ref:
        trees.append((args.ref, export(args.ref, Path(tempfile.gettempdir()) / "yunying-bench-trees")))
    for r in range(args.rounds):
        for label, tree in trees if r % 2 == 0 else trees[::-1]:
            one_round(label, tree)


if __name__ == "__main__":
    main()
