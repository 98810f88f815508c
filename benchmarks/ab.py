"""A/B in one run: this checkout against an earlier commit, same data, same machine, interleaved.

`python -m benchmarks.ab [--ref COMMIT] [--studies N] [--slices N] [--rounds N] [--twin]`

Answers "what did this change cost": issue 11 asks that QIDO-RS p50 and frames/s with a bearer
token stay within 10% of the archive before the authorization point existed (the default ref,
20bc71b, is the last commit before it). Both servers get the same requests with the same
`Authorization` header (the earlier one ignores it); the order rotates every round (`round_order`)
so that the load of a shared machine falls on all alike, and every timed part starts on a server
just warmed by an untimed pass (`--cold`: not), so none is measured straight after sitting idle
while the others ran. Medians over rounds, and the ratio B / A; the server's CPU per request
(`*_cpu`) is the figure to trust on a busy machine.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.data import CtStudy, build_corpus, build_ct
from benchmarks.net import REPO_ROOT, YunyingServer, start_yunying
from benchmarks.qido import qido, qido_queries
from benchmarks.stow import stow
from benchmarks.wado import frames

BEFORE_ISSUE_11 = "20bc71b"


def checkout(ref: str, where: Path) -> Path:
    """A detached work tree of `ref` (removed by the caller with `git worktree remove`)."""
    subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "add", "--detach", "-f", str(where), ref],
                   check=True, capture_output=True)
    return where


_NAMES: dict[tuple[int, str], str] = {}  # (pid, tid) -> the thread's name, its pool's number dropped


def threads_cpu(pid: int) -> dict[str, int]:
    """CPU nanoseconds of each thread of a process so far (the first field of
    /proc/PID/task/TID/schedstat). The clock ticks of /proc/PID/stat (10 ms) were 0.05 ms per
    query of a 200-query round: as large as the differences this benchmark looks for."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[task.name] = int((task / "schedstat").read_text().split()[0])
            if (pid, task.name) not in _NAMES:
                name = (task / "comm").read_text().strip()
                if name != "python" or task.name == str(pid):  # Python's threads: cpu_by_kind names them
                    _NAMES[(pid, task.name)] = "main" if task.name == str(pid) else _kind(name)
        except (OSError, ValueError, IndexError):  # a thread ending as we read
            continue
    return out


def _kind(name: str) -> str:
    """A thread's name without its pool's number."""
    return name.rstrip("0123456789_-")


