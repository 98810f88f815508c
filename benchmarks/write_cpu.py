"""`python -m benchmarks.write_cpu [--rounds N] [--ref COMMIT] [--profile ct|small]`: the CPU one
instance costs to write (yunying.writing.write_instance), in process, as an ingest worker runs it
(issue 9).

The STOW-RS and C-STORE figures on this 2-core machine are limited by the CPU each instance
costs; this measures that cost alone (no HTTP, no DIMSE, no index), for the benchmark's 512x512
CT slice and its small instance, each read from bytes (C-STORE) and from a file (a STOW part or
a hand-off file), into a fresh store per round with group sync on (the durability step is the
server's). It prints the median over rounds of CPU ms per instance (process time: user + system).
On a shared machine CPU time still swells with the load (caches, the kernel's locks): --ref
COMMIT measures that commit too (exported with `git archive`), its rounds alternating with ours
in fresh processes, so both see the same machine.
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.data import build_corpus, build_ct
from benchmarks.net import REPO_ROOT
from index.model import Origin
from storage import Storage
from yunying.writing import write_instance

ORIGIN = Origin("bench", "write_cpu")


def _round(files: list[Path], as_bytes: bool, work: Path) -> float:
    """CPU ms per instance of writing `files` once into a fresh store."""
    root = Path(tempfile.mkdtemp(dir=work))
    storage = Storage(root, group_sync=True)
    sources: list[Path | bytes] = [f.read_bytes() for f in files] if as_bytes else list(files)
    start = time.process_time()
    for src in sources:
        write_instance(storage, src, ORIGIN, sync=False)
    cpu = time.process_time() - start
    shutil.rmtree(root)
    return cpu * 1000 / len(files)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.write_cpu", description=__doc__)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--ct", type=int, default=100, help="CT slices per round")
    p.add_argument("--small", type=int, default=500, help="small instances per round")
    p.add_argument("--profile", choices=["ct", "small"], help="cProfile one kind instead (bytes source)")
    p.add_argument("--ref", help="also this git commit, rounds alternating (e.g. main)")
    p.add_argument("--data", type=Path, default=REPO_ROOT / "benchmarks" / "out" / "data")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # one round, JSON out
    args = p.parse_args(argv)
    if args.ref:
        return _versus(args)
    from numcodecs import blosc

    from yunying.cli import quiet_pydicom

    quiet_pydicom()
    blosc.use_threads = False  # as in an ingest worker (yunying/workers.py)
    data = args.data
    kinds = {"ct": list(build_ct(data, 300, "A").files[:args.ct]),
             "small": list(build_corpus(data, 2000).files[:args.small])}
    work = Path(tempfile.mkdtemp(prefix="write-cpu-"))
    try:
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(args.rounds):
                _round(kinds[args.profile], True, work)
            prof.disable()
            pstats.Stats(prof).sort_stats("cumulative").print_stats(45)
            return 0
        if args.one:
            for kind, files in kinds.items():
                _round(files[:20], True, work)  # warm: imports, caches
            print(json.dumps({f"{kind} from {'bytes' if b else 'file '}": _round(files, b, work)
                              for kind, files in kinds.items() for b in (True, False)}))
            return 0
        for kind, files in kinds.items():
            for as_bytes in (True, False):
                _round(files[:20], as_bytes, work)  # warm: imports, caches
                ms = [_round(files, as_bytes, work) for _ in range(args.rounds)]
                print(f"{kind:5} from {'bytes' if as_bytes else 'file '}: {statistics.median(ms):.3f} ms CPU "
                      f"per instance (median of {args.rounds}; min {min(ms):.3f}, max {max(ms):.3f})", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _versus(args: argparse.Namespace) -> int:
    """Rounds of this checkout and of args.ref alternating, each in a fresh process."""
    from benchmarks.ingest import export

    trees = {"this": REPO_ROOT, args.ref: export(args.ref, Path(tempfile.gettempdir()) / "yunying-bench-trees")}
    script = Path(__file__).resolve()
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for _ in range(args.rounds):
        for name, tree in trees.items():
            out = subprocess.run([sys.executable, str(script), "--one", "--data", str(args.data.resolve()),
                                  "--ct", str(args.ct), "--small", str(args.small)],
                                 env={**os.environ, "PYTHONPATH": str(tree)}, cwd=tree, capture_output=True,
                                 text=True, check=True).stdout
            runs[name].append(json.loads(out.strip().splitlines()[-1]))
    for kind in runs["this"][0]:
        figures = "  ".join(f"{name}: {statistics.median(r[kind] for r in rs):.3f}" for name, rs in runs.items())
        print(f"{kind}: ms CPU per instance, median of {args.rounds}  {figures}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
