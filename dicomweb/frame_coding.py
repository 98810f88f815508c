"""One frame's answer in a content coding, made in the frame's own worker-thread hop and kept.

A browser asks for every frame with `Accept-Encoding: gzip, deflate, br, zstd`. Through the
`coding.ContentCoding` middleware a native 512x512 CT frame cost ~3.4 ms of server CPU against
~0.5 ms plain: zstd-3 on 512 KB (~2.4 ms, it is what makes the frame 2.6x smaller on a 4G link),
plus the middleware holding the body back, a second worker-thread hop and its header rewriting.
The stored chunk (Blosc-LZ4 with bit shuffle) is not an HTTP content coding, so it cannot be
sent as it is. Instead the route encodes the body in the thread that read the frame (no second
hop) and keeps the coded bytes in a bounded LRU keyed by everything that fixes them (the ETag's
inputs, the base URL and the coding), so a frame asked again (a viewer scrolling back, a second
reader of the same study, a prefetch and then the display) costs no compression. A multipart
answer's boundary is derived from the same key, so the body, and its cached coding, repeat.

The middleware sees `Content-Encoding` and passes the answer on; `hardening.Digests` digests
the coded bytes (RFC 9530: the representation sent).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from dicomweb.coding import BINARY_GAIN, BINARY_ORDER, MIN_SIZE, Encoder, kind_of, negotiate

if TYPE_CHECKING:
    from dicomweb.rendering import ByteLRU

CACHE_BYTES = 64 << 20  # ~320 coded CT frames: a series a reader scrolls through, kept once
PLAIN = b""  # kept for a frame that does not shrink by 10 % (already compressed pixels)


def wanted_coding(request: Request) -> tuple[str | None, bool]:
    """(coding, forced): the coding for an octet-stream frame, and whether identity was refused.

    None when frames go plain (the setting `compress_frames` off, or the client lists no coding
    of ours); the middleware answers 406 before the route when nothing at all is acceptable.
    """
    wanted = negotiate(request.headers.get("accept-encoding"))
    forced = not wanted.identity
    settings = getattr(request.app.state, "settings", None)
    if not forced and settings is not None and not settings.compress_frames:
        return None, False
    return wanted.choose(BINARY_ORDER), forced


def cache_of(request: Request) -> ByteLRU:
    from dicomweb.rendering import ByteLRU  # rendering imports frames, which imports this module

    state = request.app.state
    cache: ByteLRU | None = getattr(state, "coded_frames", None)
    if cache is None:
        cache = state.coded_frames = ByteLRU(CACHE_BYTES)
    return cache


def coded_body(cache: ByteLRU, key: tuple[Any, ...], coding: str, forced: bool, media: str,
               body: Callable[[], bytes | memoryview]) -> bytes | None:
    """The body in `coding` (made once per key), or None when it goes plain. Runs in a worker thread."""
    if kind_of(media) != "binary":
        return None  # JPEG and the other encoded syntaxes: the middleware decides (identity;q=0)
    hit = cache.get(key)
    if hit:
        return hit
    if hit is not None and not forced:
        return None
    plain = body()
    if len(plain) < MIN_SIZE and not forced:
        return None
    coded = Encoder(coding, "binary").whole(plain)
    pays = forced or len(coded) <= BINARY_GAIN * len(plain)
    cache.put(key, coded if pays else PLAIN)
    return coded if pays else None
