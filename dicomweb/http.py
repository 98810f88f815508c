"""HTTP helpers shared by the transactions: base URLs, Accept parsing, multipart writing, ETags."""
from __future__ import annotations

import functools
import hashlib
import math
import os
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field

from starlette.requests import Request

from yunying.errors import InvalidQuery
from yunying.pixels.negotiate import _split as split_quoted

DICOMWEB_ROOT = "/dicomweb"


# the request headers base_url reads, and their place in its cache key
_BASE_HEADERS = {b"forwarded": 0, b"x-forwarded-proto": 1, b"x-forwarded-host": 2, b"host": 3,
                 b"x-forwarded-prefix": 4}


def base_url(request: Request) -> str:
    """The DICOMweb root as the client sees it, honouring Forwarded / X-Forwarded-* (RFC 7239).

    One pass over the raw headers and a cache keyed by what they say: every QIDO-RS answer and
    every frame names it, and five Headers look-ups plus the parsing cost ~5 us of each."""
    found: list[bytes | None] = [None] * 5
    for k, v in request.scope["headers"]:
        i = _BASE_HEADERS.get(k)
        if i is not None and found[i] is None:
            found[i] = v
    if found[3] is None:  # no Host (HTTP/1.0): the server's address, as Starlette's URL has it
        found[3] = f"{request.url.hostname}:{request.url.port}".encode()
    return _base_url(request.scope.get("scheme", "http"), *found)


@functools.lru_cache(maxsize=256)
def _base_url(scheme: str, forwarded: bytes | None, xproto: bytes | None, xhost: bytes | None,
              host: bytes | None, xprefix: bytes | None) -> str:
    proto = found_host = None
    if forwarded:
        first = forwarded.decode("latin-1").split(",")[0]
        for pair in first.split(";"):
            name, _, value = pair.strip().partition("=")
            value = value.strip('"')
            if name.lower() == "proto":
                proto = value
            elif name.lower() == "host":
                found_host = value
    proto = proto or _text(xproto).split(",")[0].strip() or scheme
    where = found_host or _text(xhost).split(",")[0].strip() or _text(host)
    prefix = _text(xprefix).rstrip("/")
    return f"{proto}://{where}{prefix}{DICOMWEB_ROOT}"


def _text(value: bytes | None) -> str:
    return value.decode("latin-1") if value else ""


@dataclass
class MediaRange:
    """One entry of an Accept header."""

    type: str
    params: dict[str, str] = field(default_factory=dict)
    q: float = 1.0


# one splitter of header values (quoted strings kept whole) for the face and the pixel library
_split = split_quoted


def parse_accept(header: str | None) -> list[MediaRange]:
    """Media ranges by descending q (stable); an absent header means */*."""
    if not header or not header.strip():
        return [MediaRange("*/*")]
    ranges: list[MediaRange] = []
    invalid: list[str] = []
    for item in _split(header, ","):
        parts = _split(item, ";")
        if not parts or "/" not in parts[0]:
            invalid.append(item)  # ignored beside valid ranges (RFC 9110 12.5.1; issue 10 part 10)
            continue
        mtype = parts[0].lower()
        params: dict[str, str] = {}
        q: float | None = 1.0
        for p in parts[1:]:
            name, _, value = p.partition("=")
            name, value = name.strip().lower(), value.strip().strip('"')
            if name == "q":
                q = _weight(value)
            else:
                params[name] = value
        if q is None:  # a malformed weight makes the range invalid: ignored as the others are
            invalid.append(item)
            continue
        ranges.append(MediaRange(mtype, params, q))
    ranges = [r for r in ranges if r.q > 0]
    if not ranges:
        raise InvalidQuery("Accept", f"{invalid[0]!r} is not a media range" if invalid else "no media range")
    return sorted(ranges, key=lambda r: -r.q)


def _weight(value: str) -> float | None:
    """A q value (RFC 9110 12.4.2: 0 to 1, three decimals at most), or None when malformed."""
    try:
        q = float(value)
    except ValueError:
        return None
    return q if 0 <= q <= 1 else None


def media_matches(pattern: str, concrete: str) -> bool:
    """Whether an Accept media range covers a concrete media type."""
    if pattern in ("*/*", concrete):
        return True
    return pattern.endswith("/*") and concrete.startswith(pattern[:-1])


def new_boundary() -> str:
    """A multipart boundary that cannot occur in DICOM payload by chance."""
    return "yunying-" + os.urandom(12).hex()


def part_header(boundary: str, content_type: str, location: str | None = None) -> bytes:
    """The delimiter and headers opening one part (RFC 2387)."""
    head = f"--{boundary}\r\nContent-Type: {content_type}\r\n"
    if location:
        head += f"Content-Location: {location}\r\n"
    return (head + "\r\n").encode()


def closing(boundary: str) -> bytes:
    """The closing delimiter of a multipart body."""
    return f"\r\n--{boundary}--\r\n".encode()


async def multipart_body(boundary: str, parts: AsyncIterator[tuple[str, bytes, str | None]]) -> AsyncIterator[bytes]:
    """Stream parts (content type, bytes, location) as one multipart/related body."""
    first = True
    async for ctype, body, location in parts:
        yield (b"" if first else b"\r\n") + part_header(boundary, ctype, location)
        yield body
        first = False
    if first:
        yield f"--{boundary}--\r\n".encode()
    else:
        yield closing(boundary)


def etag(digests: Iterable[str], *extra: str) -> str:
    """A strong validator for a resource made of stored versions."""
    h = hashlib.sha256()
    for d in digests:
        h.update(d.encode())
    for e in extra:
        h.update(b"|" + e.encode())
    return '"' + h.hexdigest()[:32] + '"'


def not_modified(request: Request, tag: str) -> bool:
    """If-None-Match (RFC 9110 13.1.2) names the current ETag."""
    header = request.headers.get("if-none-match")
    if not header:
        return False
    return header.strip() == "*" or tag in [t.strip().removeprefix("W/") for t in header.split(",")]


CACHE_CONTROL = "private, max-age=3600"


def warning_header(*texts: str) -> str:
    """A Warning header (RFC 7234 5.5, PS3.18 8.3.4.1): code 299, printable ASCII only."""
    clean = ["".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "'" if c == '"' else " " for c in t)[:400]
             for t in texts]
    return ", ".join(f'299 yunying "{t}"' for t in clean)


def number_param(query: Mapping[str, str], name: str, low: float, high: float,
                 whole: bool = False) -> float | None:
    """A numeric query parameter in [low, high] (absent or empty: None); InvalidQuery names it."""
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise InvalidQuery(name, f"{raw!r} is not a number") from None
    if not math.isfinite(value) or not low <= value <= high or (whole and value != int(value)):
        raise InvalidQuery(name, f"must be {'a whole number ' if whole else ''}from {low:g} to {high:g}")
    return value
