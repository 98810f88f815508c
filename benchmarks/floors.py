"""`python -m benchmarks.floors`: what the toolkits alone cost, before the archive does anything.

The ingest targets (STOW-RS >= 1.5x Orthanc, C-STORE >= 1.3x) are set against a C++ server on
two cores that the client shares. This measures, on the same CT files and clients as the main
benchmark, the ceilings our stack puts on them:

- C-STORE: a pynetdicom SCP (the same network tuning as `yunying serve`: TCP_NODELAY, our DUL
  read and wake-up) whose handler takes the data set bytes and answers Success, storing
  nothing; `storescu` over 1 and 4 associations.
- STOW-RS: uvicorn + Starlette reading each request body and answering 200, storing nothing.
- The archive's own CPU per CT instance, step by step, in this process (no network).

Compare the ceilings with the targets in the main benchmark's output: a target above its
ceiling cannot be met by any archive built on these parts on this machine.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import data, stow
from benchmarks.dimse import Peer, c_store
from benchmarks.net import REPO_ROOT, free_port


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def store_ceiling(files: list[Path], associations: int) -> dict[str, float]:
    """storescu into a pynetdicom SCP that stores nothing."""
    import pynetdicom
    from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt

    from dimse.associations import wake_on_data
    from yunying.cli import quiet_pydicom

    quiet_pydicom()
    ae = AE(ae_title="FLOOR")
    ae.maximum_pdu_size = 262144
    for cx in AllStoragePresentationContexts:
        ae.add_supported_context(str(cx.abstract_syntax), ALL_TRANSFER_SYNTAXES)
    port = free_port()
    handlers: list[Any] = [(evt.EVT_C_STORE, lambda e: (e.encoded_dataset(include_meta=False), 0)[1]),
                (evt.EVT_CONN_OPEN, lambda e: wake_on_data(e.assoc))]
    assert pynetdicom  # the toolkit measured
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=handlers)
    assert server is not None
    try:
        c0 = _cpu()
        r = c_store(Peer("127.0.0.1", port, "FLOOR"), files, associations=associations)
        cpu_ms = (_cpu() - c0) * 1000 / len(files)
    finally:
        server.shutdown()
    return {"instances_per_s": r["instances_per_s"], "server_cpu_ms": cpu_ms}


def stow_ceiling(files: list[Path], clients: int) -> dict[str, float]:
    """STOW-RS bodies into uvicorn + Starlette that only read them (client in this process)."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def sink(request: Request) -> Response:
        async for _chunk in request.stream():
            pass
        return Response(b"{}", media_type="application/dicom+json")

    app = Starlette(routes=[Route("/dicomweb/studies", sink, methods=["POST"])])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        stow.stow(f"http://127.0.0.1:{port}/dicomweb", files[:40], clients=clients)  # warm up
        c0 = _cpu()
        r = stow.stow(f"http://127.0.0.1:{port}/dicomweb", files, clients=clients)
        cpu_ms = (_cpu() - c0) * 1000 / len(files)
    finally:
        server.should_exit = True
        thread.join(10)
    return {"instances_per_s": r["instances_per_s"], "client_and_server_cpu_ms": cpu_ms}


def ingest_steps(files: list[Path], scratch: Path) -> dict[str, float]:
    """CPU ms per CT instance of each step of the archive's own write (write_instance), in this
    process: its calls are wrapped with timers, nothing is re-implemented here."""
    from index.model import Origin
    from storage import Storage
    from yunying import writing
    from yunying.cli import quiet_pydicom

    quiet_pydicom()
    raw = [f.read_bytes() for f in files]
    steps: dict[str, list[float]] = {}

    def timed(name: Callable[..., str], fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            t0 = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                steps.setdefault(name(*args), []).append((time.process_time() - t0) * 1000)
        return run

    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        store = Storage(Path(tmp))
        store.prepare = timed(lambda *_: "claim folder", store.prepare)  # type: ignore[method-assign]  # timing each step
        store.put_frames = timed(lambda *_: "pixels: LZ4 + write", store.put_frames)  # type: ignore[method-assign]  # timing each step
        store.put_blob = timed(lambda _key, name, *_: f"{name} write", store.put_blob)  # type: ignore[method-assign]  # timing each step
        store.sync = timed(lambda *_: "syncfs", store.sync)  # type: ignore[method-assign]  # timing each step
        parse, to_json = writing.parse_instance, writing.instance_json
        writing.parse_instance = timed(lambda *_: "parse + SHA-256", parse)
        writing.instance_json = timed(lambda *_: "DICOM JSON", to_json)
        try:
            for body in raw:
                writing.write_instance(store, body, Origin("import", ""))
        finally:
            writing.parse_instance, writing.instance_json = parse, to_json
    return {k: statistics.median(v) for k, v in steps.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.floors", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "out")
    p.add_argument("--slices", type=int, default=300)
    args = p.parse_args(argv)
    ct = data.build_ct(args.out / "data", args.slices, "B")
    files = list(ct.files)
    rows = []
    for n in (1, 4):
        r = store_ceiling(files, n)
        rows.append((f"C-STORE into a no-op pynetdicom SCP, {n} assoc.", f"{r['instances_per_s']:,.0f} inst/s",
                     f"server CPU {r['server_cpu_ms']:.2f} ms/inst"))
    r = stow_ceiling(files, 4)
    rows.append(("STOW-RS into a no-op uvicorn/Starlette, 4 clients", f"{r['instances_per_s']:,.0f} inst/s",
                 f"client+server CPU {r['client_and_server_cpu_ms']:.2f} ms/inst"))
    for name, ms in ingest_steps(files, args.out).items():
        rows.append((f"archive write step: {name}", f"{ms:.3f} ms CPU", "median per CT instance"))
    width = max(len(a) for a, _, _ in rows)
    for a, b, c in rows:
        print(f"{a:<{width}}  {b:>16}  {c}")
    print(f"\n{len(files)} CT instances 512x512x16 bit; {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
