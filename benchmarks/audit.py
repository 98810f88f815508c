"""The cost of the audit trail (issue 12): frames/s and QIDO p50 with auditing on and off, in
one run, on two servers over copies of the same data folder, measured alternately.

    python -m benchmarks.audit [--slices 100] [--studies 300] [--rounds 2]
    python -m benchmarks.audit --micro    # the middleware's own CPU per request, in-process

On a shared 2-core machine the two servers' figures move by tens of percent from round to
round; --micro measures what auditing adds to one request without the network or the server.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.data import build_corpus, build_ct
from benchmarks.net import REPO_ROOT, start_yunying
from benchmarks.qido import qido, qido_queries
from benchmarks.wado import frames


def _import(data: Path, *paths: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    subprocess.run([sys.executable, "-m", "yunying.cli", "import", "--data", str(data), *map(str, paths)],
                   cwd=REPO_ROOT, env=env, check=True, capture_output=True, timeout=900)


def _start(data: Path, audit: bool) -> Any:
    saved = os.environ.get("YUNYING_AUDIT")
    os.environ["YUNYING_AUDIT"] = "true" if audit else "false"
    try:
        return start_yunying(data)
    finally:
        if saved is None:
            os.environ.pop("YUNYING_AUDIT", None)
        else:
            os.environ["YUNYING_AUDIT"] = saved


def micro(n: int = 5000) -> dict[str, float]:
    """Microseconds the audit middleware (and its writer thread) adds per request, by action."""
    import asyncio
    import time

    import yunying.audit
    from yunying.audit.middleware import AuditMiddleware
    from yunying.auth.principal import Principal
    from yunying.auth.store import open_store

    work = Path(tempfile.mkdtemp(prefix="yy-audit-micro-"))
    store = open_store(work)
    yunying.audit.start(work, store.engine)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x" * 1000})

    async def send(message: Any) -> None:
        pass

    principal = Principal(kind="system", id="bench", roles=frozenset({"r"}))
    paths = {"frames": "/dicomweb/studies/1.2/series/1.3/instances/1.4/frames/1",
             "query": "/dicomweb/studies", "metadata": "/dicomweb/studies/1.2/metadata"}
    out: dict[str, float] = {}

    async def run() -> None:
        for name, path in paths.items():
            for audited in (False, True):
                handler = AuditMiddleware(app) if audited else app
                t0 = time.perf_counter()
                for _ in range(n):
                    scope = {"type": "http", "method": "GET", "path": path, "query_string": b"", "headers": [],
                             "client": ("127.0.0.1", 1), "state": {"principal": principal}}
                    await handler(scope, None, send)
                us = (time.perf_counter() - t0) / n * 1e6
                out[f"{name}_{'on' if audited else 'off'}_us"] = round(us, 1)
    try:
        asyncio.run(run())
        trail = yunying.audit.current()
        assert trail is not None, "started above"
        trail.sync()  # the writer's share is in the figures
    finally:
        yunying.audit.stop()
        shutil.rmtree(work, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--slices", type=int, default=100)
    p.add_argument("--studies", type=int, default=300)
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--micro", action="store_true", help="only the in-process cost per request")
    args = p.parse_args(argv)
    if args.micro:
        print(json.dumps(micro(), indent=1))
        return 0
    work = Path(tempfile.mkdtemp(prefix="yy-audit-bench-"))
    try:
        ct = build_ct(work / "ct", slices=args.slices)
        corpus = build_corpus(work / "corpus", studies=args.studies)
        _import(work / "off", ct.directory, corpus.directory)
        shutil.copytree(work / "off", work / "on")
        queries = qido_queries(corpus, args.queries)
        servers = {"off": _start(work / "off", False), "on": _start(work / "on", True)}
        out: dict[str, dict[str, list[float]]] = {k: {"fps_1": [], "fps_8": [], "frame_p50_ms": [],
                                                       "qido_p50_ms": []} for k in servers}
        try:
            for _ in range(args.rounds):
                for name, srv in servers.items():
                    f = frames(srv.dicomweb_url, ct, latency_requests=100, throughput_requests=800)
                    q = qido(srv.dicomweb_url, queries)
                    out[name]["fps_1"].append(f["fps_1"])
                    out[name]["fps_8"].append(f["fps_8"])
                    out[name]["frame_p50_ms"].append(f["p50_ms"])
                    out[name]["qido_p50_ms"].append(q["p50_ms"])
        finally:
            for srv in servers.values():
                srv.stop()
        summary = {name: {k: round(statistics.median(v), 2) for k, v in m.items()} for name, m in out.items()}
        summary["on_vs_off_percent"] = {k: round(100 * (summary["on"][k] / summary["off"][k] - 1), 1)
                                        for k in summary["off"]}
        summary["raw"] = out  # type: ignore[assignment]  # the raw figures beside the medians
        print(json.dumps(summary, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
