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
The rendering itself is dicomweb.rendering's; reformats are dicomweb.volumes'.
"""
from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Mapping

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from dicomweb.access import require_path_visible
from dicomweb.frames import frame_numbers, instance_row
from dicomweb.http import (
    CACHE_CONTROL,
    base_url,
    etag,
    multipart_body,
    new_boundary,
    not_modified,
    warning_header,
)
from dicomweb.rendering import (
    ByteLRU,
    ChosenRows,
    cache_key,
    first_rendered,
    params_key,
    render_frames,
)
from dicomweb.volumes import REFORMAT_KEYS, Volumes, image_rows, parse_reformat
from index.model import InstanceRow
from yunying.archive import Archive
from yunying.errors import NotAcceptable, UnknownResource
from yunying.pixels import RenderParams, negotiate_rendered_media, parse_accept, parse_render_params

RENDER_KEYS = frozenset({"window", "viewport", "quality", "annotation"})
THUMBNAIL_SIDE = 128


# -- request parsing ------------------------------------------------------------------------
def _params(request: Request, known: frozenset[str]) -> tuple[RenderParams, dict[str, str]]:
    """Typed render parameters, and a Warning header for keys we ignore (PS3.18 8.3.4.1)."""
    params, warning = _parsed(request.scope.get("query_string", b""), known)
    return params, dict(warning)


@functools.lru_cache(maxsize=1024)
def _parsed(query_string: bytes, known: frozenset[str]) -> tuple[RenderParams, tuple[tuple[str, str], ...]]:
    """Cached per query string: a viewer scrolling a series sends the same window for every slice."""
    query = QueryParams(query_string)
    return parse_render_params(query), tuple(_ignored(query, known).items())


def _ignored(query: Mapping[str, str], known: frozenset[str]) -> dict[str, str]:
    unknown = sorted(k for k in query if k not in known and k != "accept")
    return {"Warning": warning_header(*(f"{k} is not supported and was ignored" for k in unknown))} \
        if unknown else {}


def _media(request: Request) -> tuple[str, bool]:
    """The rendered media type (PS3.18 8.7.4) and whether the client asked for multipart/related."""
    return _negotiated(request.headers.get("accept") or "*/*")


@functools.lru_cache(maxsize=256)
def _negotiated(accept: str) -> tuple[str, bool]:
    media = negotiate_rendered_media(accept)
    if media is None:
        raise NotAcceptable("rendered resources are image/jpeg, image/png or image/gif (PS3.18 8.7.4)")
    multipart = any(r.multipart and r.media_type in (media, "*/*", "image/*") for r in parse_accept(accept))
    return media, multipart


def _caches(request: Request) -> tuple[Archive, ByteLRU]:
    state = request.app.state
    return state.archive, state.rendered_cache


# -- rendered -------------------------------------------------------------------------------
async def rendered(request: Request) -> Response:
    """GET …/rendered at study, series, instance and frame level (PS3.18 10.4.1.1.3)."""
    archive, cache = _caches(request)
    p = request.path_params
    params, headers = _params(request, RENDER_KEYS)
    media, multipart = _media(request)
    numbers = frame_numbers(p["frames"]) if "frames" in p else None
    await require_path_visible(request)
    cached = archive.cached_row(p["study"], p["series"], p["sop"]) if "sop" in p else None
    if cached is None:  # one worker hop fewer when the row is in memory
        cached = await run_in_threadpool(instance_row, archive, p["study"], p["series"], p["sop"]) \
            if "sop" in p else None
    rows = image_rows([cached] if cached is not None else await run_in_threadpool(
        archive.instances, p["study"], p.get("series")))
    level = "frames" if numbers else "instance" if "sop" in p else "set"
    if numbers:
        for n in numbers:
            if n > rows[0].frames:
                raise UnknownResource(f"instance {rows[0].sop} has {rows[0].frames} frame(s), not {n}")
    many = len(numbers) > 1 and media != "image/gif" if numbers else level == "set" and multipart
    if level == "set" and not multipart:
        rows = rows[:1]
    tag = etag((r.digest for r in rows), "rendered", level, p.get("frames", ""), media, params_key(params), str(many))
    headers.update({"ETag": tag, "Cache-Control": CACHE_CONTROL})
    if not_modified(request, tag):
        return Response(status_code=304, headers=headers)

    def frames_of(row: InstanceRow) -> list[int]:
        if numbers:
            return numbers
        return list(range(1, row.frames + 1)) if media == "image/gif" else [1]

    if not many:
        data = cache.get(cache_key(rows[0], frames_of(rows[0]), media, params))  # a hit needs no worker
        if data is None:
            data = await run_in_threadpool(render_frames, archive, cache, rows[0], frames_of(rows[0]), media, params)
        return Response(data, media_type=media, headers=headers)
    base = base_url(request)
    jobs = [(row, [n]) for n in numbers for row in rows] if numbers else [(row, frames_of(row)) for row in rows]

    def location(row: InstanceRow, ns: list[int]) -> str:
        inst = f"{base}/studies/{row.study}/series/{row.series}/instances/{row.sop}"
        return f"{inst}/frames/{ns[0]}/rendered" if numbers else f"{inst}/rendered"

    first, skipped = await run_in_threadpool(first_rendered, archive, cache, jobs, media, params)
    jobs = jobs[skipped:]

    async def parts() -> AsyncIterator[tuple[str, bytes, str | None]]:
        yield media, first, location(*jobs[0])
        for row, ns in jobs[1:]:  # streamed: each part rendered as it is sent
            try:
                data = await run_in_threadpool(render_frames, archive, cache, row, ns, media, params)
            except NotAcceptable:
                continue  # an instance we cannot render is left out of a series answer
            yield media, data, location(row, ns)

    boundary = new_boundary()
    return StreamingResponse(multipart_body(boundary, parts()), headers=headers,
                             media_type=f'multipart/related; type="{media}"; boundary={boundary}')


# -- thumbnails -----------------------------------------------------------------------------
def _representative(rows: list[InstanceRow], level: str) -> InstanceRow:
    """The middle image of the (first) series: what a viewer's series strip shows."""
    if level == "study":
        first = rows[0].series
        rows = [r for r in rows if r.series == first]
    return rows[len(rows) // 2]


async def _thumbnail_row(request: Request, archive: Archive, p: Mapping[str, str]) -> InstanceRow:
    """The instance a thumbnail shows at instance, series or study level."""
    if "sop" in p:
        row = archive.cached_row(p["study"], p["series"], p["sop"])
        if row is None:
            row = await run_in_threadpool(instance_row, archive, p["study"], p["series"], p["sop"])
        return image_rows([row])[0]
    return await run_in_threadpool(_chosen_row, archive, request.app.state.thumbnail_rows, p["study"],
                                   p.get("series"))


def _chosen_row(archive: Archive, chosen: ChosenRows, study: str, series: str | None) -> InstanceRow:
    """A series' or study's image, kept while nothing is stored or deleted (no index query then)."""
    archive.flush()  # acknowledged stores count (reads wait for them), and bump the generation
    key, generation = (study, series), archive.generation
    row = chosen.get(key, generation)
    if row is None:
        row = _representative(image_rows(archive.instances(study, series)), "series" if series else "study")
        chosen.put(key, generation, row)
    return row


async def thumbnail(request: Request) -> Response:
    """GET …/thumbnail at study, series, instance and frame level (PS3.18 10.4.1.1.4)."""
    archive, cache = _caches(request)
    p = request.path_params
    params, headers = _params(request, RENDER_KEYS)
    if params.viewport is None:
        params = RenderParams(params.window, (THUMBNAIL_SIDE, THUMBNAIL_SIDE), params.quality, params.annotation)
    if params.quality is None:
        params = RenderParams(params.window, params.viewport, 80, params.annotation)
    media, _ = _media(request)
    number = frame_numbers(p["frames"])[0] if "frames" in p else 1
    await require_path_visible(request)
    row = await _thumbnail_row(request, archive, p)
    if number > row.frames:
        raise UnknownResource(f"instance {row.sop} has {row.frames} frame(s), not {number}")
    tag = etag([row.digest], "thumbnail", str(number), media, params_key(params))
    headers.update({"ETag": tag, "Cache-Control": CACHE_CONTROL})
    if not_modified(request, tag):
        return Response(status_code=304, headers=headers)
    data = cache.get(cache_key(row, [number], media, params))
    if data is None:  # cached hits skip the thread hop: a cached thumbnail costs ~1 ms
        data = await run_in_threadpool(render_frames, archive, cache, row, [number], media, params)
    return Response(data, media_type=media, headers=headers)


# -- reformat (our extension) ----------------------------------------------------------------
async def reformat(request: Request) -> Response:
    """GET /studies/{study}/series/{series}/reformat: MPR / MIP slices (our extension)."""
    archive: Archive = request.app.state.archive
    p = request.path_params
    query = request.query_params
    q = parse_reformat(query)
    headers = _ignored(query, REFORMAT_KEYS)
    media, _ = _media(request)
    await require_path_visible(request)
    rows = await run_in_threadpool(archive.instances, p["study"], p["series"])
    tag = etag((r.digest for r in rows), "reformat", media, repr(q))
    headers.update({"ETag": tag, "Cache-Control": CACHE_CONTROL})
    if not_modified(request, tag):
        return Response(status_code=304, headers=headers)
    volumes: Volumes = request.app.state.volumes
    data = await run_in_threadpool(volumes.render, archive, p["study"], p["series"], rows, q, media)
    return Response(data, media_type=media, headers=headers)
