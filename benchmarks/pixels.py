"""The pixel path a viewer uses (issue 4): rendered frames, thumbnails, cine fetches, time to
first image and server-side MPR, over the 300-slice CT series.

Latency loops are one sequential Python client (one request in flight, so the GIL does not
matter); the cine throughput runs in a separate curl process (C, keep-alive) so the client
leaves the two cores to the server, as in `wado.py`.
"""

from __future__ import annotations

import json
import random
import subprocess
import time
from typing import Any

from benchmarks.client import BenchError, Http, Response, percentile
from benchmarks.data import CtStudy
from benchmarks.net import auth_headers
from benchmarks.wado import CURL, FRAME_ACCEPT, FRAME_ACCEPT_FALLBACK, frame_path

JPEG = "image/jpeg"
# Both servers are asked for the same picture: Orthanc 1.10 ignores the header's window (it
# stretches min..max) and `quality` unless told; with these both answer byte-identical JPEGs.
RENDER_PARAMS = "window=40,400,linear&quality=90"


class Unsupported(BenchError):
    """The server does not have the feature (the message is the n/a reason)."""


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000


def _is_jpeg(r: Response) -> bool:
    return (r.status == 200 and r.headers.get("content-type", "").startswith(JPEG)
            and r.body[:2] == b"\xff\xd8")


def _series_path(ct: CtStudy) -> str:
    return f"/studies/{ct.study_uid}/series/{ct.series_uid}"


def _probe(h: Http, path: str, what: str) -> Response:
    """GET `path` as a JPEG; an error answer means the server lacks the feature (n/a)."""
    r = h.get(path, JPEG)
    if not _is_jpeg(r):
        raise Unsupported(f"no {what}: HTTP {r.status}")
    return r


# --- rendered frames ------------------------------------------------------------------------

def rendered(base_url: str, ct: CtStudy, requests: int) -> dict[str, Any]:
    """p50 of `…/instances/{sop}/frames/1/rendered` (Accept image/jpeg), each slice once.

    Distinct slices in a shuffled order, so a server-side cache of rendered answers does not
    help: this is the cost of decoding, windowing and JPEG-encoding one frame. The window and
    quality are explicit (RENDER_PARAMS) so both servers do the same work.
    """
    h = Http(base_url)
    order = list(range(len(ct.sop_uids)))
    random.Random(17).shuffle(order)
    order = order[:max(1, min(requests, len(order)))]
    lat: list[float] = []
    size = 0
    try:
        for k, i in enumerate(order):
            path = f"{frame_path(ct, i)}/rendered?{RENDER_PARAMS}"
            t0 = time.perf_counter()
            r = h.get(path, JPEG)
            ms = _ms(t0)
            if not _is_jpeg(r):
                if k == 0:
                    raise Unsupported(f"no frame /rendered: HTTP {r.status}")
                raise BenchError(f"rendered frame answered HTTP {r.status} "
                                 f"{r.headers.get('content-type', '')}")
            lat.append(ms)
            size += len(r.body)
    finally:
        h.close()
    return {"requests": len(lat), "p50_ms": percentile(lat, 50), "p95_ms": percentile(lat, 95),
            "mean_jpeg_bytes": size / len(lat), "params": RENDER_PARAMS,
            "note": "each slice once (uncached)"}


# --- thumbnails -----------------------------------------------------------------------------

