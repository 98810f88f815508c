"""The first image over an emulated "4G poor" link (issue 9), as a phone's browser gets it.

Run from the benchmark (`shaped_first_image`): the client is this module run inside the link's
network namespace (`python -m benchmarks.shaped`), on a new connection each run, sending what
Chromium sends (`Accept-Encoding: gzip, deflate, br, zstd`) and decoding what comes back:
QIDO `/studies/{s}/series` -> the CT series' `/metadata` (parsed; the lowest InstanceNumber is
the first image) -> its `frames/1` (the cine Accept) or, for the rendered figure, its
`frames/1/rendered` JPEG. Bytes on the wire are the client interface's IP bytes (headers,
retransmissions and all), both directions.

`replay_floor` measures what is left to a server: the same sequence against a stand-in that
answers instantly with the bytes (and codings) the archive sent, so only the link and TCP remain.
"""
from __future__ import annotations

import argparse
import gzip
import json
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from benchmarks.client import BenchError, Http, Response, percentile
from benchmarks.data import CtStudy
from benchmarks.link import POOR_4G, LinkProfile, ShapedLink, unavailable
from benchmarks.pixels import JPEG, RENDER_PARAMS, frame_accept

BROWSER_ENCODINGS = "gzip, deflate, br, zstd"  # Chromium 123+


def _decode(r: Response) -> bytes:
    coding = r.headers.get("content-encoding", "identity").lower()
    if coding == "gzip":
        return gzip.decompress(r.body)
    if coding == "deflate":
        return zlib.decompress(r.body)
    if coding == "br":
        import brotli
        return bytes(brotli.decompress(r.body))
    if coding == "zstd":
        import zstandard
        return zstandard.ZstdDecompressor().decompressobj().decompress(r.body)
    return r.body


def _wire_bytes(dev: str) -> tuple[int, int]:
    """(received, sent) IP bytes of the device, from this namespace's /proc/net/dev."""
    with open("/proc/net/dev") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name.strip() == dev:
                fields = rest.split()
                return int(fields[0]), int(fields[8])
    raise BenchError(f"no device {dev}")


def one_run(base_url: str, headers: dict[str, str], study: str, series: str, final: str,
            accept: str, dev: str) -> dict[str, Any]:
    """QIDO -> metadata -> frame (or rendered) on a new connection: ms per step, bytes, codings."""
    h = Http(base_url)
    rx0, tx0 = _wire_bytes(dev)
    codings = []

    def get(path: str, acc: str) -> bytes:
        r = h.request("GET", path, headers={**headers, "Accept": acc, "Accept-Encoding": BROWSER_ENCODINGS})
        if r.status != 200:
            raise BenchError(f"{path.split('?')[0].rsplit('/', 1)[-1]} answered HTTP {r.status}")
        codings.append(r.headers.get("content-encoding", "identity"))
        return _decode(r)

    try:
        t0 = time.perf_counter()
        found = json.loads(get(f"/studies/{study}/series", "application/dicom+json"))
        if series not in [s["0020000E"]["Value"][0] for s in found]:
            raise BenchError("QIDO series did not list the CT series")
        t1 = time.perf_counter()
        docs = json.loads(get(f"/studies/{study}/series/{series}/metadata", "application/dicom+json"))
        first = min(docs, key=lambda d: int((d.get("00200013") or {}).get("Value", [1 << 30])[0]))
        sop = first["00080018"]["Value"][0]
        t2 = time.perf_counter()
        path = f"/studies/{study}/series/{series}/instances/{sop}/frames/1"
        body = get(path + (f"/rendered?{RENDER_PARAMS}" if final == "rendered" else ""), accept)
        t3 = time.perf_counter()
    finally:
        h.close()
    rx1, tx1 = _wire_bytes(dev)
    return {"ms": (t3 - t0) * 1000, "qido_ms": (t1 - t0) * 1000, "metadata_ms": (t2 - t1) * 1000,
            "image_ms": (t3 - t2) * 1000, "down_bytes": rx1 - rx0, "up_bytes": tx1 - tx0,
            "image_bytes": len(body), "codings": codings, "sop": sop}


