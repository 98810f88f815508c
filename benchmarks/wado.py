"""WADO-RS: series metadata time and frame latency / throughput over the CT series."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import threading
import time
from typing import Any

from benchmarks.client import TIMEOUT_S, BenchError, Http, Response, percentile
from benchmarks.data import CtStudy
from benchmarks.net import auth_headers

FRAME_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
FRAME_ACCEPT_FALLBACK = 'multipart/related; type="application/octet-stream"'
CURL = shutil.which("curl")


def series_metadata(base_url: str, ct: CtStudy, runs: int = 5) -> dict[str, Any]:
    """GET the CT series /metadata `runs` times; p50 and the first (cold-ish) time in ms."""
    h = Http(base_url)
    path = f"/studies/{ct.study_uid}/series/{ct.series_uid}/metadata"
    times: list[float] = []
    for _ in range(runs):
        t0 = time.perf_counter()
        r = h.get(path)
        times.append((time.perf_counter() - t0) * 1000)
        if r.status != 200:
            raise BenchError(f"HTTP {r.status} for series metadata")
        n = len(json.loads(r.body))
        if n != len(ct.files):
            raise BenchError(f"metadata lists {n} instances, expected {len(ct.files)}")
    h.close()
    return {"runs": runs, "p50_ms": percentile(times, 50), "first_ms": times[0],
            "bytes": len(r.body)}


SERIES_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def series_retrieve(base_url: str, ct: CtStudy, runs: int = 3) -> dict[str, Any]:
    """GET the whole CT series (multipart/related of Part 10 instances, as stored) `runs` times
    with curl (C: the client leaves the CPU to the server); MB/s of the answer, median run."""
    if CURL is None:
        raise BenchError("curl not installed")
    url = f"{base_url}/studies/{ct.study_uid}/series/{ct.series_uid}"
    rates, sizes = [], []
    # the server's key goes in the config read from stdin (not on the command line, where ps shows it)
    config = "".join(f'header = "{k}: {v}"\n' for k, v in auth_headers(base_url).items())
    for _ in range(runs):
        done = subprocess.run([CURL, "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{time_total}",
                               "-H", f"Accept: {SERIES_ACCEPT}", "--config", "-", url], input=config,
                              capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
        code, size, seconds = done.stdout.split()
        if code != "200":
            raise BenchError(f"series retrieve answered HTTP {code}")
        if int(size) < ct.total_bytes * 0.9:
            raise BenchError(f"series retrieve sent {int(size)} bytes for {ct.total_bytes} stored")
        rates.append(int(size) / 1e6 / float(seconds))
        sizes.append(int(size))
    return {"runs": runs, "mbps": sorted(rates)[len(rates) // 2], "all_mbps": rates, "bytes": sizes[0],
            "accept": SERIES_ACCEPT}


def frame_path(ct: CtStudy, i: int) -> str:
    return (f"/studies/{ct.study_uid}/series/{ct.series_uid}/instances/"
            f"{ct.sop_uids[i % len(ct.sop_uids)]}/frames/1")


def _frame_ok(r: Response) -> bool:
    return r.status == 200 and r.headers.get("content-type", "").startswith("multipart/related")


def frames(base_url: str, ct: CtStudy, latency_requests: int = 150, duration_s: float = 5.0,
           max_requests: int = 20000, throughput_requests: int = 1200) -> dict[str, Any]:
    """Single-client p50 latency, then frames/s with 1 and 8 clients.

    Throughput uses curl --parallel (C, keep-alive, one connection per client) when present:
    on two cores a Python client eats the CPU the server needs. Otherwise Python threads run
    for `duration_s`.
    """
    h = Http(base_url)
    accept, note = FRAME_ACCEPT, None
    first = h.get(frame_path(ct, 0), accept)
    if not _frame_ok(first):
        fallback = h.get(frame_path(ct, 0), FRAME_ACCEPT_FALLBACK)
        if not _frame_ok(fallback):
            raise BenchError(f"frame request answered HTTP {first.status}")
        accept, note = FRAME_ACCEPT_FALLBACK, f"transfer-syntax=* refused (HTTP {first.status})"
    frame_bytes = len(first.body)
    rng = random.Random(5)
    lat: list[float] = []
    for _ in range(latency_requests):
        p = frame_path(ct, rng.randrange(len(ct.sop_uids)))
        t0 = time.perf_counter()
        r = h.get(p, accept)
        lat.append((time.perf_counter() - t0) * 1000)
        if not _frame_ok(r):
            raise BenchError(f"frame request answered HTTP {r.status}")
    h.close()
    result: dict[str, Any] = {"p50_ms": percentile(lat, 50), "p95_ms": percentile(lat, 95),
                                 "response_bytes": frame_bytes, "note": note}
    result["throughput_client"] = "curl --parallel" if CURL else "python threads"
    for clients in (1, 8):
        if CURL:
            fps = _frame_throughput_curl(base_url, ct, accept, clients, throughput_requests)
        else:
            fps = _frame_throughput(base_url, ct, accept, clients, duration_s, max_requests)
        result[f"fps_{clients}"] = fps
    return result


def _frame_throughput_curl(base_url: str, ct: CtStudy, accept: str, clients: int,
                           requests: int, timeout_s: float = 300.0) -> float:
    # the server's key goes in the config read from stdin (not on the command line, where ps shows it)
    config = "".join(f'header = "{k}: {v}"\n' for k, v in auth_headers(base_url).items())
    config += "".join(f'url = "{base_url}{frame_path(ct, i)}"\noutput = "/dev/null"\n'
                      for i in range(requests))
    assert CURL is not None
    cmd = [CURL, "--silent", "--parallel", "--parallel-max", str(clients), "--max-time", "60",
           "--header", f"Accept: {accept}", "--write-out", "%{http_code}\\n", "--config", "-"]
    t0 = time.perf_counter()
    try:
        done = subprocess.run(cmd, input=config.encode(), capture_output=True, timeout=timeout_s,
                              check=False)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{requests} frame requests took over {timeout_s:.0f} s") from None
    elapsed = time.perf_counter() - t0
    codes = done.stdout.decode().split()
    ok = codes.count("200")
    if ok != requests:
        bad = next((c for c in codes if c != "200"), "none")
        raise BenchError(f"{requests - ok} of {requests} frame requests failed "
                         f"({clients} clients), e.g. HTTP {bad}")
    return ok / elapsed


def _frame_throughput(base_url: str, ct: CtStudy, accept: str, clients: int, duration_s: float,
                      max_requests: int) -> float:
    counts = [0] * clients
    errors: list[str] = []
    budget = max_requests // clients
    start = time.perf_counter()
    stop_at = start + duration_s

    def worker(k: int) -> None:
        h = Http(base_url)
        i = k * 37
        try:
            while time.perf_counter() < stop_at and counts[k] < budget:
                r = h.get(frame_path(ct, i), accept)
                if not _frame_ok(r):
                    errors.append(f"HTTP {r.status}")
                    return
                counts[k] += 1
                i += 1
        finally:
            h.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration_s + TIMEOUT_S)
    elapsed = time.perf_counter() - start
    if errors:
        raise BenchError(f"{len(errors)} frame requests failed with {clients} clients: {errors[0]}")
    return sum(counts) / elapsed
