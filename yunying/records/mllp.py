"""The MLLP listener (HL7 v2 Minimal Lower Layer Protocol): <VT> message <FS><CR>, one ACK per
message, on an asyncio loop of its own thread; framing by python-hl7's MLLPStreamReader.

Messages of one connection are handled in order; handling (the store's transaction) runs in the
loop's default executor so a slow database does not stall other connections.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import threading
from asyncio import IncompleteReadError, LimitOverrunError

from hl7.mllp import InvalidBlockError
from hl7.mllp.streams import MLLPStreamReader, StreamReaderProtocol

from yunying.records.hl7in import Hl7Handler

log = logging.getLogger("yunying.records.hl7")
SB, EB, CR = b"\x0b", b"\x1c", b"\x0d"
MAX_MESSAGE = 16 << 20  # a report with a PDF fits; bigger is refused by closing the connection


class MllpListener:
    """`start()` binds and returns the port; `stop()` closes and waits."""

    def __init__(self, handler: Hl7Handler, host: str = "127.0.0.1", port: int = 2575,
                 allow: list[str] | None = None) -> None:
        self.handler, self.host, self.port = handler, host, port
        # MLLP has no authentication of its own: only these senders may change patient records
        self.allow = [ipaddress.ip_network(n, strict=False) for n in (allow or ["127.0.0.1", "::1"])]
        self.refused = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="mllp", daemon=True)

    def start(self) -> int:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._serve(), self._loop)
        self._server = fut.result(timeout=10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def _serve(self) -> asyncio.Server:
        loop = asyncio.get_running_loop()

        def factory() -> StreamReaderProtocol:
            reader = MLLPStreamReader(limit=MAX_MESSAGE)
            return StreamReaderProtocol(reader, lambda r, w: self._client(reader, w))

        return await loop.create_server(factory, self.host, self.port, reuse_address=True)

    async def _client(self, reader: MLLPStreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        sock = writer.get_extra_info("socket")
        if sock is not None:  # one small ACK per message: no Nagle delay (measured-facts.md)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sender = f"{peer[0]}:{peer[1]}" if peer else ""
        if not peer or not any(ipaddress.ip_address(peer[0].split("%")[0]) in net for net in self.allow):
            self.refused += 1
            log.warning("MLLP: connection from %s refused (not in hl7_allow)", peer[0] if peer else "?")
            writer.close()
            return
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    block = await reader.readblock()
                except (IncompleteReadError, ConnectionError):
                    break  # the client closed the connection
                except (InvalidBlockError, LimitOverrunError, ValueError):
                    log.info("MLLP: a malformed or oversized block from %s; connection closed", sender)
                    break
                answer = await loop.run_in_executor(None, self.handler.handle, block, sender)
                writer.write(SB + answer + EB + CR)
                await writer.drain()
        finally:
            writer.close()

    def stop(self) -> None:
        if self._server is not None:
            server = self._server

            async def close() -> None:
                server.close()
                await server.wait_closed()
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
