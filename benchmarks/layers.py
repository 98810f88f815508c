"""`python -m benchmarks.layers`: what each HTTP middleware layer costs per request, in process.

Issue 11's target (QIDO p50 and frames/s at most 10% worse than before identity and audit) is
measured end to end by `benchmarks.ab`, whose figures swing 20-60% on a shared machine. This
takes the network and the other processes out: the app is called as ASGI in one event loop,
N times per request kind, once with the whole stack and once with each layer left out, and
prints the lowest batch's microseconds per request (batches alternate between the variants)
and each layer's share. CPU time of the event loop's thread (`--clock process`: all threads), not wall time, so other processes on the machine count only
through caches and frequency; the lowest of many short batches filters their bursts out.
"""
from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from starlette.middleware import Middleware

from benchmarks import data

KEY = "yy_layers_benchmark_key_0123456789abcdef"


def _name(m: Any) -> str:
    """A middleware's class name (starlette types the class as a factory protocol)."""
    return str(getattr(m.cls, "__name__", m.cls))


def _scope(path: str, query: str, accept: str, coding: bytes = b"") -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
            "query_string": query.encode(), "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8080),
            "headers": [(b"host", b"archive"), (b"accept", accept.encode()),
                        (b"authorization", f"Bearer {KEY}".encode())]
            + ([(b"accept-encoding", coding)] if coding else [])}


class _Principal:
    """Stands for the whole stack in the "(no layers)" variant: the handlers need a principal."""

    def __init__(self, app: Any, principal: Any) -> None:
        self.app, self.principal = app, principal

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope.setdefault("state", {})["principal"] = self.principal
        await self.app(scope, receive, send)


async def _call(app: Any, scope: dict[str, Any]) -> int:
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(dict(scope, headers=list(scope["headers"])), receive, send)
    return status


async def _warm(app: Any, scope: dict[str, Any]) -> None:
    for _ in range(50):  # warm caches (identity, prepared statements, rendered)
        status = await _call(app, scope)
    if status != 200:
        raise SystemExit(f"{scope['path']} answered {status}")


# the event loop's thread only (the default): what the layers cost is spent there, and the
# frame's read in a worker thread (~250 us, the same in every variant) only added its noise
CLOCKS = {"thread": time.thread_time, "process": time.process_time}
_clock = time.thread_time


async def _batch_us(app: Any, scope: dict[str, Any], n: int) -> float:
    t0 = _clock()
    for _ in range(n):
        await _call(app, scope)
    return (_clock() - t0) / n * 1e6


def _interleaved(apps: dict[str, Any], scope: dict[str, Any], n: int, rounds: int) -> dict[str, float]:
    """Each variant's lowest batch figure, batches alternating between variants: on a shared
    machine another process's burst only ever adds, and falls on one batch of one variant."""
    async def run() -> dict[str, float]:
        for app in apps.values():
            await _warm(app, scope)
        samples: dict[str, list[float]] = {name: [] for name in apps}
        for _ in range(rounds):
            for name, app in apps.items():
                samples[name].append(await _batch_us(app, scope, n))
        return {name: min(values) for name, values in samples.items()}
    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=50, help="requests per batch")
    parser.add_argument("--rounds", type=int, default=15, help="batches per variant, alternating")
    parser.add_argument("--audit", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="thread",
                        help="CPU of the event loop's thread, or of the whole process (worker threads too)")
    args = parser.parse_args()
    global _clock
    _clock = CLOCKS[args.clock]

    import yunying.audit
    from dicomweb.app import build_app
    from index.model import Origin
    from yunying.archive import Archive
    from yunying.audit.patients import study_patients
    from yunying.settings import Settings

    cache = Path(tempfile.gettempdir()) / "yunying-bench-data"
    ct = data.build_ct(cache, slices=20, tag="L")
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data=Path(tmp) / "data", api_key=KEY)
        archive = Archive(settings.data)
        try:
            for f in ct.files:
                archive.store(f.read_bytes(), Origin("import", "benchmark"))
            archive.flush()
            frame = (f"/dicomweb/studies/{ct.study_uid}/series/{ct.series_uid}/instances/{ct.sop_uids[3]}/frames/1",
                     "", 'multipart/related; type="application/octet-stream"')
            kinds = {  # as benchmarks.wado asks (no Accept-Encoding), and a frame as a browser asks
                "QIDO studies": _scope("/dicomweb/studies", f"StudyInstanceUID={ct.study_uid}", "application/dicom+json"),
                "frame": _scope(*frame),
                "frame, browser": _scope(*frame, coding=b"gzip, deflate, br, zstd"),
            }
            full = build_app(archive, settings)
            if args.audit:
                yunying.audit.start(settings.data, full.state.auth.store.engine, study_patients(archive))
            names = [_name(m) for m in full.user_middleware]
            apps: dict[str, Any] = {"(whole stack)": full}
            principal = Middleware(_Principal, principal=full.state.auth.identifier.identify(KEY))
            bare = build_app(archive, settings, auth=full.state.auth)  # the handlers, as before issue 11
            bare.user_middleware = [principal]
            apps["(no layers)"] = bare
            for name in names:
                app = build_app(archive, settings, auth=full.state.auth)
                # without the authorization point the handlers have no principal and refuse (fail
                # closed): it is replaced by one that hands them the key's, so what is left out
                # is the identification and the decision
                app.user_middleware = [principal if _name(m) == name == "AuthMiddleware" else m
                                       for m in app.user_middleware if _name(m) != name or name == "AuthMiddleware"]
                apps[name] = app
            print(f"{'request':<14} {'layer left out':<18} {'us/request':>11} {'layer us':>9}")
            for label, scope in kinds.items():
                figures = _interleaved(apps, scope, args.n, args.rounds)
                base = figures["(whole stack)"]
                print(f"{label:<14} {'(whole stack)':<18} {base:11.1f}")
                for name, us in figures.items():  # "(no layers)": layer us is what all of them cost
                    if name != "(whole stack)":
                        print(f"{'':<14} {name:<18} {us:11.1f} {base - us:9.1f}")
        finally:
            yunying.audit.stop()
            archive.close()


if __name__ == "__main__":
    main()
