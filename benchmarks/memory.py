"""Where a Yunying server's memory goes under the benchmark's kinds of load, phase by phase.

`python -m benchmarks.memory [--small N] [--out DIR]`: one server; after each phase
(start, STOW-RS CT, series metadata and retrieve, MPR and rendered frames, C-STORE of N small
instances, then IDLE_S seconds idle) the PSS / RSS / peak RSS of every process of its tree.
Short: the full `--vs-orthanc` run gives the figures to compare; this says which phase and
which process holds what.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import dimse, pixels, qido, stow, wado
from benchmarks.data import build_corpus, build_ct
from benchmarks.net import REPO_ROOT, free_port
from benchmarks.run import IDLE_S
from benchmarks.servers import Server, tree_memory


def kinds(pid: int) -> str:
    """The process's PSS split into anonymous memory (heaps, DuckDB) and file-backed pages."""
    anon = file = 0
    try:
        lines = Path(f"/proc/{pid}/smaps").read_text().splitlines()
    except OSError:
        return ""
    anonymous = True
    for line in lines:
        head = line.split()
        if head and "-" in head[0] and not head[0].endswith(":"):
            anonymous = len(head) < 6 or head[5].startswith("[")
        elif head and head[0] == "Pss:":
            if anonymous:
                anon += int(head[1])
            else:
                file += int(head[1])
    return f" (anon {anon / 1024:.0f}, file {file / 1024:.0f})"


def report(label: str, pid: int) -> None:
    tree = tree_memory(pid)
    pss = sum(m["Pss"] for m in tree.values()) / 2**20
    hwm = sum(m["VmHWM"] for m in tree.values()) / 2**20
    print(f"{label}: PSS {pss:.0f} MiB, peak RSS {hwm:.0f} MiB over {len(tree)} processes", flush=True)
    for p, m in sorted(tree.items()):
        print(f"    {p:>7} PSS {m['Pss'] / 2**20:6.1f} RSS {m['VmRSS'] / 2**20:6.1f} "
              f"peak {m['VmHWM'] / 2**20:6.1f}{kinds(p)}  {m['cmd'][:60]}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__)
    p.add_argument("--small", type=int, default=800, help="small studies sent by C-STORE (~2.5 instances each)")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "out")
    args = p.parse_args(argv)
    root = args.out.resolve() / "data"
    ct = build_ct(root, 300, "A")
    small = build_corpus(root, args.small)
    workdir = args.out.resolve() / "runs" / f"memory-{time.strftime('%Y%m%dT%H%M%S')}"
    server = Server("yunying", workdir, free_port())
    pid = server.proc.pid
    try:
        report("started", pid)
        phases: list[tuple[str, Callable[[], object]]] = [
            ("STOW-RS CT (300)", lambda: stow.stow(server.dicomweb_url, ct.files, clients=4, per_request=10)),
            ("series metadata + retrieve", lambda: (wado.series_metadata(server.dicomweb_url, ct, 3),
                                                    wado.series_retrieve(server.dicomweb_url, ct, 1))),
            ("MPR", lambda: pixels.mpr(server.dicomweb_url, ct, 12)),
            ("rendered + thumbnails", lambda: (pixels.rendered(server.dicomweb_url, ct, 100),
                                               pixels.thumbnails(server.dicomweb_url, ct, 10))),
            (f"C-STORE {len(small.files)} small, 4 associations",
             lambda: dimse.c_store(server.peer, small.files, associations=4)),
            # the first searches load the catalog (the study and series rows QIDO answers from)
            ("QIDO-RS (catalog loaded)", lambda: qido.qido(server.dicomweb_url, qido.qido_queries(small, 600))),
        ]
        for label, run in phases:
            t0 = time.perf_counter()
            run()
            report(f"{label} ({time.perf_counter() - t0:.0f} s)", pid)
        time.sleep(IDLE_S)
        report(f"idle {IDLE_S:.0f} s", pid)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
