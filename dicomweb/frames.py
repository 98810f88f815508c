"""WADO-RS frames (PS3.18 10.4.1.1.2, 8.7.3.5, Table 8.7.3-5): each frame from its own chunk, streamed.

Media negotiation is yunying.pixels' (negotiate_frame_media): application/octet-stream, image/jpeg,
image/jls, image/jp2, image/jphc, image/dicom-rle (and image/jxl), single part or multipart, each
part's Content-Type naming its transfer syntax. transfer-syntax=* keeps the stored bitstream
bit-exact; a lossy syntax is produced only when the client names it.
"""
from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from typing import Any

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from dicomweb.access import require_path_visible
from dicomweb.coding import weak
from dicomweb.frame_coding import cache_of, coded_body, wanted_coding
from dicomweb.http import (
    CACHE_CONTROL,
    base_url,
    closing,
    etag,
    multipart_body,
    not_modified,
    part_header,
)
from dicomweb.offload import off_loop
from dicomweb.wado_stream import boundary_for
from index.model import InstanceRow
from yunying.archive import Archive
from yunying.errors import InvalidQuery, NotAcceptable, UnknownResource
from yunying.pixels import (
    FrameInfo,
    UnsupportedTransfer,
    decode_frame_info,
    negotiate_frame_media,
    parse_accept,
    transcode_frame,
)
from yunying.pixels.display import display_header
from yunying.pixels.samples import to_signed
from yunying.pixels.syntaxes import NATIVE

_HEADERS: OrderedDict[str, tuple[Any, FrameInfo]] = OrderedDict()
_INFOS: OrderedDict[str, FrameInfo] = OrderedDict()
_DISPLAY: OrderedDict[str, dict[str, Any]] = OrderedDict()  # digest -> display_header of its JSON
_MISSED: OrderedDict[tuple[str, str], bool] = OrderedDict()  # series with one row lookup so far
_LOCK = threading.Lock()
_HEADERS_MAX = 128      # headers can be large (enhanced multi-frame): few kept
_INFOS_MAX = 50_000     # FrameInfo is small: frame requests never re-read a header
_DISPLAY_MAX = 4096     # a few hundred bytes each: re-windowing a slice reads nothing but pixels
_MISSED_MAX = 1024


def frame_numbers(text: str) -> list[int]:
    """PS3.18 8.3.2: a comma-separated list of 1-based frame numbers."""
    try:
        numbers = [int(n) for n in text.split(",")]
    except ValueError:
        raise InvalidQuery("frames", f"{text!r} is not a list of frame numbers") from None
    if not numbers or any(n < 1 for n in numbers):
        raise InvalidQuery("frames", "frame numbers start at 1")
    return numbers


def instance_row(archive: Archive, study: str, series: str, sop: str) -> InstanceRow:
    """The instance's row; the second index lookup in one series loads the whole series' rows.

    A viewer scrolling a series asks for every slice: one query for all of them (~5 ms for 300)
    instead of one per slice (~0.8 ms each); a single instance fetched alone costs one lookup.
    """
    row = archive.cached_row(study, series, sop)
    if row is not None:
        return row
    with _LOCK:
        warm = _MISSED.pop((study, series), None) is not None
        if not warm:
            _MISSED[(study, series)] = True
            while len(_MISSED) > _MISSED_MAX:
                _MISSED.popitem(last=False)
    if warm:
        try:
            archive.instances(study, series)  # fills the archive's row cache
        except UnknownResource:
            pass  # answered below, as for the first request: the same 404 for an unknown instance
    return archive.instance(study, series, sop)


