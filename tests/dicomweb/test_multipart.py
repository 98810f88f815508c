"""The STOW multipart splitter against RFC 2046 and against python-multipart as a reference."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from python_multipart.multipart import MultipartParser

from dicomweb.multipart import MalformedMultipart, MultipartSplitter


class Sink:
    def __init__(self) -> None:
        self.parts: list[tuple[dict[bytes, bytes], bytes]] = []
        self._open = False

    def begin(self, headers: dict[bytes, bytes]) -> None:
        assert not self._open
        self.parts.append((headers, b""))
        self._open = True

    def data(self, chunk: bytes | memoryview) -> None:
        assert self._open
        headers, data = self.parts[-1]
        self.parts[-1] = (headers, data + chunk)

    def end(self) -> None:
        assert self._open
        self._open = False


def split(body: bytes, boundary: bytes, sizes: list[int] | None = None) -> list[tuple[dict[bytes, bytes], bytes]]:
    sink = Sink()
    splitter = MultipartSplitter(boundary, sink)
    pos, i = 0, 0
    while pos < len(body):
        n = sizes[i % len(sizes)] if sizes else len(body)
        splitter.feed(body[pos:pos + n])
        pos, i = pos + n, i + 1
    splitter.close()
    return sink.parts


def reference(body: bytes, boundary: bytes) -> list[bytes]:
    parts: list[bytes] = []
    cur: list[bytes] = []
    cbs = {"on_part_begin": lambda: cur.clear(),
           "on_part_data": lambda d, s, e: cur.append(d[s:e]),
           "on_part_end": lambda: parts.append(b"".join(cur))}
    parser = MultipartParser(boundary, cbs)  # type: ignore[arg-type]  # its callbacks are typed one by one
    parser.write(body)
    parser.finalize()
    return parts


def body_of(parts: list[bytes], boundary: bytes, preamble: bytes = b"", epilogue: bytes = b"") -> bytes:
    out = preamble + b"".join(b"--" + boundary + b"\r\nContent-Type: application/dicom\r\n\r\n" + p + b"\r\n"
                              for p in parts)
    return out + b"--" + boundary + b"--\r\n" + epilogue


def test_parts_headers_preamble_and_epilogue() -> None:
    body = body_of([b"one", b"", b"three\r\n--not-it\r\n"], b"XbX", preamble=b"ignored\r\n", epilogue=b"junk")
    parts = split(body, b"XbX")
    assert [d for _, d in parts] == [b"one", b"", b"three\r\n--not-it\r\n"]
    assert all(h == {b"content-type": b"application/dicom"} for h, _ in parts)


def test_transport_padding_and_a_part_without_headers() -> None:
    body = b"--b \t\r\n\r\nraw\r\n--b--"
    assert split(body, b"b") == [({}, b"raw")]


@pytest.mark.parametrize("body", [
    b"--XbX\r\nContent-Type: application/dicom\r\n\r\nno closing boundary",
    b"--XbX\r\nContent-Type: application/dicom\r\n\r\ndata\r\n--XbX",  # no close delimiter
    b"--XbX\r\nno colon here\r\n\r\ndata\r\n--XbX--",
    b"--XbXgarbage\r\n\r\ndata\r\n--XbX--",
    b"no boundary at all",
])
def test_malformed_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(MalformedMultipart):
        split(body, b"XbX")


def test_bad_boundary() -> None:
    with pytest.raises(MalformedMultipart):
        MultipartSplitter(b"", Sink())


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.binary(max_size=300).filter(lambda b: b"\r\n--bd" not in b + b"\r\n"), min_size=1, max_size=5),
       sizes=st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=8))
def test_any_chunking_gives_the_reference_parts(parts: list[bytes], sizes: list[int]) -> None:
    body = body_of(parts, b"bd")
    got = [d for _, d in split(body, b"bd", sizes)]
    assert got == parts == reference(body, b"bd")


def test_every_cut_into_three_chunks_gives_the_parts() -> None:
    """Part data goes out as views of the chunks, only a delimiter's start is buffered: every
    place a delimiter, a header or part data may be cut at must still give the same parts."""
    parts = [b"x\r\n-", b"", b"\r\n--b"]
    for body in (body_of(parts, b"bd"), body_of(parts, b"bd").removesuffix(b"\r\n")):  # may end at "--"
        _every_cut(body, parts)


def _every_cut(body: bytes, parts: list[bytes]) -> None:
    for i in range(1, len(body)):
        for j in range(i, len(body) + 1):
            sink = Sink()
            splitter = MultipartSplitter(b"bd", sink)
            for chunk in (body[:i], body[i:j], body[j:]):
                if chunk:
                    splitter.feed(chunk)
            splitter.close()
            assert [d for _, d in sink.parts] == parts, (i, j)
