"""Response hardening (issue 12 parts 7-8): digests on downloads, a rate limit per principal
(the security headers are added by dicomweb.edge)."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import re
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

from starlette.concurrency import run_in_threadpool

# possessive (a UID holds no "/"): a frame's path is refused without backtracking through its UIDs
_DOWNLOAD = re.compile(r"^/dicomweb/(wado|studies/[^/]++(/series/[^/]++(/instances/[^/]++)?)?(/bulkdata/.*)?)$")
HOLD_BYTES = 512 << 20  # bodies held in memory at once, all answers together; the rest go to disk


class _Held:
    """A body kept until its digest is known: the chunks themselves while the process-wide budget
    allows (no copy: a CT series of 157 MB spooled through a temporary file cost ~0.2 s of CPU
    and the disk writes), then a temporary file for the rest."""

    in_memory = 0  # bytes held by all answers of this process (one event loop: no lock)

    def __init__(self) -> None:
        self.chunks: list[bytes | memoryview] = []
        self.held = 0
        self.file: IO[bytes] | None = None

    async def add(self, body: bytes | memoryview) -> None:
        if self.file is None and _Held.in_memory + len(body) <= HOLD_BYTES:
            if not isinstance(body, bytes) and not (isinstance(body, memoryview) and body.readonly):
                body = bytes(body)  # a buffer the sender may reuse: keep a copy
            self.chunks.append(body)
            self.held += len(body)
            _Held.in_memory += len(body)
            return
        if self.file is None:
            self.file = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        await run_in_threadpool(self.file.write, body)

    async def replay(self, send: Any) -> None:
        for chunk in self.chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        self.release()
        if self.file is not None:
            self.file.seek(0)
            while chunk := await run_in_threadpool(self.file.read, 1 << 20):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def release(self) -> None:
        _Held.in_memory -= self.held
        self.chunks, self.held = [], 0

    def close(self) -> None:
        self.release()
        if self.file is not None:
            self.file.close()


Body = bytes | memoryview
HASH_BATCH = 1 << 20  # bytes handed to the hashing thread at once (fewer hand-overs, hot caches)
HASH_LAG = 4 << 20  # bytes sent and not yet hashed before the sender waits for the hash (bounded memory)
# hashlib releases the GIL on buffers over 2 KiB: the hashes run beside the event loop, on the other core
_HASHING = ThreadPoolExecutor(max_workers=2, thread_name_prefix="digest")


class _Hasher:
    """sha-256 (and md5) of a body, computed in a worker thread while the event loop goes on
    sending (issue 9 part 4): hashing a 158 MB CT series on the event loop's thread cost ~0.1 s
    during which nothing was written to the socket. One batch in flight per body at a time, so
    the bytes are hashed in the order they are sent; the chunks themselves are kept until
    hashed (no copy: bytes and read-only views do not change)."""

    def __init__(self, md5: bool) -> None:
        self.sha = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False) if md5 else None
        self.size = 0
        self._batch: list[Body] = []
        self._batched = 0
        self._flight: asyncio.Future[None] | None = None
        self._flying = 0

    def _update(self, batch: list[Body]) -> None:
        for body in batch:
            self.sha.update(body)
            if self.md5 is not None:
                self.md5.update(body)

    async def add(self, body: Body) -> None:
        if not len(body):
            return
        if not isinstance(body, bytes) and not (isinstance(body, memoryview) and body.readonly):
            body = bytes(body)  # a buffer the sender may reuse: keep a copy
        self.size += len(body)
        self._batch.append(body)
        self._batched += len(body)
        if self._batched < HASH_BATCH:
            return
        if self._flight is not None and not self._flight.done():
            if self._batched + self._flying < HASH_LAG:
                return  # the batch grows until the hash in flight is done
            await self._flight
        self._launch()

    def _launch(self) -> None:
        batch, self._flying = self._batch, self._batched
        self._batch, self._batched = [], 0
        self._flight = asyncio.get_running_loop().run_in_executor(_HASHING, self._update, batch)

    async def finish(self) -> list[tuple[bytes, bytes]]:
        """(Content-Length, Repr-Digest[, Content-MD5]) of everything added."""
        if self._flight is not None:
            await self._flight
        if self._batch:
            self._launch()
            await self._flight  # type: ignore[misc]
        computed = [(b"content-length", str(self.size).encode()),
                    (b"repr-digest", b"sha-256=:" + base64.b64encode(self.sha.digest()) + b":")]
        if self.md5 is not None:
            computed.append((b"content-md5", base64.b64encode(self.md5.digest())))
        return computed


def wants_digest(path: str) -> bool:
    """Whether a GET of `path` is a download Digests acts on even when no digest was asked for."""
    return _DOWNLOAD.match(path) is not None


class Digests:
    """Integrity headers on downloads (issue 12 part 7): `Repr-Digest: sha-256=:…:` (RFC 9530)
    on WADO-RS retrieve and bulk data answers, and on any other GET that sends
    `Want-Repr-Digest`; `Content-MD5` (RFC 1864) when the request's Want-Repr-Digest or
    Want-Digest names md5. To compute them before the headers go out, the body is held
    (`_Held`); it sits outside content coding, so the digest is of the bytes sent.

    One exception keeps a first retrieve as fast as a plain one (issue 9 part 4: holding a CT
    series until it was all read and hashed doubled its CPU and delayed its first byte by the
    whole series): a download whose digest the client did not ask for, sent without content
    coding, streams at once and is hashed on the way; its digest is handed to the route's memo
    (wado_stream.DigestMemo), so every repeat of those bytes carries it from its first byte. A
    client that wants to verify the first answer says so with `Want-Repr-Digest` (RFC 9530 4)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        want = b" ".join(v for k, v in scope["headers"] if k in (b"want-repr-digest", b"want-digest")).lower()
        if not want and not _DOWNLOAD.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        hasher = _Hasher(b"md5" in want)
        start: dict[str, Any] = {}
        held = _Held()

        async def spooled(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                headers = message.get("headers", [])
                if _already_known(headers, hasher.md5 is not None):
                    start["sent"] = True  # the route knew the digests of this body: no spool
                    await send(message)
                elif not want and message["status"] == 200 and not _coded(headers):
                    # nobody asked: hashed on the way when a memo keeps the digest for repeats
                    start["sent"] = True
                    start["streaming"] = scope.get("state", {}).get("digest_record")
                    start["length"] = _length(headers)
                    await send(message)
                return
            record = start.get("streaming")
            if record is not None and message["type"] == "http.response.body":
                await hasher.add(message.get("body", b""))
                # the whole body was made: its hash, before the last bytes go (a client that has
                # them all may close at once, and this task is cancelled with its connection)
                if hasher.size == start["length"] or not message.get("more_body"):
                    start["streaming"] = None
                    record(await hasher.finish())
                await send(message)
                return
            if message["type"] != "http.response.body" or not start or start.get("sent"):
                await send(message)
                return
            if start["status"] != 200:  # errors pass as they are
                if start.get("sent") is None:
                    start["sent"] = True
                    await send({k: v for k, v in start.items() if k != "sent"})
                await send(message)
                return
            body = message.get("body", b"")
            if body:
                await hasher.add(body)  # hashed in a thread: the route's reads keep going
                await held.add(body)
            if message.get("more_body"):
                return
            computed = await hasher.finish()
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() not in _COMPUTED]
            headers += computed
            record = scope.get("state", {}).get("digest_record")
            if record is not None and not _coded(headers):
                record(computed)  # wado_stream.DigestMemo: a repeat of this body goes out unspooled
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await held.replay(send)

        try:
            await self.app(scope, receive, spooled)
        finally:
            held.close()


