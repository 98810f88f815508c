"""STOW-RS ingest load: multipart/related bodies from several client threads (PS3.18 §10.5)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.client import BenchError, per_thread


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
    conn = per_thread(base_url)
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
    for h in conn.made:  # type: ignore[attr-defined]  # the clients connect() made (benchmarks.client)
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
