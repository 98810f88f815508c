"""Response headers (issue 12 parts 7-8): HSTS when served over TLS (RFC 6797), no MIME
sniffing, no Referer leaking a study URL to another site; digests on downloads."""
from __future__ import annotations

import base64
import hashlib
import re
import tempfile
from typing import Any

from starlette.concurrency import run_in_threadpool

HSTS_SECONDS = 31_536_000  # one year


class SecurityHeaders:
    """An ASGI wrapper adding the headers to every HTTP response start."""

    def __init__(self, app: Any, hsts: bool = False) -> None:
        self.app = app
        extra = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
        if hsts:
            extra.append((b"strict-transport-security", f"max-age={HSTS_SECONDS}".encode()))
        self.extra = extra

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message = {**message, "headers": [*message.get("headers", []),
                                                  *(h for h in self.extra if h[0] not in present)]}
            await send(message)
        await self.app(scope, receive, with_headers)


_DOWNLOAD = re.compile(r"^/dicomweb/studies/[^/]+(/series/[^/]+(/instances/[^/]+)?)?(/bulkdata/.*)?$")
SPOOL_BYTES = 32 << 20


class Digests:
    """Integrity headers on downloads (issue 12 part 7): `Repr-Digest: sha-256=:…:` (RFC 9530)
    on every WADO-RS retrieve and bulk data answer, and on any other GET that sends
    `Want-Repr-Digest`; `Content-MD5` (RFC 1864) when the request's Want-Repr-Digest or
    Want-Digest names md5. The body is spooled (to disk past 32 MiB) to compute them before the
    headers go out; it sits outside content coding, so the digest is of the bytes sent."""

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
        md5 = hashlib.md5(usedforsecurity=False) if b"md5" in want else None
        sha = hashlib.sha256()
        start: dict[str, Any] = {}
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - closed below
        size = 0

        async def spooled(message: dict[str, Any]) -> None:
            nonlocal size
            if message["type"] == "http.response.start":
                start.update(message)
                return
            if message["type"] != "http.response.body" or not start:
                await send(message)
                return
            if start["status"] != 200:  # errors pass as they are
                if start.get("sent") is None:
                    start["sent"] = True
                    await send({k: v for k, v in start.items() if k != "sent"})
                await send(message)
                return
            body = message.get("body", b"")
            sha.update(body)
            if md5 is not None:
                md5.update(body)
            if size + len(body) > SPOOL_BYTES:  # on disk by now: write off the event loop
                await run_in_threadpool(spool.write, body)
            else:
                spool.write(body)
            size += len(body)
            if message.get("more_body"):
                return
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            headers += [(b"content-length", str(size).encode()),
                        (b"repr-digest", b"sha-256=:" + base64.b64encode(sha.digest()) + b":")]
            if md5 is not None:
                headers.append((b"content-md5", base64.b64encode(md5.digest())))
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            spool.seek(0)
            while chunk := await run_in_threadpool(spool.read, 1 << 20):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        try:
            await self.app(scope, receive, spooled)
        finally:
            spool.close()
