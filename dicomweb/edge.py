"""The outermost HTTP layer: three small duties of every request done in one pass.

- **Errors contained** (issue 10 part 8): the one place an unexpected exception becomes a 500,
  logged as the DIMSE side logs it (type, errno, frames; `yunying.logsafe.summary`). Starlette's
  handler for `Exception` runs in ServerErrorMiddleware, which re-raises after answering, so
  uvicorn logged the whole traceback, message included, and a message may quote values of the
  data set. Here, inside that middleware, nothing is re-raised.
- **Doubled slashes collapsed** (issue 10 part 10): clients build `{base}/studies` from a base
  URL ending in `/` and ask for `/dicomweb//studies` (Orthanc serves that). Empty segments carry
  no meaning in the URL table; they go before routing and before the authorization point.
- **Security headers** (issue 12 parts 7-8): HSTS over TLS (RFC 6797), no MIME sniffing, no
  Referer leaking a study URL to another site, who may embed an answer; a CSP on pages. Added
  here, outside content coding and digests, to the start message that goes out, so 500s and CORS
  preflights carry them too.

One coroutine and one send wrapper instead of three layers of each (issue 11's cost target:
each layer costs a few microseconds of every request). The edge also decides, in the same pass
over the request headers, whether `hardening.Digests` and `coding.ContentCoding` can act on this
request at all; most cannot (a frame or a QIDO-RS answer without Accept-Encoding or
Want-Repr-Digest), and then they are not entered: the edge's own send wrapper adds their one
visible effect (`Vary: Accept-Encoding`) and nothing else wraps the answer.
"""
from __future__ import annotations

import logging
import re
from collections.abc import MutableMapping
from typing import Any

import orjson

from dicomweb.coding import _VARIES, TEXT_ORDER, ContentCoding, _Responder, negotiate
from dicomweb.hardening import Digests, wants_digest
from yunying.logsafe import summary

log = logging.getLogger("yunying.http")
HSTS_SECONDS = 31_536_000  # one year
_SLASHES = re.compile(r"/{2,}")
_RAW_SLASHES = re.compile(rb"/{2,}")
_500 = orjson.dumps({"status": 500, "error": "internal error; see the server log"})


def content_security_policy(frame_ancestors: list[str]) -> bytes:
    """Pages load only their own scripts, styles and data (no inline script, no CDN), and are
    framed only by the listed origins (none by default: clickjacking)."""
    ancestors = " ".join(frame_ancestors) or "'none'"
    return (f"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
            f"object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors {ancestors}").encode()


def collapse_slashes(scope: dict[str, Any]) -> dict[str, Any]:
    """A copy of `scope` with `//` -> `/` in its path and raw path."""
    scope = dict(scope)
    scope["path"] = _SLASHES.sub("/", scope["path"])
    raw = scope.get("raw_path")
    if raw:
        scope["raw_path"] = _RAW_SLASHES.sub(b"/", raw)
    return scope