def python_thread_names(pid: int) -> dict[str, str]:
    """Thread id -> the Python thread's name (`py-spy dump`; {} without py-spy). Every thread of
    the server is "python" to the OS, so the audit writer, the master index's feeder and the
    QIDO worker threads were one figure; py-spy's own per-thread samples count waiting threads
    as busy here (its idle detection fails in this container), which had blamed the feeder."""
    try:
        dump = subprocess.run(["py-spy", "dump", "-p", str(pid)], capture_output=True, text=True,
                              timeout=30, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return dict(re.findall(r'Thread (\d+) \([^)]*\): "([^"]+)"', dump))


def cpu_by_kind(pid: int, before: dict[str, int]) -> dict[str, float]:
    """CPU seconds since `before` (as cpu_since), by thread kind (the event loop's "main", a pool's name without its number)."""
    out: dict[str, float] = {}
    now = threads_cpu(pid)
    if any((pid, tid) not in _NAMES for tid in now):  # a new Python thread: one py-spy dump names them
        names = python_thread_names(pid)
        for tid in now:
            _NAMES.setdefault((pid, tid), _kind(names.get(tid, "python")))
    for tid, ns in now.items():
        kind = _NAMES.get((pid, tid), "?")
        out[kind] = out.get(kind, 0.0) + (ns - before.get(tid, 0)) / 1e9
    return out


def cpu_since(pid: int, before: dict[str, int]) -> float:
    """CPU seconds the process's threads used since `before`, counted per thread: a worker thread
    that ended meanwhile (anyio's end after 10 s idle, so they used ~nothing) takes its total
    with it instead of making the sum go down."""
    return sum(ns - before.get(tid, 0) for tid, ns in threads_cpu(pid).items()) / 1e9


def round_order(names: list[str], r: int) -> list[str]:
    """Round r's order: the list rotated by r. Over len(names) rounds every server is measured
    once in every place, and with three or more no server is measured twice in a row across a
    round's end. (Alternating forwards and backwards did that to A and B' every other round and
    never to B, in the middle: measured again at once, a server is still warm; after sitting idle
    while the others ran it is not (its caches gone, B's heap trimmed), which cost B's QIDO p50
    10-30 % and made B and B' of the same code drift apart by as much.)"""
    k = r % len(names)
    return names[k:] + names[:k]


def measure(server: YunyingServer, ct: CtStudy, queries: list, latency: int, requests: int,
            warm: bool = True) -> dict[str, float]:
    if warm:  # untimed: every server starts its timed part in the same state, however long it sat idle
        qido(server.dicomweb_url, queries, warmup=0)
    s0 = threads_cpu(server.pid)
    q = qido(server.dicomweb_url, queries)
    by1, s1 = cpu_by_kind(server.pid, s0), threads_cpu(server.pid)
    f = frames(server.dicomweb_url, ct, latency_requests=latency,
               throughput_requests=requests)
    by2 = cpu_by_kind(server.pid, s1)
    # server CPU per request: far less sensitive to a shared machine's load than wall time
    nq, nf = q["queries"] + min(20, len(queries)), latency + 1 + 2 * requests
    out = {"qido_p50": q["p50_ms"], "frame_p50": f["p50_ms"], "fps_1": f["fps_1"], "fps_8": f["fps_8"],
           "qido_cpu": sum(by1.values()) * 1000 / nq, "frame_cpu": sum(by2.values()) * 1000 / nf}
    # the event loop's thread apart: where the HTTP layers run (benchmarks.layers), and what
    # one core must do for every request however many cores there are
    out["qido_main_cpu"] = by1.get("main", 0.0) * 1000 / nq
    out["frame_main_cpu"] = by2.get("main", 0.0) * 1000 / nf
    for kind, seconds in by1.items():  # printed per round (stderr): which threads a query costs
        out[f"qido_cpu:{kind}"] = seconds * 1000 / nq
    for kind, seconds in by2.items():  # and a frame
        out[f"frame_cpu:{kind}"] = seconds * 1000 / nf
    return out


def _start(data: Path, repo: Path, env: list[str], api_key: str | None = None) -> YunyingServer:
    """A server of `repo` on `data`, with `env` (KEY=VALUE) in its environment.

    Servers are started again after storing (`--no-restart`: not): in the process that stored
    them, the study index's in-memory rows were built one write at a time between the ingest's
    own allocations, and how that fell out differed from one process to the next: three servers
    of the same code, fed the same data the same way, measured alike, spent 1.03-1.15 ms of CPU
    per QIDO (+-10 %, in every round); started again on their own data 0.97-1.02 ms. Issue 11
    asks what the code costs, not which server drew the better heap."""
    saved = dict(os.environ)
    for kv in env:
        key, _, value = kv.partition("=")
        os.environ[key] = value
    try:
        return start_yunying(data, repo_root=repo, api_key=api_key)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.ab", description=__doc__.splitlines()[0])
    ap.add_argument("--ref", default=BEFORE_ISSUE_11, help="the earlier commit (A)")
    ap.add_argument("--studies", type=int, default=400, help="small studies for QIDO")
    ap.add_argument("--slices", type=int, default=100, help="CT slices for frames")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--frames", type=int, default=600, help="frame requests per throughput run")
    ap.add_argument("--b-env", action="append", default=[], metavar="KEY=VALUE",
                    help="a setting for B only, e.g. YUNYING_AUDIT=false to leave issue 12's trail out")
    ap.add_argument("--cold", action="store_true",
                    help="no untimed pass before each server's timed part: what a server answers right "
                         "after sitting idle while the others were measured")
    ap.add_argument("--no-restart", action="store_true",
                    help="measure the servers in the processes that stored the data (see _start)")
    ap.add_argument("--twin", action="store_true",
                    help="a second server of this checkout (B'), measured like the others: B'/A next to B/A "
                         "shows how far two servers of the same code drift apart on this machine now")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="yunying-ab-") as tmp:
        root = Path(tmp)
        corpus, ct = build_corpus(root / "data", args.studies), build_ct(root / "data", args.slices, "A")
        queries = qido_queries(corpus, args.queries)
        tree = checkout(args.ref, root / "ref")
        servers: dict[str, YunyingServer] = {}
        folders = {f"A {args.ref}": (root / "a", tree), "B this checkout": (root / "b", REPO_ROOT)}
        if args.twin:
            folders["B' same checkout"] = (root / "b2", REPO_ROOT)
        try:
            for name, (data, repo) in folders.items():
                servers[name] = _start(data, repo, args.b_env if repo == REPO_ROOT else [])
            for srv in servers.values():
                stow(srv.dicomweb_url, [*corpus.files, *ct.files])
            if not args.no_restart:  # each server anew on the data it stored: see restart()
                for name, (data, repo) in folders.items():
                    servers[name].stop()
                    servers[name] = _start(data, repo, args.b_env if repo == REPO_ROOT else [],
                                           servers[name].api_key)
            for srv in servers.values():  # a round not counted: what storing set off (index, master
                measure(srv, ct, queries, 20, 100)  # index, audit) is done before the first one that is
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
            for r in range(args.rounds):
                for name in round_order(list(servers), r):
                    runs[name].append(measure(servers[name], ct, queries, 100, args.frames, warm=not args.cold))
                    print(f"round {r + 1} {name}: {runs[name][-1]}", file=sys.stderr, flush=True)
        finally:
            for srv in servers.values():
                srv.stop()
            subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "remove", "--force", str(tree)],
                           check=False, capture_output=True)
    names = list(runs)
    ratios = [f"{n.split()[0]}/A" for n in names[1:]]
    print(f"{'figure':<22}" + "".join(f"{n:>18}" for n in names) + "".join(f"{r:>8}" for r in ratios))
    for key, unit in (("qido_p50", "ms"), ("frame_p50", "ms"), ("fps_1", "frames/s"), ("fps_8", "frames/s"),
                      ("qido_cpu", "CPU ms"), ("frame_cpu", "CPU ms"),
                      ("qido_main_cpu", "CPU ms"), ("frame_main_cpu", "CPU ms")):
        med = [statistics.median(x[key] for x in runs[n]) for n in names]
        print(f"{key + ' (' + unit + ')':<22}" + "".join(f"{v:>18.2f}" for v in med)
              + "".join(f"{v / med[0]:>7.2f}x" for v in med[1:]))
    print(f"{args.rounds} rounds, the order rotating{', cold' if args.cold else ', each warmed first'}; {args.studies} studies, CT {args.slices} slices; "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
          + (f"; B with {' '.join(args.b_env)}" if args.b_env else "")
          + ("; B' runs the same code as B: their difference is this machine's noise" if args.twin else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