_COMPUTED = (b"content-length", b"repr-digest", b"content-md5")


def _length(headers: list[tuple[bytes, bytes]]) -> int | None:
    value = next((v for k, v in headers if k.lower() == b"content-length"), None)
    return int(value) if value is not None and value.isdigit() else None


def _coded(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(k.lower() == b"content-encoding" for k, _ in headers)


def _already_known(headers: list[tuple[bytes, bytes]], want_md5: bool) -> bool:
    """The route sent the digests of the bytes going out (wado_stream.DigestMemo): not encoded
    on the way, with the length, and Content-MD5 too when asked for."""
    names = {k.lower() for k, _ in headers}
    return (b"repr-digest" in names and b"content-length" in names and b"content-encoding" not in names
            and (not want_md5 or b"content-md5" in names))


class RateLimit:
    """A token bucket per principal (issue 12 part 8): `per_second` requests a second on average,
    bursts up to ten seconds' worth; beyond, 429 with Retry-After (RFC 6585 4)."""

    def __init__(self, app: Any, per_second: int) -> None:
        self.app, self.rate, self.burst = app, float(per_second), float(per_second * 10)
        self.buckets: dict[tuple[str, str], tuple[float, float]] = {}  # principal -> (tokens, at)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        principal = scope.get("state", {}).get("principal") if scope["type"] == "http" else None
        if principal is None:
            await self.app(scope, receive, send)
            return
        key, now = (principal.kind, principal.id), time.monotonic()
        tokens, at = self.buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens < 1:
            self.buckets[key] = (tokens, now)
            wait = max(1, math.ceil((1 - tokens) / self.rate))
            body = f'{{"status": 429, "error": "too many requests: at most {self.rate:g} a second"}}'.encode()
            await send({"type": "http.response.start", "status": 429, "headers": [
                (b"content-type", b"application/json"), (b"retry-after", str(wait).encode()),
                (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        self.buckets[key] = (tokens - 1, now)
        if len(self.buckets) > 100_000:  # forget the longest idle (bounded memory)
            for old in sorted(self.buckets, key=lambda k: self.buckets[k][1])[:50_000]:
                del self.buckets[old]
        await self.app(scope, receive, send)
