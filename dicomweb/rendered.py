"""WADO-RS rendered resources and thumbnails (PS3.18 10.4.1.1.3-4, 8.3.5) and server-side reformats.

Levels (PS3.18 10.4.1.1.3; the choices the standard leaves to the origin server are ours):
- instance: image/jpeg, image/png the first frame; image/gif every frame as a cine.
- frames/{list}: one frame -> one image; several -> multipart/related of rendered frames
  (image/jpeg, image/png) or one GIF cine of the listed frames (image/gif).
- series, study: multipart/related; type=image/... -> every image instance rendered, in
  instance order, streamed part by part; a single-part Accept -> the first image instance.
Thumbnails (10.4.1.1.4) are one small image: the middle image of the series (study: of its first
series with images), the first frame of an instance, the first listed frame; 128x128 unless a
viewport is given; kept in an in-memory LRU keyed by version digest and parameters.
"""
from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Hashable, Mapping
from dataclasses import dataclass
from functools import partial
from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from dicomweb.frames import (
    decode_for_display,
    display_frame,
    frame_info,
    frame_numbers,
    header_info,
    instance_row,
    render_header,
)
from dicomweb.http import (
    CACHE_CONTROL,
    base_url,
    etag,
    multipart_body,
    new_boundary,
    not_modified,
    warning_header,
)
from index.model import InstanceRow
from yunying.archive import Archive
from yunying.errors import InvalidQuery, NotAcceptable, UnknownResource
from yunying.pixels import (
    FrameInfo,
    RenderParams,
    decode_preview,
    negotiate_rendered_media,
    parse_accept,
    parse_render_params,
    render,
)
from yunying.pixels.codecs import CODEC_ERRORS
from yunying.pixels.frameinfo import UnsupportedTransfer
from yunying.pixels.geometry import SeriesGeometry, UnsuitableGeometry, plane_for
from yunying.pixels.reformat import render_reformat

log = logging.getLogger("yunying.rendered")

RENDER_KEYS = {"window", "viewport", "quality", "annotation"}
THUMBNAIL_SIDE = 128
_REFORMAT_KEYS = RENDER_KEYS | {"orientation", "position", "thickness", "mode", "u", "v"}
_RENDER_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError)


