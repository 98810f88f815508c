"""HTTP content coding (RFC 9110 8.4, 12.5.3): br, zstd and gzip on what the archive sends.

A phone on a 4G link waits for bytes, not for the server: series metadata shrinks ~60x and a
native CT frame ~2.5x. `ContentCoding` (ASGI middleware) encodes JSON, XML and octet-stream
answers as they stream out; an answer kept whole (series and study metadata, `Precoded`) is
encoded once per coding and kept, so a repeat costs no compression. An encoded answer's ETag is
made weak (RFC 9110 8.8.1: the encodings are semantically equivalent, not byte-identical), and
every answer says `Vary: Accept-Encoding` so shared caches keep the variants apart.
"""
from __future__ import annotations

import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import brotli
import orjson
import zstandard
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# server preference among codings the client weighs equally: the smallest for text, the
# fastest for pixels (a 512x512 CT frame of 525 kB: zstd-3 2.4 ms -> 190 kB; br-3 similar;
# gzip-1 4.3 ms -> 175-200 kB; zstd-1 1.4 ms -> 212 kB, but 20 kB is 20 ms on an 8 Mbit/s link)
TEXT_ORDER = ("br", "zstd", "gzip")
BINARY_ORDER = ("zstd", "br", "gzip")
# levels on the fly for text and pixels, and once for a kept answer (788 kB of CT series
# metadata: br-9 14 ms -> 12.6 kB, br-4 1.7 ms -> 13.5 kB, zstd-1 0.3 ms -> 13.2 kB, gzip-6 17 kB)
LEVELS = {"br": {"text": 4, "binary": 3, "stored": 9},
          "zstd": {"text": 1, "binary": 3, "stored": 9},
          "gzip": {"text": 6, "binary": 1, "stored": 9}}
MIN_SIZE = 1024          # below one packet's payload coding saves no round trip
FLUSH_EVERY = 64 << 10   # streamed answers: flush the encoder every 64 KiB so parts keep moving
BINARY_PROBE = 64 << 10  # octet-stream: judge the ratio on this much before choosing a coding
BINARY_GAIN = 0.9        # octet-stream is encoded only if that saves at least 10 %
OFFLOAD = 64 << 10       # chunks this large are encoded in a worker thread, off the event loop
TEXT_TYPES = ("application/json", "application/xml", "text/")  # and every "+json" / "+xml" type
BINARY_TYPES = ("application/octet-stream",)


@dataclass(frozen=True)
class Negotiated:
    """What Accept-Encoding allows: codings by weight, and whether identity is acceptable."""

    weights: dict[str, float]
    identity: bool
    listed: bool  # the header was present

    def choose(self, order: tuple[str, ...]) -> str | None:
        """The coding to use from the server's `order`, or None for identity."""
        best, best_q = None, 0.0
        for coding in order:
            q = self.weights.get(coding, self.weights.get("*", 0.0))
            if q > best_q:
                best, best_q = coding, q
        # only an explicit identity weight can outrank a coding the client listed
        if best is not None and self.identity and self.weights.get("identity", 0.0) > best_q:
            return None
        return best


@lru_cache(maxsize=256)  # clients send a handful of distinct headers, each on every request
def negotiate(header: str | None) -> Negotiated:
    """Parse Accept-Encoding (RFC 9110 12.5.3); malformed entries are ignored, never a 400."""
    if header is None:  # no header: any coding is acceptable, identity is the one that is safe
        return Negotiated({}, True, False)
    weights: dict[str, float] = {}
    for item in header.split(","):
        name, *params = (p.strip() for p in item.split(";"))
        if not name:
            continue
        q: float | None = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = None
                if q is not None and not 0.0 <= q <= 1.0:
                    q = None
        name = name.lower()
        name = "gzip" if name == "x-gzip" else name
        if q is not None and name not in weights:
            weights[name] = q
    # identity is acceptable unless "identity;q=0", or "*;q=0" with no identity entry
    identity = weights.get("identity", weights.get("*", 1.0)) > 0.0
    return Negotiated(weights, identity, True)


