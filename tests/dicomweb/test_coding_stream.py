"""ContentCoding on a streamed answer, under uvicorn: parts leave as they are made, and a stream
that fails half-way reaches the client as a broken transfer, never as a shorter valid answer."""
from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import brotli
import httpx
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from benchmarks.net import free_port
from dicomweb.coding import ContentCoding

CHUNK = b'{"00080018":{"vr":"UI","Value":["1.2.3.4.5.6.7.8.9"]}},' * 2000  # ~110 kB per part
released = threading.Event()


async def streaming_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Sends one part, waits (up to 5 s) until the client has seen bytes, then ends or fails."""
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/dicom+json"), (b"etag", b'"v1"')]})
    await send({"type": "http.response.body", "body": b"[" + CHUNK, "more_body": True})
    deadline = time.monotonic() + 5
    while not released.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    if scope["path"] == "/fail":
        raise RuntimeError("the disk went away half-way")
    await send({"type": "http.response.body", "body": CHUNK + b"{}]", "more_body": False})


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(ContentCoding(streaming_app), host="127.0.0.1", port=port,
                                           log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_encoded_parts_leave_before_the_answer_is_complete(base: str) -> None:
    released.clear()
    with httpx.stream("GET", base + "/ok", headers={"Accept-Encoding": "br"}, timeout=30) as resp:
        assert resp.headers["content-encoding"] == "br" and "content-length" not in resp.headers
        assert resp.headers["etag"] == 'W/"v1"'
        chunks = resp.iter_raw()
        first = next(chunks)
        early = not released.is_set()  # the server is still holding the rest back
        released.set()
        body = first + b"".join(chunks)
    assert early and first
    assert brotli.decompress(body) == b"[" + CHUNK + CHUNK + b"{}]"


def test_a_stream_failing_half_way_is_a_broken_transfer(base: str) -> None:
    released.set()
    with pytest.raises(httpx.HTTPError), \
            httpx.stream("GET", base + "/fail", headers={"Accept-Encoding": "br"}, timeout=30) as resp:
        b"".join(resp.iter_bytes())
