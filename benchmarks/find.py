"""`python -m benchmarks.find`: only the C-FIND figure of the main run, side by side.

Loads the main run's query corpus (STOW-RS, 4 clients) into a fresh Yunying, and with
--vs-orthanc a fresh Orthanc, and with --ref COMMIT a Yunying of that commit; then runs the main
run's C-FIND study mix (`benchmarks.dimse.c_find`, same queries, same checks) `--rounds` times
against each, alternating servers, on the same servers (the load is paid once). Per round: p50
and the server's CPU per query (user + system of the server process and its children), which
moves far less with the machine's load than the latency does.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import dimse, stow
from benchmarks.data import build_corpus
from benchmarks.ingest import TREES, cpu_seconds, export, log
from benchmarks.net import REPO_ROOT, free_port
from benchmarks.run import remove_in_background
from benchmarks.servers import Server


def load(server: Server, files: list[Path], name: str) -> None:
    r = stow.stow(server.dicomweb_url, files, clients=4, per_request=50, deadline_s=600.0)
    log(f"{name}: corpus of {len(files)} instances loaded, {r['instances_per_s']:.0f} inst/s")


def settle(server: Server, name: str, limit_s: float = 90.0) -> None:
    """Wait until the server is idle (under 5% of a CPU for a second): after the load it still
    works in the background (the master patient index's feed, the index's catalog), which would
    count as C-FIND's CPU in the first round."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        before = cpu_seconds(server.proc.pid)
        time.sleep(1.0)
        if cpu_seconds(server.proc.pid) - before < 0.05:
            break
    log(f"{name}: idle after {time.monotonic() - t0:.0f} s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.find", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vs-orthanc", action="store_true", help="Orthanc too, rounds alternating")
    p.add_argument("--ref", action="append", default=[],
                   help="also a Yunying of this git commit (exported with `git archive`, no worktree)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--studies", type=int, default=5000, help="corpus size (the main run: 5000)")
    p.add_argument("--queries", type=int, default=200, help="queries per round (the main run: 200)")
    p.add_argument("--no-yunying", action="store_true", help="only the --ref servers (and Orthanc)")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "out")
    args = p.parse_args(argv)
    corpus = build_corpus(args.out.resolve() / "data", args.studies)
    os.sync()
    names = [] if args.no_yunying else ["yunying"]
    names += ["orthanc"] if args.vs_orthanc else []
    for ref in args.ref:
        TREES[ref] = export(ref, Path(tempfile.gettempdir()) / "yunying-bench-trees")
        names.append(f"yunying@{ref}")
    run_dir = args.out.resolve() / "runs" / ("find-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))
    queries = dimse.c_find_queries(corpus, args.queries)
    servers: dict[str, Server] = {}
    p50: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    loads = [os.getloadavg()[0]]
    try:
        for name in names:
            base, _, ref = name.partition("@")
            servers[name] = Server(base, run_dir / name, free_port(), repo_root=TREES.get(ref))
            load(servers[name], list(corpus.files), name)
        for name in names:
            settle(servers[name], name)
            # not counted: the index's catalog is built at the first query (in the main run QIDO
            # comes first, so C-FIND finds it built); ~3 ms of CPU per query in a first round
            dimse.c_find(servers[name].peer, queries[:40])
        for r in range(args.rounds):
            for name in names if r % 2 == 0 else names[::-1]:
                pid = servers[name].proc.pid
                before = cpu_seconds(pid)
                got = dimse.c_find(servers[name].peer, queries)
                spent = cpu_seconds(pid) - before
                p50[name].append(got["p50_ms"])
                cpu[name].append(1000 * spent / (got["queries"] + 5))  # the warm-up queries too
                wrong = f", wrong counts {got['wrong_counts']}" if got["wrong_counts"] else ""
                log(f"{name} round {r}: p50 {got['p50_ms']:.2f} ms, p95 {got['p95_ms']:.2f} ms, "
                    f"server CPU {cpu[name][-1]:.2f} ms/query{wrong}")
                loads.append(os.getloadavg()[0])
    finally:
        for s in servers.values():
            s.stop()
        remove_in_background(run_dir, [f"{n}/data" for n in names] + ["orthanc/storage"])
    first = names[0]
    print(f"\nC-FIND study mix, {args.queries} queries x {args.rounds} rounds, {args.studies} studies; "
          f"ratio: {first}'s p50 / this one's (the main run's ours / Orthanc)")
    for name in names:
        m, c = statistics.median(p50[name]), statistics.median(cpu[name])
        ratio = statistics.median(p50[first]) / m if m > 0 else float("nan")
        print(f"{name:28} p50 {m:7.2f} ms  {ratio:5.2f}x   CPU {c:6.2f} ms/query   "
              f"rounds {[round(v, 2) for v in p50[name]]}")
    print(f"load average {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