@lru_cache(maxsize=256)
def kind_of(content_type: str) -> str | None:
    """"text", "binary" or None (not worth encoding: JPEG, DICOM files, …) for a Content-Type."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "multipart/related":  # the parts' type decides (PS3.18 8.7.3: type= names them)
        lowered = content_type.lower()
        start = lowered.find('type="')
        inner = lowered[start + 6:lowered.find('"', start + 6)] if start >= 0 else ""
        media = inner or media
    if media.startswith(TEXT_TYPES) or media.endswith(("+json", "+xml")):
        return "text"
    if media in BINARY_TYPES:
        return "binary"
    return None


class Encoder:
    """One streaming encoder: compress() what arrives, flush() to let it out, finish() at the end."""

    def __init__(self, coding: str, kind: str, stored: bool = False) -> None:
        self.coding = coding
        self.compress: Callable[[bytes | memoryview], bytes]  # the codecs take any buffer
        self.flush: Callable[[], bytes]
        self.finish: Callable[[], bytes]
        level = self.level = LEVELS[coding]["stored" if stored else kind]
        if coding == "br":
            br = brotli.Compressor(quality=level)
            self.compress, self.flush, self.finish = br.process, br.flush, br.finish
        elif coding == "zstd":
            obj = zstandard.ZstdCompressor(level=level).compressobj()
            self.compress = obj.compress
            self.flush = lambda: obj.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
            self.finish = obj.flush
        elif coding == "gzip":
            z = zlib.compressobj(level, zlib.DEFLATED, 31)
            self.compress = z.compress
            self.flush = lambda: z.flush(zlib.Z_SYNC_FLUSH)
            self.finish = z.flush
        else:
            raise ValueError(f"unknown content coding {coding!r}")

    def whole(self, body: bytes | memoryview) -> bytes:
        """`body` encoded in one call (the size known up front: ~5 % less CPU than streaming)."""
        if self.coding == "zstd":
            return zstandard.ZstdCompressor(level=self.level).compress(body)
        if self.coding == "br":
            return bytes(brotli.compress(bytes(body) if isinstance(body, memoryview) else body,
                                         quality=self.level))
        return self.compress(body) + self.finish()


class Precoded:
    """An answer kept whole (series/study metadata) and its encodings, each made once on demand."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self._coded: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._making = threading.Lock()  # a viewer's burst of requests encodes it once, not once each

    def coded(self, coding: str) -> bytes:
        """The body in `coding`, encoded at a high level the first time it is asked for."""
        with self._lock:
            hit = self._coded.get(coding)
        if hit is not None:
            return hit
        with self._making:
            with self._lock:
                hit = self._coded.get(coding)
            if hit is None:
                hit = Encoder(coding, "text", stored=True).whole(self.body)
                with self._lock:
                    self._coded[coding] = hit
        return hit

    @property
    def size(self) -> int:
        with self._lock:
            return len(self.body) + sum(len(b) for b in self._coded.values())


async def precoded_response(request: Request, kept: Precoded, media_type: str,
                            headers: dict[str, str]) -> Response:
    """A 200 with the kept body in the coding the request prefers (the middleware passes it on)."""
    coding = negotiate(request.headers.get("accept-encoding")).choose(TEXT_ORDER) \
        if len(kept.body) >= MIN_SIZE else None
    if coding is None:
        return Response(kept.body, media_type=media_type, headers=headers)
    body = await run_in_threadpool(kept.coded, coding)
    out = dict(headers, **{"Content-Encoding": coding, "Vary": "Accept-Encoding"})
    if "ETag" in out:
        out["ETag"] = weak(out["ETag"])
    return Response(body, media_type=media_type, headers=out)


def weak(tag: str) -> str:
    return tag if tag.startswith("W/") else "W/" + tag


def _add_vary(headers: MutableHeaders) -> None:
    vary = headers.get("vary", "")
    if "accept-encoding" not in vary.lower() and vary.strip() != "*":
        headers["Vary"] = f"{vary}, Accept-Encoding" if vary else "Accept-Encoding"


def _request_header(scope: Scope, name: bytes) -> str | None:
    """One request header (ASGI servers lower-case the names), without building a Headers."""
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


class ContentCoding:
    """ASGI middleware: encode 200 answers of text and octet-stream types as the client asks."""

    def __init__(self, app: ASGIApp, binary: bool = True) -> None:
        self.app = app
        self.binary = binary

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wanted = negotiate(_request_header(scope, b"accept-encoding"))
        if not wanted.identity and wanted.choose(TEXT_ORDER) is None:
            # RFC 9110 12.5.3: identity refused and none of ours accepted; refuse before acting
            body = orjson.dumps({"status": 406, "error": "Accept-Encoding accepts none of br, zstd, gzip, "
                                                         "identity"})
            await Response(body, status_code=406, media_type="application/json",
                           headers={"Vary": "Accept-Encoding"})(scope, receive, send)
            return
        if_none_match = _request_header(scope, b"if-none-match")
        if wanted.identity and if_none_match is None and wanted.choose(TEXT_ORDER) is None:
            # nothing of ours acceptable (no Accept-Encoding, or "identity": curl, http.client,
            # most DICOMweb libraries): the answer passes as it is, with Vary added; a
            # _Responder's object and its look-ups at the first body bytes cost ~5 us of each
            await self.app(scope, receive, _vary_only(send))
            return
        responder = _Responder(send, wanted, if_none_match or "", scope["method"] == "HEAD", self.binary)
        await self.app(scope, receive, responder.send)


_VARIES = frozenset((200, 203, 206, 304))  # the answers a cache may keep (RFC 9110 15.1)


