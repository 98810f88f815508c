"""DICOMweb workloads: STOW-RS ingest, QIDO-RS latency, series metadata, WADO-RS frames.

Clients use `http.client` with one persistent connection per thread: it costs the client far
less CPU than httpx, which matters when client and server share two cores.
"""

from __future__ import annotations

import http.client
import json
import random
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks.data import Corpus, CtStudy

FRAME_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
FRAME_ACCEPT_FALLBACK = 'multipart/related; type="application/octet-stream"'
TIMEOUT_S = 120.0
CURL = shutil.which("curl")


class BenchError(RuntimeError):
    """A workload could not produce its figure; the message is the 'n/a' reason."""


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


class Http:
    """One keep-alive connection to a base URL (not thread-safe: one per thread)."""

    def __init__(self, base_url: str, timeout: float = TIMEOUT_S) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> Response:
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, self.prefix + path, body=body, headers=headers or {})
                r = self.conn.getresponse()
                data = r.read()
                hdrs = {k.lower(): v for k, v in r.getheaders()}
                if hdrs.get("connection", "").lower() == "close":
                    self.close()
                return Response(r.status, hdrs, data)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # A keep-alive connection closed by the server between requests: reconnect once.
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def get(self, path: str, accept: str = "application/dicom+json") -> Response:
        return self.request("GET", path, headers={"Accept": accept})

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), nearest-rank."""
    ordered = sorted(values)
    if not ordered:
        raise BenchError("no samples")
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def _per_thread(base_url: str) -> Callable[[], Http]:
    local = threading.local()
    made: list[Http] = []
    lock = threading.Lock()

    def get() -> Http:
        h = getattr(local, "http", None)
        if h is None:
            h = local.http = Http(base_url)
            with lock:
                made.append(h)
        return h

    get.made = made  # type: ignore[attr-defined]
    return get


# --- STOW-RS ---------------------------------------------------------------------------------

def multipart_body(parts: Iterable[bytes], boundary: str) -> bytes:
    """A multipart/related body of application/dicom parts (PS3.18 §8.6.1.2)."""
    b = boundary.encode()
    chunks: list[bytes] = []
    for part in parts:
        chunks += [b"--", b, b"\r\nContent-Type: application/dicom\r\n\r\n", part, b"\r\n"]
    chunks += [b"--", b, b"--\r\n"]
    return b"".join(chunks)


def _stow_failed(body: bytes) -> int:
    """Number of items in a STOW response's FailedSOPSequence (0008,1198)."""
    try:
        doc = json.loads(body) if body.strip() else {}
    except ValueError:
        return 0
    return len((doc.get("00081198") or {}).get("Value") or [])


def stow(base_url: str, files: Sequence[Path], clients: int = 4, per_request: int = 10,
         deadline_s: float = 600.0, allow_partial: bool = False) -> dict[str, Any]:
    """POST `files` to /studies from `clients` threads; bodies are built before the clock starts.

    No request starts after `deadline_s`; with `allow_partial` the answer then lists the files
    sent (`sent`, a prefix of whole batches), otherwise it is an error.
    """
    boundary = f"bench-{uuid.uuid4().hex}"
    batches = [files[i:i + per_request] for i in range(0, len(files), per_request)]
    bodies = [multipart_body((f.read_bytes() for f in batch), boundary) for batch in batches]
    headers = {"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
               "Accept": "application/dicom+json"}
    conn = _per_thread(base_url)
    failures: list[str] = []
    stop_at = time.monotonic() + deadline_s

    sent = [False] * len(bodies)

    def post(k: int) -> None:
        if time.monotonic() > stop_at:
            return
        sent[k] = True
        r = conn().request("POST", "/studies", body=bodies[k], headers=headers)
        if r.status != 200:
            failures.append(f"HTTP {r.status}: {r.body[:200]!r}")
        else:
            failed = _stow_failed(r.body)
            if failed:
                failures.append(f"{failed} instances in FailedSOPSequence")

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(post, range(len(bodies))))
    elapsed = time.perf_counter() - t0
    for h in conn.made:  # type: ignore[attr-defined]
        h.close()
    if failures:
        raise BenchError(f"{len(failures)} of {len(bodies)} STOW requests failed: {failures[0]}")
    done = [f for k, batch in enumerate(batches) if sent[k] for f in batch]
    if not done:
        raise BenchError("STOW time limit reached before the first request")
    if len(done) < len(files) and not allow_partial:
        raise BenchError(f"only {len(done)} of {len(files)} instances sent within "
                         f"{deadline_s:.0f} s")
    done_bytes = sum(f.stat().st_size for f in done)
    return {"instances": len(done), "seconds": elapsed, "instances_per_s": len(done) / elapsed,
            "mb_per_s": done_bytes / 1e6 / elapsed, "input_bytes": done_bytes,
            "truncated": len(done) < len(files), "sent": done}


# --- QIDO-RS ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Query:
    kind: str
    path: str
    expected: int | None  # number of results a correct server returns, when known


def _in_range(d: str, lo: str, hi: str) -> bool:
    return lo <= d <= hi


