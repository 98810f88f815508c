"""dicomweb.edge enters Digests and ContentCoding only for a request they can act on (issue 11's
cost target): whatever it skips, the answer is the one the three layers in a row gave, byte for
byte and header for header, plus the security headers."""
from __future__ import annotations

import asyncio
import gzip
import itertools
from typing import Any

import pytest
from starlette.responses import Response

from dicomweb.coding import ContentCoding
from dicomweb.edge import Edge
from dicomweb.hardening import Digests

BODY = b'{"00080020": {"vr": "DA"}}' * 300  # compressible, over coding's 1 KiB minimum
SECURITY = {b"x-content-type-options", b"referrer-policy", b"cross-origin-resource-policy"}


def answer(kind: str) -> Any:
    async def app(scope: dict, receive: Any, send: Any) -> None:
        if kind == "json":
            response = Response(BODY, media_type="application/json", headers={"ETag": '"t1"'})
        elif kind == "coded":  # as the frame route sends a browser's frame, coded and kept
            response = Response(gzip.compress(BODY), media_type="application/octet-stream",
                                headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding", "ETag": 'W/"t2"'})
        elif kind == "304":
            response = Response(status_code=304, headers={"ETag": '"t1"'})
        elif kind == "404":
            response = Response(b'{"status": 404}', status_code=404, media_type="application/json")
        else:
            raise RuntimeError("a handler failing")
        await response(scope, receive, send)
    return app


def run(app: Any, scope: dict) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    asyncio.run(app(dict(scope, headers=list(scope["headers"])), receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(bytes(m.get("body", b"")) for m in sent if m["type"] == "http.response.body")
    return start["status"], sorted((k.lower(), v) for k, v in start.get("headers", [])), body


CODINGS = [None, b"gzip, deflate, br, zstd", b"identity", b"gzip;q=0, identity", b"br;q=0, identity;q=0, *;q=0"]


@pytest.mark.parametrize(("coding", "kind"), itertools.product(CODINGS, ["json", "coded", "304", "404"]))
@pytest.mark.parametrize("extra", [[], [(b"if-none-match", b'"t1"')], [(b"want-repr-digest", b"sha-256=1")]])
@pytest.mark.parametrize(("method", "path"), [("GET", "/dicomweb/studies"), ("HEAD", "/dicomweb/studies"),
                                              ("GET", "/dicomweb/studies/1.2.3")])
def test_the_edge_answers_as_the_three_layers_did(coding: bytes | None, kind: str, extra: list, method: str,
                                                  path: str) -> None:
    headers = [(b"host", b"archive"), *extra] + ([(b"accept-encoding", coding)] if coding else [])
    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": headers}
    app = answer(kind)
    status, got, body = run(Edge(app), scope)
    want_status, want, want_body = run(Digests(ContentCoding(app)), scope)
    assert (status, body) == (want_status, want_body)
    assert [h for h in got if h[0] not in SECURITY] == want
    assert SECURITY <= {k for k, _ in got}  # on every answer, 406 included


def test_a_failing_handler_answers_500_with_the_security_headers() -> None:
    scope = {"type": "http", "method": "GET", "path": "/dicomweb/studies", "headers": [
        (b"accept-encoding", b"gzip")]}
    status, headers, body = run(Edge(answer("fail")), scope)
    assert status == 500 and b"internal error" in body
    assert SECURITY <= {k for k, _ in headers}
