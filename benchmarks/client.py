"""A small HTTP client for load loops, and what every workload shares.

`http.client` with one persistent connection per thread costs the client far less CPU than
httpx, which matters when client and server share two cores.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from benchmarks.net import auth_headers

TIMEOUT_S = 120.0


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
        self.auth = auth_headers(base_url)  # a Yunying server we started: its API key (issue 11)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> Response:
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, self.prefix + path, body=body, headers=self.auth | (headers or {}))
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


def per_thread(base_url: str) -> Callable[[], Http]:
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

    get.made = made  # type: ignore[attr-defined]  # the clients made, for the caller to close
    return get