def thumbnails(base_url: str, ct: CtStudy, repeats: int) -> dict[str, Any]:
    """Series (the headline), instance and study thumbnails: the first request, then the p50 of
    `repeats` repeated requests once the server has it cached."""
    h = Http(base_url)
    series = _series_path(ct)
    mid = ct.sop_uids[len(ct.sop_uids) // 2]
    levels = {"series": f"{series}/thumbnail",
              "instance": f"{series}/instances/{mid}/thumbnail",
              "study": f"/studies/{ct.study_uid}/thumbnail"}
    out: dict[str, Any] = {"repeats": repeats}
    try:
        for level, path in levels.items():
            t0 = time.perf_counter()
            first = _probe(h, path, "/thumbnail") if level == "series" else h.get(path, JPEG)
            first_ms = _ms(t0)
            if not _is_jpeg(first):
                out[level] = {"error": f"HTTP {first.status}"}
                continue
            lat = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                r = h.get(path, JPEG)
                lat.append(_ms(t0))
                if not _is_jpeg(r):
                    raise BenchError(f"{level} thumbnail answered HTTP {r.status}")
            out[level] = {"first_ms": first_ms, "p50_ms": percentile(lat, 50),
                          "p95_ms": percentile(lat, 95), "bytes": len(first.body)}
    finally:
        h.close()
    out["p50_ms"] = out["series"]["p50_ms"]
    return out


# --- cine -----------------------------------------------------------------------------------

def frame_accept(base_url: str, ct: CtStudy) -> tuple[str, str | None]:
    """The frame Accept header the server takes (`transfer-syntax=*` or, if refused, none)."""
    h = Http(base_url)
    try:
        r = h.get(frame_path(ct, 0), FRAME_ACCEPT)
        if r.status == 200:
            return FRAME_ACCEPT, None
        if h.get(frame_path(ct, 0), FRAME_ACCEPT_FALLBACK).status == 200:
            return FRAME_ACCEPT_FALLBACK, f"transfer-syntax=* refused (HTTP {r.status})"
        raise BenchError(f"frame request answered HTTP {r.status}")
    finally:
        h.close()


def cine(base_url: str, ct: CtStudy, passes: int, parallel: int = 6) -> dict[str, Any]:
    """The whole series fetched frame by frame in instance order, as a cine viewer does:
    sequentially (one connection) and with `parallel` requests in flight (as a browser does).
    frames/s = frames / wall-clock of the pass; the median pass is reported."""
    accept, note = frame_accept(base_url, ct)
    out: dict[str, Any] = {"frames": len(ct.sop_uids), "passes": passes, "accept": accept,
                           "note": note, "client": "curl" if CURL else "python threads"}
    for clients in (1, parallel):
        rates = [_cine_pass(base_url, ct, accept, clients) for _ in range(passes)]
        out[f"fps_{clients}"] = sorted(rates)[len(rates) // 2]
        out[f"fps_{clients}_passes"] = rates
    out["fps_seq"], out["fps_par"] = out["fps_1"], out[f"fps_{parallel}"]
    return out


def _cine_pass(base_url: str, ct: CtStudy, accept: str, clients: int) -> float:
    n = len(ct.sop_uids)
    if CURL is None:
        return _cine_pass_threads(base_url, ct, accept, clients)
    config = "".join(f'url = "{base_url}{frame_path(ct, i)}"\noutput = "/dev/null"\n'
                     for i in range(n))
    auth = "".join(f'header = "{k}: {v}"\n' for k, v in auth_headers(base_url).items())
    config = auth + config  # in the config on stdin: a key never shows in the process list
    cmd = [CURL, "--silent", "--max-time", "60", "--header", f"Accept: {accept}",
           "--write-out", "%{http_code}\\n", "--config", "-"]
    if clients > 1:
        cmd[1:1] = ["--parallel", "--parallel-max", str(clients)]
    t0 = time.perf_counter()
    try:
        done = subprocess.run(cmd, input=config.encode(), capture_output=True, timeout=300,
                              check=False)
    except subprocess.TimeoutExpired:
        raise BenchError(f"cine pass of {n} frames took over 300 s") from None
    elapsed = time.perf_counter() - t0
    codes = done.stdout.decode().split()
    if codes.count("200") != n:
        bad = next((c for c in codes if c != "200"), "none")
        raise BenchError(f"{n - codes.count('200')} of {n} cine frames failed, e.g. HTTP {bad}")
    return n / elapsed


def _cine_pass_threads(base_url: str, ct: CtStudy, accept: str, clients: int) -> float:
    from concurrent.futures import ThreadPoolExecutor

    from benchmarks.client import per_thread

    conn = per_thread(base_url)

    def one(i: int) -> int:
        return conn().get(frame_path(ct, i), accept).status

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        codes = list(pool.map(one, range(len(ct.sop_uids))))
    elapsed = time.perf_counter() - t0
    for h in conn.made:  # type: ignore[attr-defined]  # the clients connect() made (benchmarks.client)
        h.close()
    if any(c != 200 for c in codes):
        raise BenchError(f"cine frame answered HTTP {next(c for c in codes if c != 200)}")
    return len(codes) / elapsed


# --- time to first image --------------------------------------------------------------------

def first_image(base_url: str, ct: CtStudy, runs: int) -> dict[str, Any]:
    """What a viewer does on opening a study, end to end, on a new connection each run:
    QIDO `/studies/{s}/series` -> the CT series' `/metadata` (parsed; the instance with the
    lowest InstanceNumber is the first image) -> its frame 1 (the cine Accept)."""
    accept, note = frame_accept(base_url, ct)
    totals: list[float] = []
    steps: dict[str, list[float]] = {"qido_ms": [], "metadata_ms": [], "frame_ms": []}
    for _ in range(runs):
        h = Http(base_url)
        try:
            t0 = time.perf_counter()
            r = h.get(f"/studies/{ct.study_uid}/series")
            if r.status != 200:
                raise BenchError(f"QIDO series answered HTTP {r.status}")
            series = [s["0020000E"]["Value"][0] for s in json.loads(r.body)
                      if s.get("00080060", {}).get("Value") == ["CT"]]
            if ct.series_uid not in series:
                raise BenchError("QIDO series did not list the CT series")
            t1 = time.perf_counter()
            r = h.get(f"{_series_path(ct)}/metadata")
            if r.status != 200:
                raise BenchError(f"series metadata answered HTTP {r.status}")
            first = min(json.loads(r.body),
                        key=lambda d: int((d.get("00200013") or {}).get("Value", [1 << 30])[0]))
            sop = first["00080018"]["Value"][0]
            t2 = time.perf_counter()
            r = h.get(f"{_series_path(ct)}/instances/{sop}/frames/1", accept)
            if r.status != 200:
                raise BenchError(f"first frame answered HTTP {r.status}")
            t3 = time.perf_counter()
        finally:
            h.close()
        if sop != ct.sop_uids[0]:
            raise BenchError("the lowest InstanceNumber is not the first slice")
        totals.append((t3 - t0) * 1000)
        steps["qido_ms"].append((t1 - t0) * 1000)
        steps["metadata_ms"].append((t2 - t1) * 1000)
        steps["frame_ms"].append((t3 - t2) * 1000)
    return {"runs": runs, "p50_ms": percentile(totals, 50), "first_ms": totals[0],
            "steps_p50_ms": {k: percentile(v, 50) for k, v in steps.items()},
            "accept": accept, "note": note}


# --- MPR ------------------------------------------------------------------------------------

def mpr(base_url: str, ct: CtStudy, requests: int) -> dict[str, Any]:
    """Coronal MPR slices of the series: the first request (cold: nothing of the volume in the
    server's memory) separately, then the p50 of `requests` at distinct positions (so a cache
    of rendered answers does not help); a few sagittal slices for the JSON."""
    h = Http(base_url)
    base = f"{_series_path(ct)}/reformat?viewport=512,512"
    # The volume is 360 mm across (512 x 0.703125) and 374 mm long (300 x 1.25): stay inside.
    positions = [round(-150 + 300 * k / max(1, requests - 1), 1) for k in range(requests)]
    random.Random(3).shuffle(positions)
    try:
        t0 = time.perf_counter()
        _probe(h, f"{base}&orientation=coronal&position=0", "reformat")
        cold = _ms(t0)
        out: dict[str, Any] = {"cold_ms": cold, "requests": requests}
        for orientation, pos in (("coronal", positions), ("sagittal", positions[:max(3, requests // 3)])):
            lat = []
            for p in pos:
                t0 = time.perf_counter()
                r = h.get(f"{base}&orientation={orientation}&position={p}", JPEG)
                lat.append(_ms(t0))
                if not _is_jpeg(r):
                    raise BenchError(f"{orientation} MPR at {p} mm answered HTTP {r.status}")
            out[orientation] = {"p50_ms": percentile(lat, 50), "p95_ms": percentile(lat, 95),
                                "n": len(lat)}
    finally:
        h.close()
    out["p50_ms"] = out["coronal"]["p50_ms"]
    return out
