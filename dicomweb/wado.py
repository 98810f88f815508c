"""WADO-RS (PS3.18 10.4): instances, metadata, frames and bulk data, streamed part by part."""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pydicom
from pydicom.uid import UID
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from index.model import InstanceRow
from yunying.archive import Archive
from yunying.errors import NotAcceptable, UnknownResource
from dicomweb.http import (CACHE_CONTROL, MediaRange, base_url, etag, media_matches, multipart_body,
                           new_boundary, not_modified, parse_accept)

EXPLICIT_LE = pydicom.uid.ExplicitVRLittleEndian
NATIVE = {pydicom.uid.ImplicitVRLittleEndian, EXPLICIT_LE, pydicom.uid.ExplicitVRBigEndian,
          pydicom.uid.DeflatedExplicitVRLittleEndian}


def _pixels() -> Any:
    try:
        from yunying import pixels
    except ImportError:
        return None
    return pixels


def can_produce(row: InstanceRow, target: str) -> bool:
    """Whether an instance can be sent in a transfer syntax (never silently lossy)."""
    stored = UID(row.transfer_syntax)
    t = UID(target)
    if not t.is_transfer_syntax:
        return False
    if t == stored or row.pixel_form == "none":
        return True
    if row.pixel_form != "encapsulated" and t in NATIVE:
        return True
    px = _pixels()
    if px is None:
        return False
    decodable = row.pixel_form != "encapsulated" or px.can_decode(str(stored))
    return decodable and (t in NATIVE or px.can_encode(str(t)))


def _instance_syntax(ranges: list[MediaRange], rows: list[InstanceRow]) -> tuple[str | None, bool]:
    """PS3.18 8.7.3: the transfer syntax for each instance (None = as stored), and single-part or not."""
    for r in ranges:
        single = r.type == "application/dicom"
        if r.type == "multipart/related":
            if r.params.get("type", "application/dicom").lower() != "application/dicom":
                continue
        elif not single and not media_matches(r.type, "multipart/related"):
            continue
        ts = r.params.get("transfer-syntax")
        if ts == "*":
            return None, single
        ts = ts or EXPLICIT_LE
        if all(can_produce(row, ts) for row in rows):
            return ts, single
    raise NotAcceptable("no acceptable representation: ask for multipart/related; type=\"application/dicom\" "
                        "with transfer-syntax=* or one the archive can produce")


async def retrieve(request: Request) -> Response:
    """GET /studies/{study}[/series/{series}[/instances/{sop}]]."""
    archive: Archive = request.app.state.archive
    p = request.path_params
    rows = await run_in_threadpool(archive.instances, p["study"], p.get("series"), p.get("sop"))
    ts, single = _instance_syntax(parse_accept(request.headers.get("accept")), rows)
    if single and len(rows) > 1:
        raise NotAcceptable("application/dicom (single part) fits one instance; ask for multipart/related")
    tag = etag((r.digest for r in rows), ts or "*")
    headers = {"ETag": tag, "Cache-Control": CACHE_CONTROL}
    if not_modified(request, tag):
        return Response(status_code=304, headers=headers)
    if single:
        body = await run_in_threadpool(archive.read_part10, rows[0], ts)
        return Response(body, media_type="application/dicom", headers=headers)
    base = base_url(request)

    async def parts() -> AsyncIterator[tuple[str, bytes, str | None]]:
        for row in rows:
            data = await run_in_threadpool(archive.read_part10, row, ts)
            yield (f"application/dicom; transfer-syntax={ts or row.transfer_syntax}", data,
                   f"{base}/studies/{row.study}/series/{row.series}/instances/{row.sop}")

    boundary = new_boundary()
    return StreamingResponse(multipart_body(boundary, parts()), headers=headers,
                             media_type=f'multipart/related; type="application/dicom"; boundary={boundary}')


async def metadata(request: Request) -> Response:
    """GET .../metadata at study, series and instance level: stored JSON, streamed."""
    archive: Archive = request.app.state.archive
    p = request.path_params
    ranges = parse_accept(request.headers.get("accept"))
    if not any(media_matches(r.type, "application/dicom+json") or r.type == "application/json" for r in ranges):
        raise NotAcceptable("metadata is served as application/dicom+json")
    rows = await run_in_threadpool(archive.instances, p["study"], p.get("series"), p.get("sop"))
    tag = etag((r.digest for r in rows), "metadata")
    headers = {"ETag": tag, "Cache-Control": CACHE_CONTROL}
    if not_modified(request, tag):
        return Response(status_code=304, headers=headers)
    prefix = b'"' + base_url(request).encode() + b"/"
    batches = archive.index.iter_metadata(p["study"], p.get("series"), p.get("sop"))

    async def body() -> AsyncIterator[bytes]:
        yield b"["
        first = True
        while True:
            batch = await run_in_threadpool(next, batches, None)
            if batch is None:
                break
            chunk = b",".join(batch).replace(b'"yy-bulk:', prefix)
            yield chunk if first else b"," + chunk
            first = False
        yield b"]"

    return StreamingResponse(body(), media_type="application/dicom+json", headers=headers)


def _bulk_value(archive: Archive, row: InstanceRow, path: str) -> bytes:
    if path == "7FE00010":
        if row.pixel_form == "none":
            raise UnknownResource("no pixel data")
        return archive.pixel_value(row, UID(row.transfer_syntax) == pydicom.uid.ExplicitVRBigEndian)
    ds: Any = archive.read_header(row)
    parts = path.split(".")
    try:
        for i in range(0, len(parts) - 1, 2):
            ds = ds[int(parts[i], 16)].value[int(parts[i + 1])]
        elem = ds[int(parts[-1], 16)]
    except (KeyError, IndexError, ValueError, TypeError):
        raise UnknownResource(f"no bulk data at {path}") from None
    value = elem.value
    if not isinstance(value, (bytes, bytearray)):
        raise UnknownResource(f"{path} is not bulk data")
    return bytes(value)


async def bulkdata(request: Request) -> Response:
    """GET .../instances/{sop}/bulkdata/{path}: the URIs the metadata hands out."""
    archive: Archive = request.app.state.archive
    p = request.path_params
    row = (await run_in_threadpool(archive.instances, p["study"], p["series"], p["sop"]))[0]
    ranges = parse_accept(request.headers.get("accept"))
    multipart = not any(r.type == "application/octet-stream" for r in ranges)
    if not any(media_matches(r.type, "application/octet-stream") or r.type in ("multipart/related", "multipart/*")
               for r in ranges):
        raise NotAcceptable("bulk data is served as application/octet-stream")
    tag = etag([row.digest], p["path"])
    headers = {"ETag": tag, "Cache-Control": CACHE_CONTROL}
    if not_modified(request, tag):
        return Response(status_code=304, headers=headers)
    data = await run_in_threadpool(_bulk_value, archive, row, p["path"].upper())
    if not multipart:
        return Response(data, media_type="application/octet-stream", headers=headers)
    boundary = new_boundary()

    async def one() -> AsyncIterator[tuple[str, bytes, str | None]]:
        yield "application/octet-stream", data, None

    return StreamingResponse(multipart_body(boundary, one()), headers=headers,
                             media_type=f'multipart/related; type="application/octet-stream"; boundary={boundary}')


async def delete(request: Request) -> Response:
    """DELETE a study, series or instance (the archive's extension, as Google's and dcm4chee's)."""
    archive: Archive = request.app.state.archive
    p = request.path_params
    await run_in_threadpool(archive.delete, p["study"], p.get("series"), p.get("sop"))
    return Response(status_code=204)