class Edge:
    """ASGI middleware, outermost: collapse `//`, add the security headers, contain errors."""

    def __init__(self, app: Any, hsts: bool = False, frame_ancestors: list[str] | None = None,
                 cross_origin: bool = False, binary: bool = True) -> None:
        self.app, self.binary = app, binary
        # the inner layers, entered only by a request they may act on (see the module's doc)
        coded = ContentCoding(app, binary=binary)
        self._inner: dict[tuple[bool, bool], Any] = {(False, True): coded, (True, False): Digests(app),
                                                     (True, True): Digests(coded)}
        extra = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                 # viewers on other origins (CORS) may read DICOMweb answers; nobody else embeds them
                 (b"cross-origin-resource-policy", b"cross-origin" if cross_origin else b"same-origin")]
        if hsts:
            extra.append((b"strict-transport-security", f"max-age={HSTS_SECONDS}".encode()))
        self.extra = extra
        self.page = [*extra, (b"content-security-policy", content_security_policy(frame_ancestors or []))]
        self.names = frozenset(k for k, _ in self.page)

    def headers(self, headers: list[tuple[bytes, bytes]], vary: bool = False) -> list[tuple[bytes, bytes]]:
        """The answer's headers plus those of ours it does not set itself (and, with `vary`,
        `Vary: Accept-Encoding` as coding.ContentCoding adds it to an answer it leaves plain)."""
        extra = self.extra
        clash = False
        for k, v in headers:
            k = k.lower()
            if k == b"content-type" and v.startswith(b"text/html"):
                extra = self.page
            elif k in self.names:
                clash = True
            elif vary and k == b"vary":  # merged into the answer's own Vary by ContentCoding's rule
                vary = False
                headers = _vary_merged(headers)
        if clash:
            present = {k.lower() for k, _ in headers}
            extra = [h for h in extra if h[0] not in present]
        return [*headers, *extra, (b"vary", b"Accept-Encoding")] if vary else [*headers, *extra]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "//" in scope["path"]:
            scope = collapse_slashes(scope)
        # one pass over the request headers for the inner layers' decisions
        coding: bytes | None = None
        if_none_match: bytes | None = None
        digest = False
        for k, v in scope["headers"]:
            if k == b"accept-encoding":
                if coding is None:
                    coding = v
            elif k == b"if-none-match":
                if if_none_match is None:
                    if_none_match = v
            elif k == b"want-repr-digest" or k == b"want-digest":
                digest = True
        wanted = negotiate(None if coding is None else coding.decode("latin-1"))
        # as ContentCoding decides to pass an answer as it is (or to refuse it: 406)
        coded = if_none_match is not None or not wanted.identity or wanted.choose(TEXT_ORDER) is not None
        digested = scope["method"] == "GET" and (digest or wants_digest(scope["path"]))
        # a download to digest, or a 406 to answer: the inner layers whole
        whole = digested or (not wanted.identity and wanted.choose(TEXT_ORDER) is None)
        app = self._inner[(digested, coded)] if whole else self.app
        # otherwise ContentCoding's send() is made only for an answer it may act on: not for a 200
        # with its own Content-Encoding (a browser's frame, coded by the route)
        lazy = coded and not whole
        head = scope["method"] == "HEAD"
        responder: _Responder | None = None
        started = False

        async def out(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": self.headers(
                    message.get("headers", []), (not coded or lazy) and message["status"] in _VARIES)}
            await send(message)

        async def edged(message: MutableMapping[str, Any]) -> None:
            nonlocal responder
            if responder is not None:
                await responder.send(message)
                return
            if lazy and message["type"] == "http.response.start" and (
                    message["status"] != 200 or head or not _has(message.get("headers", []), b"content-encoding")):
                responder = _Responder(out, wanted, (if_none_match or b"").decode("latin-1"), head, self.binary)
                await responder.send(message)
                return
            await out(message)

        try:
            await app(scope, receive, edged)
        except Exception as exc:  # noqa: BLE001 - the edge: every unexpected failure ends here
            # the path carries UIDs only (query strings, which may hold names, are left out)
            log.error("unexpected error on %s %s: %s", scope.get("method"), scope.get("path"), summary(exc))
            if not started:
                await out({"type": "http.response.start", "status": 500, "headers": [
                    (b"content-type", b"application/json"), (b"content-length", str(len(_500)).encode())]})
                await out({"type": "http.response.body", "body": _500})


def _has(headers: Any, name: bytes) -> bool:
    return any(k.lower() == name for k, _ in headers)


def _vary_merged(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`headers` with Accept-Encoding in their Vary (coding._add_vary's rule: not after `*`)."""
    out = []
    for k, v in headers:
        if k.lower() == b"vary" and b"accept-encoding" not in v.lower() and v.strip() != b"*":
            v = v + b", Accept-Encoding" if v.strip() else b"Accept-Encoding"
        out.append((k, v))
    return out
