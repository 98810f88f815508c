"""The whole-instance multipart answer (WADO-RS study / series / instance) streamed fast (issue 9
part 4): reads run ahead of the socket, and a repeated answer streams with its digest known.

Reading a stored CT slice (Blosc-LZ4 chunk, header blob, join) costs ~1.1 ms of CPU; sending
and hashing it are separate work. The old loop read one instance, then sent it, then read the
next: one core at a time. `read_ahead` keeps the next instances' reads running in worker threads
(the decompressor and file reads release the GIL) while the event loop sends the current one.

Downloads carry `Repr-Digest` (issue 12), which `hardening.Digests` computes by holding the
whole body before the headers go out when the client asks, or by hashing a first answer on the
way when it does not. The body of a retrieve is a function of what the ETag
covers plus the Accept header, the base URL and any patient correction on retrieval, once the
boundary is derived from them too (`boundary_for`); so its digest is kept (`DigestMemo`) and a
repeat sends headers at once with `Content-Length` and `Repr-Digest`, streaming without a spool.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import threading
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from dicomweb.http import closing, part_header
from dicomweb.prepared import Part, Prepared

T = TypeVar("T")
R = TypeVar("R")

Buffer = bytes | memoryview
COALESCE = 64 << 10  # pieces smaller than this are joined with the framing; larger ones go as they are
AHEAD = 2  # instances read ahead of the one being sent: enough to keep a core busy, bounded memory
# a first answer is held whole until its digest is known (hardening.Digests), so nothing waits on
# the socket while it is read: more reads in flight keep both cores on it
GATHER_AHEAD = 6
_SECRET = os.urandom(16)  # boundaries are not predictable from outside (a part cannot forge one)


def boundary_for(key: tuple[Any, ...]) -> str:
    """A boundary fixed for one body's inputs (so the body, and its digest, repeat exactly)."""
    mac = hmac.new(_SECRET, repr(key).encode(), hashlib.sha256).hexdigest()[:24]
    return "yunying-" + mac


# reads of whole-instance answers: a plain executor costs the event loop ~1/3 of what anyio's
# to_thread does per hand-off (cancel scopes, a limiter, a queue per worker), once per instance
_READERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="wado-read")


async def read_ahead(items: Iterable[T], read: Callable[[T], R], depth: int = AHEAD) -> AsyncIterator[tuple[T, R]]:
    """(item, read(item)) in order, with up to `depth` reads running in worker threads ahead."""
    it = iter(items)
    loop = asyncio.get_running_loop()
    pending: deque[tuple[T, asyncio.Future[R]]] = deque()

    def more() -> None:
        for item in it:
            pending.append((item, loop.run_in_executor(_READERS, read, item)))
            if len(pending) > depth:
                return

    try:
        more()
        while pending:
            item, future = pending.popleft()
            result = await future
            more()
            yield item, result
    finally:  # a client gone mid-answer: let the reads in flight finish (they use the spool), drop their results
        if pending:
            await asyncio.gather(*(f for _, f in pending), return_exceptions=True)


def pieces_of(prepared: Prepared, part: Part) -> tuple[list[Buffer], str]:
    """One part's Part 10 bytes as pieces (header slices, then each native frame's own decoded
    buffer): no re-joined PixelData and no joined file, three 0.5 MB copies fewer per CT slice."""
    row = part.row
    if part.offset < 0 and part.transfer_syntax in (None, row.transfer_syntax):
        return list(prepared.archive.read_part10_parts(row)), row.transfer_syntax
    data, used = prepared.read(part)
    return [data], used


def part_size(prepared: Prepared, part: Part) -> int | None:
    """The exact byte count of one part before it is read (in a worker thread: a stat per
    instance), or None when only reading tells: a converted part has its spool length; one sent
    as stored in pieces, the sizes of what is stored (`Archive.part10_size`)."""
    if part.offset >= 0:
        return part.length
    if part.transfer_syntax not in (None, part.row.transfer_syntax):
        return None
    return prepared.archive.part10_size(part.row)


def multipart_length(boundary: str, heads: list[bytes], sizes: list[int]) -> int:
    """Content-Length of `multipart_pieces(boundary, …)` for parts with these headers and sizes.

    Sent with the first answer too (issue 9 part 4): without a length uvicorn frames the body
    in chunks, joining each chunk's framing with the data, a copy of every 512 KB frame on the
    event loop (~0.1 s of CPU for a 158 MB CT series)."""
    if not heads:
        return len(f"--{boundary}--\r\n")
    return sum(map(len, heads)) + sum(sizes) + 2 * (len(heads) - 1) + len(closing(boundary))


async def multipart_pieces(boundary: str, parts: AsyncIterator[tuple[str, list[Buffer], str | None]]
                           ) -> AsyncIterator[Buffer]:
    """`http.multipart_body` for parts given in pieces: small pieces are joined with the part
    headers and delimiters into one write, large ones are passed on without a copy."""
    small: list[Buffer] = []
    first = True
    async for ctype, pieces, location in parts:
        small.append((b"" if first else b"\r\n") + part_header(boundary, ctype, location))
        first = False
        for piece in pieces:
            if len(piece) >= COALESCE:
                yield b"".join(small)
                small = []
                yield piece
            elif len(piece):
                small.append(piece)
    small.append(f"--{boundary}--\r\n".encode() if first else closing(boundary))
    yield b"".join(small)


class DigestMemo:
    """Size and digests of answers already sent once, by the inputs that fix their bytes."""

    def __init__(self, entries: int = 4096) -> None:
        self.entries = entries
        self._known: OrderedDict[str, dict[bytes, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, boundary: str) -> dict[bytes, bytes] | None:
        with self._lock:
            headers = self._known.get(boundary)
            if headers is not None:
                self._known.move_to_end(boundary)
            return headers

    def recorder(self, boundary: str) -> Callable[[list[tuple[bytes, bytes]]], None]:
        """What `hardening.Digests` calls with the headers it computed for this body."""
        def record(headers: list[tuple[bytes, bytes]]) -> None:
            keep = {k.lower(): v for k, v in headers
                    if k.lower() in (b"content-length", b"repr-digest", b"content-md5")}
            with self._lock:
                known = self._known.setdefault(boundary, {})
                known.update(keep)
                self._known.move_to_end(boundary)
                while len(self._known) > self.entries:
                    self._known.popitem(last=False)
        return record