def shaped_first_image(name: str, server_url: str, headers: dict[str, str], ct: CtStudy, runs: int,
                       profile: LinkProfile = POOR_4G) -> dict[str, Any]:
    """p50 time and bytes to the first image (frame and rendered) over the emulated link;
    `headers` (the server's API key) are sent with every request."""
    reason = unavailable()
    if reason:
        raise BenchError(f"no emulated link: {reason}")
    accept, note = frame_accept(server_url, ct)
    scheme_host, _, prefix = server_url.partition("//")[2].partition("/")
    port = int(scheme_host.rsplit(":", 1)[1])
    out: dict[str, Any] = {"profile": vars(profile), "frame_accept": accept, "note": note}
    with ShapedLink(profile) as link:
        url = f"http://{link.server_ip}:{link.relay(port)}/{prefix}"
        for final, acc in (("frame", accept), ("rendered", JPEG)):
            cmd = [sys.executable, "-m", "benchmarks.shaped", url, ct.study_uid, ct.series_uid, final, acc,
                   link.client_dev, str(runs)]
            # the API key travels on stdin, not on the command line (where ps shows it)
            done = link.run(cmd, timeout=60 + 30 * runs, stdin=json.dumps(headers))
            if done.returncode != 0:
                raise BenchError(f"shaped client ({name}, {final}) failed: {done.stderr.strip()[-300:]}")
            results = json.loads(done.stdout)
            if any(r["sop"] != ct.sop_uids[0] for r in results):
                raise BenchError("the lowest InstanceNumber is not the first slice")
            out[final] = {
                "p50_ms": percentile([r["ms"] for r in results], 50),
                "down_bytes_p50": percentile([r["down_bytes"] for r in results], 50),
                "up_bytes_p50": percentile([r["up_bytes"] for r in results], 50),
                "steps_p50_ms": {k: percentile([r[k] for r in results], 50)
                                 for k in ("qido_ms", "metadata_ms", "image_ms")},
                "codings": results[0]["codings"], "runs": results,
            }
    return out


class _Replay(BaseHTTPRequestHandler):
    """Answers each step of the sequence with a recorded (Content-Type, Content-Encoding, body)."""

    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 20  # headers and body in one write, as a server that buffers its answer
    answers: ClassVar[dict[str, tuple[str, str | None, bytes]]] = {}

    def do_GET(self) -> None:
        step = self.path.split("?")[0].rsplit("/", 1)[-1]  # series | metadata | 1 | rendered
        ctype, coding, body = self.answers[step]
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        if coding:
            self.send_header("Content-Encoding", coding)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def replay_floor(server_url: str, headers: dict[str, str], ct: CtStudy, runs: int,
                 profile: LinkProfile = POOR_4G) -> dict[str, Any]:
    """shaped_first_image against an instant stand-in replaying this server's own answers
    (recorded once on loopback with the browser's Accept-Encoding): the link's floor for them."""
    accept, _ = frame_accept(server_url, ct)
    series = f"/studies/{ct.study_uid}/series/{ct.series_uid}"
    first = f"{series}/instances/{ct.sop_uids[0]}/frames/1"
    h = Http(server_url)
    answers = {}
    try:
        for step, path, acc in (("series", f"/studies/{ct.study_uid}/series", "application/dicom+json"),
                                ("metadata", f"{series}/metadata", "application/dicom+json"),
                                ("1", first, accept), ("rendered", f"{first}/rendered?{RENDER_PARAMS}", JPEG)):
            r = h.request("GET", path, headers={**headers, "Accept": acc, "Accept-Encoding": BROWSER_ENCODINGS})
            if r.status != 200:
                raise BenchError(f"recording {step} answered HTTP {r.status}")
            answers[step] = (r.headers.get("content-type", ""), r.headers.get("content-encoding"), r.body)
    finally:
        h.close()
    handler = type("Replay", (_Replay,), {"answers": answers})
    stand_in = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=stand_in.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{stand_in.server_address[1]}/{server_url.partition('//')[2].partition('/')[2]}"
        return shaped_first_image("replay", url, {}, ct, runs, profile)
    finally:
        stand_in.shutdown()
        stand_in.server_close()


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description="the shaped-link client (run inside the link's namespace)")
    for arg in ("url", "study", "series", "final", "accept", "dev"):
        p.add_argument(arg)
    p.add_argument("runs", type=int)
    a = p.parse_args(argv)
    headers = json.loads(sys.stdin.read() or "{}")  # the server's Authorization header
    results = [one_run(a.url, headers, a.study, a.series, a.final, a.accept, a.dev) for _ in range(a.runs)]
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1:])
