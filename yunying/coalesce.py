"""One send(2) per small HTTP answer instead of two (issue 11's cost target).

uvicorn writes an answer's status line and headers as soon as the app sends
`http.response.start`, and the body with the next message: two system calls, and on a busy
machine two wake-ups of the client, which parses the head while the body is still on its way.
A py-spy profile of a QIDO-RS loop put ~80 us per query in the head's write(2) alone (the
server's thread runnable, the client running), ~240 us once the answer carried the security,
Vary and request-id headers of issues 11-12.

`CoalescingTransport` holds one write back until the next write or the end of the event loop's
current step, whichever comes first, and then sends what it holds and the new bytes (up to
64 KiB) with one `writelines` (one writev(2), no copy). A head and the body that follows it in the same step (every
`Response`: start and body are sent without yielding) leave together; a streamed answer's chunks
still go out as they come, each at most one step late. Nothing is reordered or dropped: close()
and abort() send what is held first (abort drops it, as the transport's own buffer would be).
"""
from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HIGH_WATER_LIMIT, HttpToolsProtocol

# a larger body (a frame: 525 kB) is written as uvicorn wrote it, after its head: one call less
# is nothing beside copying it, and curl's frames/s A/B could not tell the two apart
COALESCE_MAX = 64 << 10


class CoalescingTransport:
    """Wraps a transport: at most one write held back, sent with the next one or at the end of the step."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is None:
            if data:
                self._held = data
                self._loop.call_soon(self.flush)
            return
        self._held = None
        if len(data) > COALESCE_MAX:  # a frame, a file: two writes, as uvicorn made them
            self._transport.write(held)
            self._transport.write(data)
            return
        self._transport.writelines((held, data))

    def flush(self) -> None:
        """Send what is held (called at the end of the step that wrote it)."""
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held)

    def writelines(self, data: Any) -> None:
        self.flush()
        self._transport.writelines(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + len(self._held or b"")

    def __getattr__(self, name: str) -> Any:  # is_closing, get_extra_info, pause_reading, set_protocol...
        return getattr(self._transport, name)


class CoalescingHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol writing through a CoalescingTransport."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]

    def on_body(self, body: bytes) -> None:
        """uvicorn 0.55's on_body, without its copies: it appended every received chunk to a
        bytearray and `receive()` copied that into bytes, two copies of each request body
        chunk (a STOW-RS CT slice: 1 MB of memmove per instance). A chunk the app has not read
        yet is held as the parser's own bytes, which `bytes()` in `receive()` returns as is;
        only when a second one arrives before the app reads are they joined."""
        cycle = self.cycle
        if (self.parser.should_upgrade() and self._should_upgrade()) or cycle.response_complete:
            return
        held = cycle.body
        if not held:
            cycle.body = body  # type: ignore[assignment]
        elif isinstance(held, bytes):
            cycle.body = bytearray(held) + body
        else:
            held += body
        if len(cycle.body) > HIGH_WATER_LIMIT:
            self.flow.pause_reading()
        cycle.message_event.set()