def header_info(archive: Archive, row: InstanceRow) -> tuple[Any, FrameInfo]:
    """The stored header and its FrameInfo, cached by version digest."""
    with _LOCK:
        hit = _HEADERS.get(row.digest)
        if hit is not None:
            _HEADERS.move_to_end(row.digest)
            return hit
    header = archive.read_header(row)
    try:
        info = FrameInfo.from_dataset(header)
    except (AttributeError, TypeError, ValueError) as exc:
        raise NotAcceptable(f"instance {row.sop} has no usable Image Pixel module: {type(exc).__name__}") from None
    with _LOCK:
        _HEADERS[row.digest] = (header, info)
        _INFOS[row.digest] = info
        for cache, limit in ((_HEADERS, _HEADERS_MAX), (_INFOS, _INFOS_MAX)):
            while len(cache) > limit:
                cache.popitem(last=False)  # type: ignore[attr-defined]
    return header, info


def frame_info(archive: Archive, row: InstanceRow) -> FrameInfo:
    """The instance's FrameInfo (Image Pixel module), from a cache keyed by version digest."""
    image = row.extra.get("image")
    if image:  # kept at ingest (yunying.ingest.keep_image_module): no header read
        return _info_of(tuple(sorted(image.items())))
    with _LOCK:
        info = _INFOS.get(row.digest)
        if info is not None:
            _INFOS.move_to_end(row.digest)
            return info
    return header_info(archive, row)[1]


@functools.lru_cache(maxsize=4096)
def _info_of(items: tuple[tuple[str, Any], ...]) -> FrameInfo:
    return FrameInfo(**dict(items))


def samples_as_stored(arr: np.ndarray, info: FrameInfo) -> np.ndarray:
    """A stored native frame (unsigned, planar as received) as (rows, cols[, samples]) in its own dtype."""
    if arr.ndim == 3 and info.samples_per_pixel > 1 and arr.shape[0] == info.samples_per_pixel \
            and arr.shape[-1] != info.samples_per_pixel:
        arr = np.ascontiguousarray(arr.transpose(1, 2, 0))  # PlanarConfiguration 1 (PS3.3 C.7.6.3.1.3)
    want = info.dtype()
    if arr.dtype != want and arr.dtype.itemsize == want.itemsize:
        arr = arr.view(want)  # the same bits: signed samples keep their exact values
    return arr


def render_header(archive: Archive, row: InstanceRow) -> Any:
    """What render() reads as the header: stored JSON for plain greyscale images, else the parsed header."""
    with _LOCK:
        hit = _DISPLAY.get(row.digest)
        if hit is not None:
            _DISPLAY.move_to_end(row.digest)
            return hit
    header = display_header(archive.read_json(row)) if row.extra.get("image") else None
    if header is None:  # colour, tables, overlays, functional groups: the parsed header
        return header_info(archive, row)[0]
    with _LOCK:
        _DISPLAY[row.digest] = header
        while len(_DISPLAY) > _DISPLAY_MAX:
            _DISPLAY.popitem(last=False)
    return header


def display_frame(archive: Archive, row: InstanceRow, number: int) -> tuple[np.ndarray, str, Any]:
    """Frame `number` decoded for display: (array, its photometric, header); signed as pydicom shows it."""
    header = render_header(archive, row)
    arr, photometric = decode_for_display(archive.read_frame(row, number), frame_info(archive, row), row)
    return arr, photometric, header


def decode_for_display(stored: bytes | np.ndarray, info: FrameInfo, row: InstanceRow) -> tuple[np.ndarray, str]:
    """A stored frame (read_frame's answer) as display samples, and their photometric interpretation."""
    try:
        if isinstance(stored, np.ndarray):
            arr = samples_as_stored(stored, info)
            if info.pixel_representation and info.bits_stored < info.bits_allocated:
                arr = to_signed(arr, info)  # PS3.5 8.1.1: bits above HighBit are not part of the value
            return arr, info.photometric
        arr, out = decode_frame_info(bytes(stored), info, row.transfer_syntax)
    except UnsupportedTransfer as exc:
        raise NotAcceptable(f"instance {row.sop} cannot be rendered: {exc.reason}") from None
    return arr, out.photometric


