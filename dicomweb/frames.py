"""WADO-RS frames (PS3.18 10.4.1.1.2 / 8.7.3.5): each frame read from its own chunk, streamed."""
from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
from pydicom.uid import UID
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from index.model import InstanceRow
from yunying.archive import Archive
from yunying.errors import InvalidQuery, NotAcceptable, UnknownResource
from dicomweb.http import (CACHE_CONTROL, MediaRange, base_url, etag, media_matches, multipart_body,
                           new_boundary, not_modified, parse_accept)
from dicomweb.wado import EXPLICIT_LE, NATIVE, _pixels, can_produce


def _frame_numbers(text: str) -> list[int]:
    try:
        numbers = [int(n) for n in text.split(",")]
    except ValueError:
        raise InvalidQuery("frames", f"{text!r} is not a list of frame numbers") from None
    if not numbers or any(n < 1 for n in numbers):
        raise InvalidQuery("frames", "frame numbers start at 1")
    return numbers


def _frame_choice(ranges: list[MediaRange], row: InstanceRow) -> tuple[str, str, bool]:
    """(media type, transfer syntax, multipart) for frames (PS3.18 8.7.3.5, Table 8.7.3-5)."""
    stored = UID(row.transfer_syntax)
    for r in ranges:
        multipart = r.type == "multipart/related"
        inner = r.params.get("type", "application/octet-stream").lower() if multipart else r.type
        ts = r.params.get("transfer-syntax")
        if media_matches(inner, "application/octet-stream") or inner == "*/*":
            if ts == "*":
                return "application/octet-stream", str(stored if row.pixel_form == "encapsulated" else EXPLICIT_LE), \
                    multipart or inner == "*/*"
            if (ts in (None, EXPLICIT_LE)) and (row.pixel_form != "encapsulated" or can_produce(row, EXPLICIT_LE)):
                return "application/octet-stream", EXPLICIT_LE, multipart or inner == "*/*"
        elif row.pixel_form == "encapsulated" and inner == _media_of(stored) and ts in (None, "*", str(stored)):
            return inner, str(stored), multipart
    raise NotAcceptable("no acceptable frame representation for this instance")


def _render_range(r: MediaRange) -> str:
    return "; ".join([r.type] + [f'{k}="{v}"' for k, v in r.params.items()] + ([f"q={r.q}"] if r.q != 1 else []))


def _media_of(ts: UID) -> str:
    name = ts.name.lower()
    if "jpeg-ls" in name:
        return "image/jls"
    if "high-throughput" in name or "htj2k" in name:
        return "image/jphc"
    if "jpeg 2000" in name:
        return "image/jp2"
    if "jpeg" in name:
        return "image/jpeg"
    return "application/octet-stream"


def _frame_bytes(archive: Archive, row: InstanceRow, number: int, ts: str) -> bytes:
    frame = archive.read_frame(row, number)
    if isinstance(frame, np.ndarray):
        return frame.tobytes()
    if row.pixel_form == "encapsulated" and UID(ts) != UID(row.transfer_syntax):
        px = _pixels()
        header = archive.read_header(row)
        info = px.FrameInfo.from_dataset(header)
        arr = px.decode_frame(frame, info, row.transfer_syntax)
        if UID(ts) in NATIVE:
            return np.ascontiguousarray(arr).astype(info.dtype(), copy=False).tobytes()
        return px.encode_frame(arr, info, ts)[0]
    return frame


async def frames(request: Request) -> Response:
    """GET .../instances/{sop}/frames/{list}."""
    archive: Archive = request.app.state.archive
    p = request.path_params
    numbers = _frame_numbers(p["frames"])
    row = (await run_in_threadpool(archive.instances, p["study"], p["series"], p["sop"]))[0]
    if row.pixel_form == "none":
        raise UnknownResource(f"instance {row.sop} has no pixel data")
    for n in numbers:
        if n > row.frames:
            raise UnknownResource(f"instance {row.sop} has {row.frames} frame(s), not {n}")
    media, ts, multipart = _frame_choice(parse_accept(request.headers.get("accept")), row)
    tag = etag([row.digest], p["frames"], media, ts)
    headers = {"ETag": tag, "Cache-Control": CACHE_CONTROL}
    if not_modified(request, tag):
        return Response(status_code=304, headers=headers)
    ctype = f"{media}; transfer-syntax={ts}"
    if not multipart:
        if len(numbers) != 1:
            raise NotAcceptable("a single-part response holds one frame; ask for multipart/related")
        data = await run_in_threadpool(_frame_bytes, archive, row, numbers[0], ts)
        return Response(data, media_type=ctype, headers=headers)
    base = base_url(request)

    async def parts() -> AsyncIterator[tuple[str, bytes, str | None]]:
        for n in numbers:
            data = await run_in_threadpool(_frame_bytes, archive, row, n, ts)
            yield ctype, data, f"{base}/studies/{row.study}/series/{row.series}/instances/{row.sop}/frames/{n}"

    boundary = new_boundary()
    return StreamingResponse(multipart_body(boundary, parts()), headers=headers,
                             media_type=f'multipart/related; type="{media}"; boundary={boundary}')