class ByteLRU:
    """A thread-safe LRU of rendered bytes, bounded by total size (thumbnails, small renders)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: Hashable, data: bytes) -> None:
        if len(data) > self.max_bytes // 8:
            return
        with self._lock:
            old = self._items.pop(key, None)
            self._size += len(data) - (len(old) if old else 0)
            self._items[key] = data
            while self._size > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self._size -= len(dropped)


CACHE = ByteLRU(64 << 20)  # keys start with a version digest: a replaced instance never hits


# -- request parsing ------------------------------------------------------------------------
def _params(query: Mapping[str, str], known: set[str]) -> tuple[RenderParams, dict[str, str]]:
    """Typed render parameters, and a Warning header for keys we ignore (PS3.18 8.3.4.1)."""
    params = parse_render_params(query)
    unknown = sorted(k for k in query if k not in known and k != "accept")
    headers = {"Warning": warning_header(*(f"{k} is not supported and was ignored" for k in unknown))} \
        if unknown else {}
    return params, headers


def _media(request: Request) -> tuple[str, bool]:
    """The rendered media type (PS3.18 8.7.4) and whether the client asked for multipart/related."""
    accept = request.headers.get("accept") or "*/*"
    media = negotiate_rendered_media(accept)
    if media is None:
        raise NotAcceptable("rendered resources are image/jpeg, image/png or image/gif (PS3.18 8.7.4)")
    multipart = any(r.multipart and r.media_type in (media, "*/*", "image/*") for r in parse_accept(accept))
    return media, multipart


def _key(params: RenderParams) -> str:
    return repr((params.window, params.viewport, params.quality, params.annotation))


# -- rendering (synchronous: always called through run_in_threadpool) -------------------------
def render_frames(archive: Archive, row: InstanceRow, numbers: list[int], media: str,
                  params: RenderParams) -> bytes:
    """Frames of one instance rendered as one image (a GIF cine when several), cached by digest."""
    key = ("r", row.digest, tuple(numbers), media, _key(params))
    if (hit := CACHE.get(key)) is not None:
        return hit
    arrays, photometric, header = [], None, None
    preview = _preview_side(archive, row, params, len(numbers))
    for n in numbers:
        if preview:
            arr, photometric, header = _preview(archive, row, n, preview)
        else:
            arr, photometric, header = display_frame(archive, row, n)
        arrays.append(arr)
    try:
        data = render(arrays, header, media_type=media, window=params.window, viewport=params.viewport,
                      quality=params.quality, frame_index=numbers[0] - 1, photometric=photometric,
                      annotation=params.annotation)
    except _RENDER_ERRORS as exc:
        log.info("rendering instance %s failed: %s", row.sop, type(exc).__name__)
        raise NotAcceptable(f"instance {row.sop} cannot be rendered ({type(exc).__name__})") from None
    CACHE.put(key, data)
    return data


def _preview_side(archive: Archive, row: InstanceRow, params: RenderParams, count: int) -> int:
    """A long side to decode at when a small viewport of a bitstream allows a reduced decode."""
    if row.pixel_form != "encapsulated" or not params.viewport or count != 1:
        return 0
    info = frame_info(archive, row)
    side = max(params.viewport)
    return side if side * 2 <= max(info.rows, info.columns) else 0


def _preview(archive: Archive, row: InstanceRow, number: int, side: int) -> tuple[np.ndarray, None, Any]:
    """Issue 4 part 4: HTJ2K skips resolution levels; others decode and keep every n-th pixel."""
    header, info = render_header(archive, row), frame_info(archive, row)
    data = archive.read_frame(row, number)
    try:
        arr = decode_preview(bytes(data), info, row.transfer_syntax, max_side=side)  # type: ignore[arg-type]
    except (UnsupportedTransfer, *CODEC_ERRORS):
        return display_frame(archive, row, number)  # type: ignore[return-value]
    return arr, None, header  # photometric inferred from the header's transfer syntax


def _image_rows(rows: list[InstanceRow]) -> list[InstanceRow]:
    images = [r for r in rows if r.pixel_form != "none" and r.frames > 0]
    if not images:
        raise NotAcceptable("no image instances here: nothing to render")
    return images


# -- rendered -------------------------------------------------------------------------------
async def rendered(request: Request) -> Response:
    """GET …/rendered at study, series, instance and frame level (PS3.18 10.4.1.1.3)."""
    archive: Archive = request.app.state.archive
    p = request.path_params
    params, headers = _params(request.query_params, RENDER_KEYS)
    media, multipart = _media(request)
    numbers = frame_numbers(p["frames"]) if "frames" in p else None
    cached = archive.cached_row(p["study"], p["series"], p["sop"]) if "sop" in p else None
    if cached is None:  # one worker hop fewer when the row is in memory
        cached = await run_in_threadpool(instance_row, archive, p["study"], p["series"], p["sop"]) \
            if "sop" in p else None
    rows = _image_rows([cached] if cached is not None else await run_in_threadpool(
        archive.instances, p["study"], p.get("series")))
    level = "frames" if numbers else "instance" if "sop" in p else "set"
    if numbers:
        for n in numbers:
            if n > rows[0].frames:
                raise UnknownResource(f"instance {rows[0].sop} has {rows[0].frames} frame(s), not {n}")
    many = len(numbers) > 1 and media != "image/gif" if numbers else level == "set" and multipart
    if level == "set" and not multipart:
        rows = rows[:1]
    tag = etag((r.digest for r in rows), "rendered", level, p.get("frames", ""), media, _key(params), str(many))
    headers.update({"ETag": tag, "Cache-Control": CACHE_CONTROL})
    if not_modified(request, tag):
        return Response(status_code=304, headers=headers)

    def frames_of(row: InstanceRow) -> list[int]:
        if numbers:
            return numbers
        return list(range(1, row.frames + 1)) if media == "image/gif" else [1]

    if not many:
        data = await run_in_threadpool(render_frames, archive, rows[0], frames_of(rows[0]), media, params)
        return Response(data, media_type=media, headers=headers)
    base = base_url(request)
    jobs = [(row, [n]) for n in numbers for row in rows] if numbers else [(row, frames_of(row)) for row in rows]

    def location(row: InstanceRow, ns: list[int]) -> str:
        inst = f"{base}/studies/{row.study}/series/{row.series}/instances/{row.sop}"
        return f"{inst}/frames/{ns[0]}/rendered" if numbers else f"{inst}/rendered"

    first, skipped = await run_in_threadpool(_first_rendered, archive, jobs, media, params)
    jobs = jobs[skipped:]

    async def parts() -> AsyncIterator[tuple[str, bytes, str | None]]:
        yield media, first, location(*jobs[0])
        for row, ns in jobs[1:]:  # streamed: each part rendered as it is sent
            try:
                data = await run_in_threadpool(render_frames, archive, row, ns, media, params)
            except NotAcceptable:
                continue  # an instance we cannot render is left out of a series answer
            yield media, data, location(row, ns)

    boundary = new_boundary()
    return StreamingResponse(multipart_body(boundary, parts()), headers=headers,
                             media_type=f'multipart/related; type="{media}"; boundary={boundary}')


def _first_rendered(archive: Archive, jobs: list[tuple[InstanceRow, list[int]]], media: str,
                    params: RenderParams) -> tuple[bytes, int]:
    """The first part that renders (before the status line), and how many were skipped before it."""
    for i, (row, numbers) in enumerate(jobs):
        try:
            return render_frames(archive, row, numbers, media, params), i
        except NotAcceptable:
            if i == len(jobs) - 1:
                raise
    raise NotAcceptable("nothing here can be rendered")


# -- thumbnails -----------------------------------------------------------------------------
def _representative(rows: list[InstanceRow], level: str) -> InstanceRow:
    """The middle image of the (first) series: what a viewer's series strip shows."""
    if level == "study":
        first = rows[0].series
        rows = [r for r in rows if r.series == first]
    return rows[len(rows) // 2]


async def thumbnail(request: Request) -> Response:
    """GET …/thumbnail at study, series, instance and frame level (PS3.18 10.4.1.1.4)."""
    archive: Archive = request.app.state.archive
    p = request.path_params
    params, headers = _params(request.query_params, RENDER_KEYS)
    if params.viewport is None:
        params = RenderParams(params.window, (THUMBNAIL_SIDE, THUMBNAIL_SIDE), params.quality, params.annotation)
    if params.quality is None:
        params = RenderParams(params.window, params.viewport, 80, params.annotation)
    media, _ = _media(request)
    rows = _image_rows(await run_in_threadpool(archive.instances, p["study"], p.get("series"), p.get("sop")))
    number = 1
    if "frames" in p:
        number = frame_numbers(p["frames"])[0]
        if number > rows[0].frames:
            raise UnknownResource(f"instance {rows[0].sop} has {rows[0].frames} frame(s), not {number}")
    row = rows[0] if "sop" in p else _representative(rows, "series" if "series" in p else "study")
    tag = etag([row.digest], "thumbnail", str(number), media, _key(params))
    headers.update({"ETag": tag, "Cache-Control": CACHE_CONTROL})
    if not_modified(request, tag):
        return Response(status_code=304, headers=headers)
    data = CACHE.get(("r", row.digest, (number,), media, _key(params)))
    if data is None:  # cached hits skip the thread hop: a cached thumbnail costs ~1 ms
        data = await run_in_threadpool(render_frames, archive, row, [number], media, params)
    return Response(data, media_type=media, headers=headers)


# -- reformat (our extension) ----------------------------------------------------------------
@dataclass(frozen=True)
class ReformatParams:
    """The reformat query, typed (README: Pixels: rendered, thumbnails, reformats)."""

    orientation: str
    position: float | None
    thickness: float
    mode: str
    u: tuple[float, float, float] | None
    v: tuple[float, float, float] | None
    render: RenderParams


def _float(query: Mapping[str, str], name: str, lo: float, hi: float) -> float | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise InvalidQuery(name, f"{raw!r} is not a number") from None
    if not math.isfinite(value) or not lo <= value <= hi:
        raise InvalidQuery(name, f"must be from {lo:g} to {hi:g}")
    return value


def _vector(query: Mapping[str, str], name: str) -> tuple[float, float, float] | None:
    raw = query.get(name)
    if not raw:
        return None
    try:
        x, y, z = (float(t) for t in raw.split(","))
    except ValueError:
        raise InvalidQuery(name, "expected x,y,z (LPS direction)") from None
    if not all(math.isfinite(t) for t in (x, y, z)) or x * x + y * y + z * z < 1e-12:
        raise InvalidQuery(name, "must be a finite, non-zero direction")
    return x, y, z


def parse_reformat(query: Mapping[str, str]) -> ReformatParams:
    """orientation, position (mm), thickness (mm), mode, u, v (oblique) + window/viewport/quality."""
    orientation = (query.get("orientation") or "axial").lower()
    if orientation not in ("axial", "coronal", "sagittal", "oblique"):
        raise InvalidQuery("orientation", "axial, coronal, sagittal or oblique")
    mode = (query.get("mode") or "mip").lower()
    if mode not in ("mip", "minip", "avg"):
        raise InvalidQuery("mode", "mip, minip or avg")
    u, v = _vector(query, "u"), _vector(query, "v")
    if orientation == "oblique" and (u is None or v is None):
        raise InvalidQuery("u" if u is None else "v", "an oblique plane needs both u and v")
    if u is not None and v is not None and abs(np.cross(u, v)).max() < 1e-6:
        raise InvalidQuery("v", "must not be parallel to u")
    render_params = parse_render_params(query)
    if render_params.viewport and max(render_params.viewport) > 2048:
        raise InvalidQuery("viewport", "a reformat is at most 2048 pixels on a side")
    return ReformatParams(orientation, _float(query, "position", -10000, 10000),
                          _float(query, "thickness", 0, 1000) or 0.0, mode, u, v, render_params)


VOLUME_CACHE_BYTES = 1 << 30  # decoded frames kept for reformats, all series together (LRU)


class _Volume:
    """A series as a stack: geometry, where each slice is stored, and slices read so far (lazily)."""

    def __init__(self, geometry: SeriesGeometry, frames: list[tuple[InstanceRow, int]], header: Any,
                 info: FrameInfo) -> None:
        self.geometry = geometry
        self.frames = frames          # (instance, frame number) in geometry order
        self.header = header          # the middle slice's header: rescale and window
        self.info = info              # every slice has the middle one's pixel module: no 300 header reads
        self.slices: list[np.ndarray | None] = [None] * len(frames)
        self.nbytes = 0
        self.lock = threading.Lock()

    def slice(self, archive: Archive, k: int) -> np.ndarray:
        """Slice k, decoded once: a coronal plane after the first touches memory, not 300 chunks."""
        arr = self.slices[k]
        if arr is None:
            row, number = self.frames[k]
            arr = decode_for_display(archive.read_frame(row, number), self.info, row)[0]
            if arr.shape != (self.geometry.rows, self.geometry.columns):
                raise UnsuitableGeometry("slices differ in size")
            with self.lock:  # kept as read (no copy into one block: first-touch page faults cost more)
                if self.slices[k] is None:
                    self.slices[k] = arr
                    self.nbytes += arr.nbytes
        return arr


_VOLUMES: OrderedDict[str, _Volume] = OrderedDict()
_VOLUMES_LOCK = threading.Lock()


def _trim_volumes() -> None:
    """Drop least recently used volumes beyond VOLUME_CACHE_BYTES (geometry included: rebuilt cheaply)."""
    with _VOLUMES_LOCK:
        while len(_VOLUMES) > 1 and sum(v.nbytes for v in _VOLUMES.values()) > VOLUME_CACHE_BYTES:
            _VOLUMES.popitem(last=False)


def _plane_view(doc: dict[str, Any]) -> SimpleNamespace:
    """The Image Plane attributes of one instance from its stored DICOM JSON (no header read)."""
    def value(tag: str) -> Any:
        return (doc.get(tag) or {}).get("Value")

    def one(tag: str) -> Any:
        v = value(tag)
        return v[0] if v else None
    return SimpleNamespace(ImageOrientationPatient=value("00200037"), ImagePositionPatient=value("00200032"),
                           PixelSpacing=value("00280030"), Rows=one("00280010"), Columns=one("00280011"),
                           SamplesPerPixel=one("00280002") or 1, SOPInstanceUID=one("00080018"))


def series_volume(archive: Archive, study: str, series: str, rows: list[InstanceRow]) -> _Volume:
    """The series' geometry, cached per series version (the digests of its instances)."""
    rows = _image_rows(rows)
    key = etag(r.digest for r in rows)
    with _VOLUMES_LOCK:
        if (hit := _VOLUMES.get(key)) is not None:
            _VOLUMES.move_to_end(key)
            return hit
    if len(rows) == 1 and rows[0].frames > 1:  # an enhanced multi-frame instance (PS3.3 C.7.6.16)
        header, info = header_info(archive, rows[0])
        if info.samples_per_pixel != 1:
            raise UnsuitableGeometry("reformats are for greyscale images")
        geometry, order = SeriesGeometry.from_multiframe(header)
        frames = [(rows[0], k + 1) for k in order]
    else:
        by_sop = {r.sop: r for r in rows}
        views = []
        for batch in archive.iter_metadata(study, series):  # stored JSON: 300 slices, no header reads
            for raw in batch:
                view = _plane_view(orjson.loads(raw))
                if view.SOPInstanceUID in by_sop:
                    views.append(view)
        if any(int(v.SamplesPerPixel) != 1 for v in views):
            raise UnsuitableGeometry("reformats are for greyscale images")
        geometry, order = SeriesGeometry.from_headers(views)
        frames = [(by_sop[views[k].SOPInstanceUID], 1) for k in order]
        header, info = header_info(archive, frames[len(frames) // 2][0])
    volume = _Volume(geometry, frames, header, info)
    with _VOLUMES_LOCK:
        _VOLUMES[key] = volume
        while len(_VOLUMES) > 32:
            _VOLUMES.popitem(last=False)
    return volume


def render_series_reformat(archive: Archive, study: str, series: str, rows: list[InstanceRow],
                           q: ReformatParams, media: str) -> bytes:
    """One MPR slice or MIP/MinIP/average slab, reading only the frames it touches (once per series)."""
    volume = series_volume(archive, study, series, rows)
    plane = plane_for(volume.geometry, q.orientation, position_mm=q.position, size=q.render.viewport,
                      u=q.u, v=q.v)
    try:
        return render_reformat(partial(volume.slice, archive), volume.geometry, volume.header, plane,
                               window=q.render.window, thickness_mm=q.thickness, mode=q.mode,
                               media_type=media, quality=q.render.quality)
    finally:
        _trim_volumes()


async def reformat(request: Request) -> Response:
    """GET /studies/{study}/series/{series}/reformat: MPR / MIP slices (our extension)."""
    archive: Archive = request.app.state.archive
    p = request.path_params
    query = request.query_params
    q = parse_reformat(query)
    unknown = sorted(k for k in query if k not in _REFORMAT_KEYS - {"annotation"})
    headers = {"Warning": warning_header(*(f"{k} is not supported and was ignored" for k in unknown))} \
        if unknown else {}
    media, _ = _media(request)
    rows = await run_in_threadpool(archive.instances, p["study"], p["series"])
    tag = etag((r.digest for r in rows), "reformat", media, repr(q))
    headers.update({"ETag": tag, "Cache-Control": CACHE_CONTROL})
    if not_modified(request, tag):
        return Response(status_code=304, headers=headers)
    data = await run_in_threadpool(render_series_reformat, archive, p["study"], p["series"], rows, q, media)
    return Response(data, media_type=media, headers=headers)