def frame_payload(archive: Archive, row: InstanceRow, number: int,
                  choices: Sequence[tuple[str, str]]) -> tuple[str, str, bytes | memoryview]:
    """(media type, transfer syntax, bytes) of one frame: the first negotiated choice it encodes into."""
    info = frame_info(archive, row)
    stored = archive.read_frame(row, number)
    reasons = []
    for media, ts in choices:
        if ts in NATIVE and row.pixel_form != "encapsulated":
            # stored native: the bytes as stored, planar configuration and all (matches the metadata),
            # as the decoded chunk's own buffer (no 512 KB copy before the body is written)
            return media, ts, np.ascontiguousarray(stored).data.cast("B") if isinstance(stored, np.ndarray) \
                else bytes(stored)
        source: bytes | np.ndarray = samples_as_stored(stored, info) if isinstance(stored, np.ndarray) \
            else bytes(stored)
        try:
            data, _ = transcode_frame(source, info, row.transfer_syntax, ts)
        except UnsupportedTransfer as exc:
            reasons.append(f"{ts}: {exc.reason}")
            continue
        return media, ts, data
    raise NotAcceptable("no acceptable frame representation: " + "; ".join(reasons))


def _negotiate(accept: str, archive: Archive, row: InstanceRow) -> tuple[list[tuple[str, str]], bool]:
    """Negotiated (media, ts) choices, and whether the answer is multipart (PS3.18 8.7.3.5)."""
    return _choices(accept, row.transfer_syntax, frame_info(archive, row))


@functools.lru_cache(maxsize=1024)
def _choices(accept: str, stored_ts: str, info: FrameInfo) -> tuple[list[tuple[str, str]], bool]:
    """Cached per Accept header and image kind: a cine viewer sends the same Accept thousands of times."""
    choices = negotiate_frame_media(accept, stored_ts, info)
    if not choices:
        raise NotAcceptable("no acceptable frame representation for this instance (PS3.18 8.7.3.5)")
    ranges = parse_accept(accept)
    media = choices[0][0]
    # single part only when the client named that media type itself, not through a wildcard
    single = not choices[0].multipart and any(r.media_type == media and not r.multipart for r in ranges)
    return [tuple(c) for c in choices], not single  # type: ignore[misc]


def _prepare(archive: Archive, p: dict[str, str], numbers: list[int], accept: str
             ) -> tuple[InstanceRow, list[tuple[str, str]], bool, tuple[str, str, bytes | memoryview]]:
    """Everything before the status line in one worker-thread hop: row, choices, the first frame."""
    row = instance_row(archive, p["study"], p["series"], p["sop"])
    if row.pixel_form == "none":
        raise UnknownResource(f"instance {row.sop} has no pixel data")
    for n in numbers:
        if n > row.frames:
            raise UnknownResource(f"instance {row.sop} has {row.frames} frame(s), not {n}")
    choices, multipart = _negotiate(accept, archive, row)
    if not multipart and len(numbers) != 1:
        raise NotAcceptable("a single-part response holds one frame; ask for multipart/related")
    # the first frame is produced before the status line, so a frame that fits no choice is a 406
    return row, choices, multipart, frame_payload(archive, row, numbers[0], choices)