def _vary_only(send: Send) -> Send:
    """send() adding `Vary: Accept-Encoding` to the start of a cacheable answer, nothing else."""
    async def vary(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] in _VARIES:
            raw = message.get("headers", [])
            raw = raw if isinstance(raw, list) else list(raw)
            if any(k.lower() == b"vary" for k, _ in raw):
                message = {**message, "headers": raw}
                _add_vary(MutableHeaders(scope=message))
            else:
                message = {**message, "headers": [*raw, (b"vary", b"Accept-Encoding")]}
        await send(message)
    return vary


class _Responder:
    """The send() of one response: passes it on plain, or encoded chunk by chunk."""

    def __init__(self, send: Send, wanted: Negotiated, if_none_match: str, head: bool, binary: bool) -> None:
        self._send = send
        self.wanted = wanted
        self.if_none_match = if_none_match
        self.head = head
        self.binary = binary
        self.start: Message | None = None
        self.encoder: Encoder | None = None
        self.held: list[bytes] = []  # octet-stream bytes held back until the ratio is known
        self.held_size = 0
        self.since_flush = 0
        self.passing = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.start = message
            status = message["status"]
            if status == 200 and not self.head:  # the common case, on the raw list (no Headers object)
                raw = message.setdefault("headers", [])
                if not isinstance(raw, list):
                    raw = message["headers"] = list(raw)
                names = [k.lower() for k, _ in raw]
                if b"vary" in names:
                    _add_vary(MutableHeaders(scope=message))
                else:
                    raw.append((b"vary", b"Accept-Encoding"))
                if b"content-encoding" in names:
                    await self._pass()
                return
            headers = MutableHeaders(scope=message)
            if status in (200, 203, 206, 304) or not self.wanted.identity:
                _add_vary(headers)
            if status == 304:
                tag = headers.get("etag")
                if tag and weak(tag) in (t.strip() for t in self.if_none_match.split(",")):
                    headers["ETag"] = weak(tag)  # confirm the validator the client holds
            await self._pass()
            return
        if message["type"] != "http.response.body" or self.passing:
            await self._send(message)
            return
        body: bytes = message.get("body", b"")
        more: bool = message.get("more_body", False)
        if self.encoder is None:
            await self._begin(body, more)
            return
        await self._chunk(body, more)

    async def _pass(self) -> None:
        self.passing = True
        if self.start is not None:
            await self._send(self.start)
            self.start = None

    async def _begin(self, body: bytes, more: bool) -> None:
        """Choose the coding on the first body bytes (octet-stream: on the first 64 KiB)."""
        assert self.start is not None
        ctype = next((v for k, v in self.start["headers"] if k.lower() == b"content-type"), b"")
        kind = kind_of(ctype.decode("latin-1"))
        if kind == "binary" and not self.binary:
            kind = None
        forced = not self.wanted.identity  # identity;q=0: whatever the type, encode
        kind = kind or ("text" if forced else None)
        coding = self.wanted.choose(TEXT_ORDER if kind == "text" else BINARY_ORDER) if kind else None
        if coding is not None and kind == "binary" and not forced:
            self.held.append(body)
            self.held_size += len(body)
            if more and self.held_size < BINARY_PROBE:
                return
            body, self.held = b"".join(self.held), []
        if coding is None or (not more and len(body) < MIN_SIZE and not forced):
            await self._plain(body, more)
            return
        headers = MutableHeaders(scope=self.start)
        encoder = Encoder(coding, kind or "text")
        head = await _run(encoder.compress, body)
        head += (encoder.flush if more else encoder.finish)()
        if kind == "binary" and not forced and len(head) > BINARY_GAIN * len(body):
            await self._plain(body, more)  # pixels that do not compress (already encoded): as they are
            return
        self.encoder = encoder
        headers["Content-Encoding"] = coding
        if "etag" in headers:
            headers["ETag"] = weak(headers["etag"])
        if more:
            del headers["content-length"]
        else:
            headers["Content-Length"] = str(len(head))
        await self._send(self.start)
        self.start = None
        await self._send({"type": "http.response.body", "body": head, "more_body": more})

    async def _plain(self, body: bytes, more: bool) -> None:
        await self._pass()
        await self._send({"type": "http.response.body", "body": body, "more_body": more})

    async def _chunk(self, body: bytes, more: bool) -> None:
        assert self.encoder is not None
        out = await _run(self.encoder.compress, body) if body else b""
        self.since_flush += len(body)
        if not more:
            out += self.encoder.finish()
        elif self.since_flush >= FLUSH_EVERY:
            out += self.encoder.flush()
            self.since_flush = 0
        if out or not more:
            await self._send({"type": "http.response.body", "body": out, "more_body": more})


async def _run(fn: Callable[[bytes], bytes], data: bytes) -> bytes:
    """An encoder step; large inputs in a worker thread (the codecs release the GIL)."""
    if len(data) >= OFFLOAD:
        return await run_in_threadpool(fn, data)
    return fn(data)

