"""`python -m benchmarks.appcpu [--ref COMMIT]`: the whole HTTP app's CPU per request, in process,
this checkout against an earlier commit (by default the last one before issue 11).

`benchmarks.ab` compares two servers over the network: its wall-time figures swing 10-30 % on a
shared machine, and two servers of the same code differ by as much. This calls each commit's
app as ASGI in one event loop (no sockets, no uvicorn), a QIDO-RS search and a frame with a
bearer token (the earlier app ignores it), and prints the CPU of the event loop's thread per
request (`--process`: of every thread, the frame's read in a worker thread included), the lowest
and the median of many short batches. Each commit runs in its own process from its own tree
(`git worktree`), this very file included, so it only uses what both have.
"""
from __future__ import annotations

import argparse
import ast
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.layers import _call

KEY = "yy_appcpu_benchmark_key_0123456789abcdef"
HERE = Path(__file__).resolve()


def _scope(path: str, query: str, accept: str) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
            "query_string": query.encode(), "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8080),
            "headers": [(b"host", b"archive"), (b"accept", accept.encode()),
                        (b"authorization", f"Bearer {KEY}".encode())]}


def measure(rounds: int, n: int, process: bool) -> dict[str, tuple[float, float]]:
    """{kind: (lowest, median) microseconds per request} of the app of the tree this runs from."""
    from benchmarks import data
    from dicomweb.app import build_app
    from index.model import Origin
    from yunying.archive import Archive
    from yunying.settings import Settings

    clock = time.process_time if process else time.thread_time
    ct = data.build_ct(Path(tempfile.gettempdir()) / "yunying-bench-data", slices=20, tag="L")
    with tempfile.TemporaryDirectory() as tmp:
        with_auth = "api_key" in Settings.__dataclass_fields__  # the app of issue 11 and after
        extra: dict[str, Any] = {"api_key": KEY} if with_auth else {}
        settings = Settings(data=Path(tmp) / "data", **extra)
        archive = Archive(settings.data)
        audited = False
        try:
            for f in ct.files:
                archive.store(f.read_bytes(), Origin("import", "benchmark"))
            archive.flush()
            app = build_app(archive, settings)
            if with_auth:  # as `yunying serve` runs it: every access to patient data audited
                import yunying.audit
                from yunying.audit.patients import study_patients
                yunying.audit.start(settings.data, app.state.auth.store.engine, study_patients(archive))
                audited = True
            frame = f"/dicomweb/studies/{ct.study_uid}/series/{ct.series_uid}/instances/{ct.sop_uids[3]}/frames/1"
            kinds = {"QIDO studies": _scope("/dicomweb/studies", f"StudyInstanceUID={ct.study_uid}",
                                            "application/dicom+json"),
                     "frame": _scope(frame, "", 'multipart/related; type="application/octet-stream"')}

            async def run() -> dict[str, list[float]]:
                for name, scope in kinds.items():
                    for _ in range(100):  # warm every cache
                        status = await _call(app, scope)
                    if status != 200:
                        raise SystemExit(f"{name} answered {status}")
                out: dict[str, list[float]] = {name: [] for name in kinds}
                for _ in range(rounds):  # batches alternate between the kinds
                    for name, scope in kinds.items():
                        t0 = clock()
                        for _ in range(n):
                            await _call(app, scope)
                        out[name].append((clock() - t0) / n * 1e6)
                return out

            samples = asyncio.run(run())
        finally:
            if audited:
                import yunying.audit
                yunying.audit.stop()
            archive.close()
    return {name: (min(v), statistics.median(v)) for name, v in samples.items()}


def _run_in(tree: Path, args: list[str]) -> dict[str, tuple[float, float]]:
    """measure() in a process of its own, importing from `tree` (the module run from there)."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.appcpu", "--inner", *args], cwd=tree,
                          env={**os.environ, "PYTHONPATH": str(tree)}, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the app of {tree} failed: {done.stderr[-2000:]}")
    result: dict[str, tuple[float, float]] = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", default="20bc71b", help="the earlier commit (A); default: the last before issue 11")
    parser.add_argument("--rounds", type=int, default=40, help="batches per kind")
    parser.add_argument("-n", type=int, default=50, help="requests per batch")
    parser.add_argument("--process", action="store_true", help="CPU of every thread, not only the event loop's")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    passed = ["--rounds", str(args.rounds), "-n", str(args.n)] + (["--process"] if args.process else [])
    if args.inner:
        print(repr(measure(args.rounds, args.n, args.process)))
        return
    from benchmarks.ab import checkout
    from benchmarks.net import REPO_ROOT

    with tempfile.TemporaryDirectory(prefix="yunying-appcpu-") as tmp:
        tree = checkout(args.ref, Path(tmp) / "ref")
        try:
            # this file runs in the earlier tree too: it is copied there
            (tree / "benchmarks" / HERE.name).write_bytes(HERE.read_bytes())
            results = {f"A {args.ref}": _run_in(tree, passed), "B this checkout": _run_in(REPO_ROOT, passed)}
        finally:
            subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "remove", "--force", str(tree)],
                           check=False, capture_output=True)
    what = "every thread" if args.process else "the event loop's thread"
    print(f"CPU us per request of {what}, in process (lowest / median of {args.rounds} batches of {args.n})")
    print(f"{'request':<14}" + "".join(f"{name:>24}" for name in results) + f"{'B/A':>8}")
    a, b = results.values()
    for kind in a:
        print(f"{kind:<14}" + "".join(f"{r[kind][0]:>12.1f}{r[kind][1]:>12.1f}" for r in results.values())
              + f"{b[kind][1] / a[kind][1]:>7.2f}x")


if __name__ == "__main__":
    main()
