"""yunying.coalesce: an answer's head and body leave in one write, nothing reordered or lost."""
from __future__ import annotations

import asyncio
import socket
from typing import Any

from benchmarks.net import YunyingServer
from yunying.coalesce import COALESCE_MAX, CoalescingTransport


class Recorder:
    """A transport that records what it is asked to do."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def write(self, data: bytes) -> None:
        self.calls.append(("write", data))

    def writelines(self, data: Any) -> None:
        self.calls.append(("writelines", list(data)))

    def close(self) -> None:
        self.calls.append(("close", None))

    def abort(self) -> None:
        self.calls.append(("abort", None))

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0


def run(steps: Any) -> Recorder:
    async def main() -> Recorder:
        rec = Recorder()
        await steps(CoalescingTransport(rec, asyncio.get_running_loop()))  # type: ignore[arg-type]
        await asyncio.sleep(0)  # one more step: what was held goes out
        return rec
    return asyncio.run(main())


def test_head_and_body_of_one_step_leave_in_one_writelines() -> None:
    async def steps(t: CoalescingTransport) -> None:
        t.write(b"HTTP/1.1 200 OK\r\n\r\n")
        t.write(b"body")
    assert run(steps).calls == [("writelines", [b"HTTP/1.1 200 OK\r\n\r\n", b"body"])]


def test_a_lone_write_goes_out_at_the_end_of_the_step() -> None:
    async def steps(t: CoalescingTransport) -> None:
        t.write(b"head")
        assert t.get_write_buffer_size() == 4  # held, and counted as buffered (flow control)
        await asyncio.sleep(0)
        t.write(b"chunk")  # a later step: held again, then sent
    assert run(steps).calls == [("write", b"head"), ("write", b"chunk")]


def test_close_sends_what_is_held_first_and_abort_drops_it() -> None:
    async def closing(t: CoalescingTransport) -> None:
        t.write(b"last")
        t.close()
    assert run(closing).calls == [("write", b"last"), ("close", None)]

    async def aborting(t: CoalescingTransport) -> None:
        t.write(b"dropped")
        t.abort()
    assert run(aborting).calls == [("abort", None)]


def test_other_calls_reach_the_transport() -> None:
    async def steps(t: CoalescingTransport) -> None:
        assert t.is_closing() is False
        t.write(b"")  # nothing to send: nothing held
    assert run(steps).calls == []


def test_pipelined_answers_arrive_whole_and_in_order(server: YunyingServer) -> None:
    """Two requests in one packet on one connection, through the real server: two complete
    answers, in order (the second one's head must not overtake the first one's body)."""
    host, port = server.http_url.removeprefix("http://").split(":")
    auth = server.headers["Authorization"]
    one = f"GET /dicomweb/studies?limit=1 HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n"
    two = f"GET /dicomweb/nothing-here HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall((one + two).encode())
        got = b""
        while got.count(b"HTTP/1.1 ") < 2 or not got.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            assert chunk, got
            got += chunk
    first, second = got.split(b"HTTP/1.1 ")[1:]
    assert first.startswith(b"200 ") and b"\r\n\r\n[" in first
    head, body = first.split(b"\r\n\r\n", 1)
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    assert len(body) == length
    assert second.startswith(b"404 ")


def test_a_large_body_follows_its_head_in_a_write_of_its_own() -> None:
    big = b"x" * (COALESCE_MAX + 1)

    async def steps(t: CoalescingTransport) -> None:
        t.write(b"head")
        t.write(big)
    assert run(steps).calls == [("write", b"head"), ("write", big)]