async def frames(request: Request) -> Response:
    """GET .../instances/{sop}/frames/{list}."""
    archive: Archive = request.app.state.archive
    p = request.path_params
    numbers = frame_numbers(p["frames"])
    accept_raw: bytes | None = None
    revalidating = False
    for k, v in request.scope["headers"]:  # one pass, not a Headers look-up (a scan) for each
        if k == b"accept" and accept_raw is None:
            accept_raw = v
        elif k == b"if-none-match" and v:
            revalidating = True
    accept = accept_raw.decode("latin-1") if accept_raw else "*/*"
    await require_path_visible(request)
    base = base_url(request)
    # one frame in a content coding is encoded in the same worker-thread hop, and kept (frame_coding)
    coding, forced = wanted_coding(request) if len(numbers) == 1 else (None, False)
    if revalidating:
        coding = None  # a revalidation is usually a 304: the middleware codes the rare 200
    cache = cache_of(request) if coding else None

    def work() -> tuple[InstanceRow, list[tuple[str, str]], bool, tuple[str, str, bytes | memoryview], str,
                        bytes | None]:
        row, choices, multipart, first = _prepare(archive, p, numbers, accept)
        tag = etag([row.digest], p["frames"], "frames", *(f"{m}|{t}" for m, t in choices), str(multipart))
        coded = None
        if coding is not None and cache is not None:
            coded = coded_body(cache, (tag, base, coding), coding, forced, first[0],
                               lambda: b"".join(_pieces(row, first, multipart, tag, base, numbers[0])))
        return row, choices, multipart, first, tag, coded

    row, choices, multipart, first, tag, coded = await off_loop(work)
    headers = {"ETag": tag, "Cache-Control": CACHE_CONTROL}
    if revalidating and not_modified(request, tag):
        return Response(status_code=304, headers=headers)
    media, ts, data = first
    boundary = _boundary(tag, base)  # fixed by the inputs: a repeated answer (and its coding) repeats
    ctype = f'multipart/related; type="{media}"; boundary={boundary}' if multipart \
        else f"{media}; transfer-syntax={ts}"
    if coded is not None:
        headers.update({"ETag": weak(tag), "Content-Encoding": str(coding), "Vary": "Accept-Encoding"})
        return Response(coded, headers=headers, media_type=ctype)
    if len(numbers) == 1:  # the common cine request: one body, no streaming machinery
        return Pieces(_pieces(row, first, multipart, tag, base, numbers[0]), headers, ctype)
    where = f"{base}/studies/{row.study}/series/{row.series}/instances/{row.sop}/frames/"

    async def parts() -> AsyncIterator[tuple[str, bytes, str | None]]:
        yield f"{media}; transfer-syntax={ts}", bytes(data), where + str(numbers[0])
        for n in numbers[1:]:  # streamed part by part, each read from its own chunk
            m, t, d = await run_in_threadpool(frame_payload, archive, row, n, choices)
            yield f"{m}; transfer-syntax={t}", bytes(d), where + str(n)

    return StreamingResponse(multipart_body(boundary, parts()), headers=headers, media_type=ctype)


@functools.lru_cache(maxsize=4096)  # a viewer asks each frame again and again: ~4 us of HMAC each time
def _boundary(tag: str, base: str) -> str:
    return boundary_for((tag, base))


def _pieces(row: InstanceRow, first: tuple[str, str, bytes | memoryview], multipart: bool, tag: str, base: str,
            number: int) -> list[bytes | memoryview]:
    """The body of a one-frame answer: the frame, or one part around it (boundary_for, as frames() names it)."""
    media, ts, data = first
    if not multipart:
        return [data]
    boundary = _boundary(tag, base)
    where = f"{base}/studies/{row.study}/series/{row.series}/instances/{row.sop}/frames/{number}"
    return [part_header(boundary, f"{media}; transfer-syntax={ts}", where), data, closing(boundary)]


class Pieces(Response):
    """A body of a few pieces sent one after the other, never joined. Joining a 512 KB frame with
    its part header and closing boundary copied it once more per request: ~30 us on the event
    loop, or, done in the worker thread, ~130 us more of the workers' CPU per frame with 8
    clients (fresh 512 KB buffers page-faulted by several threads at once). uvicorn writes the
    pieces as they come (yunying.coalesce joins the small ones to their neighbours' writev)."""

    def __init__(self, pieces: list[bytes | memoryview], headers: dict[str, str], media_type: str) -> None:
        super().__init__(b"", headers=headers, media_type=media_type)
        self.pieces = pieces
        self.headers["content-length"] = str(sum(len(p) for p in pieces))

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        last = len(self.pieces) - 1
        for i, piece in enumerate(self.pieces):
            await send({"type": "http.response.body", "body": piece, "more_body": i < last})