def qido_queries(corpus: Corpus, n: int, seed: int = 11) -> list[Query]:
    """A reproducible mix of study, series and instance queries with their expected counts."""
    rng = random.Random(seed)
    studies = list(corpus.studies)
    by_pid: dict[str, int] = {}
    for s in studies:
        by_pid[s["PatientID"]] = by_pid.get(s["PatientID"], 0) + 1
    out: list[Query] = []
    inc = "includefield=00081061,00081030,00201206,00201208"
    kinds = ["study_patient_id", "study_name_wildcard", "study_date_range", "study_modality",
             "study_list", "study_accession", "series_in_study", "series_by_modality",
             "instances_in_series", "instance_by_uid"]
    for i in range(n):
        kind = kinds[i % len(kinds)]
        s = rng.choice(studies)
        if kind == "study_patient_id":
            out.append(Query(kind, f"/studies?PatientID={s['PatientID']}", by_pid[s["PatientID"]]))
        elif kind == "study_name_wildcard":
            while not s["PatientName"].split("^")[0].isascii():  # raw ASCII URLs, see README
                s = rng.choice(studies)
            prefix = s["PatientName"].split("^")[0]
            hits = sum(x["PatientName"].startswith(prefix) for x in studies)
            out.append(Query(kind, f"/studies?PatientName={prefix}*&limit=100&{inc}", min(100, hits)))
        elif kind == "study_date_range":
            lo = date(rng.randint(2000, 2024), rng.randint(1, 12), 1)
            hi = lo + timedelta(days=rng.choice([7, 31, 92]))
            a, b = lo.strftime("%Y%m%d"), hi.strftime("%Y%m%d")
            hits = sum(_in_range(x["StudyDate"], a, b) for x in studies)
            out.append(Query(kind, f"/studies?StudyDate={a}-{b}&limit=100&{inc}", min(100, hits)))
        elif kind == "study_modality":
            m = rng.choice(["MR", "US", "MG", "PT", "NM"])  # not CT: the CT studies would count
            hits = sum(m in x["ModalitiesInStudy"].split("\\") for x in studies)
            out.append(Query(kind, f"/studies?ModalitiesInStudy={m}&limit=100&{inc}", min(100, hits)))
        elif kind == "study_list":
            out.append(Query(kind, f"/studies?limit=100&offset={rng.randint(0, 20) * 100}&{inc}", None))
        elif kind == "study_accession":
            out.append(Query(kind, f"/studies?AccessionNumber={s['AccessionNumber']}", 1))
        elif kind == "series_in_study":
            out.append(Query(kind, f"/studies/{s['StudyInstanceUID']}/series", len(s["series"])))
        elif kind == "series_by_modality":
            m = rng.choice(["MR", "CR", "DX", "MG", "NM"])
            out.append(Query(kind, f"/series?Modality={m}&limit=100", None))
        elif kind == "instances_in_series":
            se = rng.choice(s["series"])
            out.append(Query(kind, f"/studies/{s['StudyInstanceUID']}/series/"
                                   f"{se['SeriesInstanceUID']}/instances", len(se["sops"])))
        else:
            se = rng.choice(s["series"])
            sop = rng.choice(se["sops"])
            out.append(Query(kind, f"/instances?SOPInstanceUID={sop}", 1))
    return out


def _count(r: Response) -> int:
    if r.status == 204 or not r.body.strip():
        return 0
    return len(json.loads(r.body))


def qido(base_url: str, queries: Sequence[Query], warmup: int = 20) -> dict[str, Any]:
    """Run `queries` one after the other from a single client; latency percentiles in ms."""
    h = Http(base_url)
    for q in queries[:warmup]:
        h.get(q.path)
    samples: dict[str, list[float]] = {}
    wrong: dict[str, int] = {}
    wrong_examples: list[dict[str, Any]] = []
    errors: list[str] = []
    for q in queries:
        t0 = time.perf_counter()
        r = h.get(q.path)
        ms = (time.perf_counter() - t0) * 1000
        if r.status not in (200, 204):
            errors.append(f"{q.kind}: HTTP {r.status}")
            continue
        samples.setdefault(q.kind, []).append(ms)
        if q.expected is not None and (got := _count(r)) != q.expected:
            wrong[q.kind] = wrong.get(q.kind, 0) + 1
            if len(wrong_examples) < 5 and q.kind != "study_name_wildcard":  # no names in logs
                wrong_examples.append({"path": q.path, "expected": q.expected, "got": got})
    h.close()
    if len(errors) > len(queries) // 2:
        raise BenchError(f"{len(errors)} of {len(queries)} queries failed, e.g. {errors[0]}")
    allv = [v for vs in samples.values() for v in vs]
    return {
        "queries": len(allv), "p50_ms": percentile(allv, 50), "p95_ms": percentile(allv, 95),
        "by_kind_p50_ms": {k: percentile(v, 50) for k, v in sorted(samples.items())},
        "wrong_counts": wrong, "wrong_examples": wrong_examples, "errors": len(errors),
        "first_error": errors[0] if errors else None,
    }


# --- series metadata ---------------------------------------------------------------------------

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


# --- WADO-RS frames ---------------------------------------------------------------------------

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
    config = "".join(f'url = "{base_url}{frame_path(ct, i)}"\noutput = "/dev/null"\n'
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


__all__ = ["BenchError", "Http", "frames", "percentile", "qido", "qido_queries",
           "series_metadata", "stow"]
