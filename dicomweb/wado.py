"""WADO-RS (PS3.18 10.4): instances, metadata, frames and bulk data, streamed part by part."""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import orjson
import pydicom
from pydicom.uid import UID
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from dicomweb.access import require_path_visible
from dicomweb.coding import Precoded, precoded_response
from dicomweb.http import (
    CACHE_CONTROL,
    MediaRange,
    base_url,
    etag,
    media_matches,
    multipart_body,
    new_boundary,
    not_modified,
    parse_accept,
    part_header,
)
from dicomweb.prepared import Part, Prepared, accepted_syntaxes, convert_one
from dicomweb.wado_stream import (
    AHEAD,
    GATHER_AHEAD,
    Buffer,
    DigestMemo,
    boundary_for,
    multipart_length,
    multipart_pieces,
    part_size,
    pieces_of,
    read_ahead,
)
from dicomweb.xml import MEDIA_TYPE as XML_TYPE
from dicomweb.xml import dataset_xml
from index.model import InstanceRow
from yunying.archive import Archive
from yunying.errors import NotAcceptable, UnknownResource
from yunying.ingest import BULK_PREFIX

log = logging.getLogger("yunying.dicomweb")
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


def _choose(ranges: list[MediaRange], rows: list[InstanceRow]) -> tuple[str, str | None, bool]:
    """PS3.18 8.7.3 and Table 10.4.4-1: ("dicom" or "bulk", transfer syntax or None = as stored,
    single part), for the first acceptable media range."""
    for r in ranges:
        inner = r.params.get("type", "application/dicom").lower()
        ts = r.params.get("transfer-syntax")
        if r.type == "multipart/related" and inner == "application/octet-stream":
            # "equivalent to requesting the corresponding Bulkdata Resource" (PS3.18 10.4.4)
            if ts == "*":
                return "bulk", None, False
            if ts in (None, EXPLICIT_LE) and all(can_produce(row, EXPLICIT_LE) for row in rows):
                return "bulk", EXPLICIT_LE, False
            continue
        single = r.type == "application/dicom"
        if r.type == "multipart/related":
            if inner != "application/dicom":
                continue
        elif not single and not media_matches(r.type, "multipart/related"):
            continue
        if ts == "*":
            return "dicom", None, single
        ts = ts or EXPLICIT_LE
        if all(can_produce(row, ts) for row in rows):
            return "dicom", ts, single
    raise NotAcceptable("no acceptable representation: ask for multipart/related; type=\"application/dicom\" "
                        "with transfer-syntax=* or one the archive can produce, or for "
                        "multipart/related; type=\"application/octet-stream\" (bulk data)")


async def retrieve(request: Request) -> Response:
    """GET /studies/{study}[/series/{series}[/instances/{sop}]]."""
    archive: Archive = request.app.state.archive
    p = request.path_params
    await require_path_visible(request)
    rows = await run_in_threadpool(archive.instances, p["study"], p.get("series"), p.get("sop"))
    kind, ts, single = _choose(parse_accept(request.headers.get("accept")), rows)
    if single and len(rows) > 1:
        raise NotAcceptable("application/dicom (single part) fits one instance; ask for multipart/related")
    tag = etag((r.digest for r in rows), kind, ts or "*")
    headers = {"ETag": tag, "Cache-Control": CACHE_CONTROL}
    if not_modified(request, tag):
        return Response(status_code=304, headers=headers)
    if kind == "bulk":
        return _bulk_response(request, archive, rows, ts, headers)
    syntaxes = [ts, *(s for s in accepted_syntaxes(parse_accept(request.headers.get("accept")), single) if s != ts)]
    if single:
        body, used = await run_in_threadpool(convert_one, archive, rows[0], syntaxes)
        fallback = "" if used == (ts or rows[0].transfer_syntax) else f"; transfer-syntax={used}"
        return Response(body, media_type="application/dicom" + fallback, headers=headers)
    base = base_url(request)
    # every conversion happens here, before the status line (issue 10 part 1)
    prepared = await run_in_threadpool(Prepared, archive, rows, syntaxes)

    depth = AHEAD
    override = archive.index.patient_override(p["study"])
    # the body's bytes follow from these, so its digests, once computed, hold for a repeat
    boundary = boundary_for((tag, request.headers.get("accept"), base, repr(sorted((override or {}).items()))))
    sizes = await run_in_threadpool(lambda: [part_size(prepared, part) for part in prepared])
    exact = [n for n in sizes if n is not None]
    promised = len(exact) == len(sizes)  # the length is known before a byte is read

    def head_of(part: Part, used: str) -> tuple[str, str]:
        row = part.row
        return (f"application/dicom; transfer-syntax={used}",
                f"{base}/studies/{row.study}/series/{row.series}/instances/{row.sop}")

    async def parts() -> AsyncIterator[tuple[str, list[Buffer], str | None]]:
        try:
            async for (i, part), (pieces, used) in read_ahead(
                    enumerate(prepared), lambda item: pieces_of(prepared, item[1]), depth):
                expected = sizes[i]
                if promised and sum(map(len, pieces)) != expected:
                    # the Content-Length promised cannot be kept: end the connection, never a wrong body
                    log.error("retrieve: instance %s read %d bytes, %d expected", part.row.sop,
                              sum(map(len, pieces)), expected)
                    raise RuntimeError("stored instance size changed")
                ctype, location = head_of(part, used)
                yield ctype, pieces, location
        finally:
            prepared.close()

    memo: DigestMemo = request.app.state.retrieve_digests
    known = memo.get(boundary)
    if known is not None:
        headers.update({k.decode(): v.decode() for k, v in known.items()})
    else:
        request.state.digest_record = memo.recorder(boundary)
        if "want-repr-digest" in request.headers or "want-digest" in request.headers:
            depth = GATHER_AHEAD  # held whole until hashed (hardening.Digests): reads need not wait for the socket
        if promised:
            heads = [part_header(boundary, *head_of(part, part.transfer_syntax or part.row.transfer_syntax))
                     for part in prepared]
            headers["Content-Length"] = str(multipart_length(boundary, heads, exact))
    return StreamingResponse(multipart_pieces(boundary, parts()), headers=headers,
                             media_type=f'multipart/related; type="application/dicom"; boundary={boundary}')


def _bulk_response(request: Request, archive: Archive, rows: list[InstanceRow], ts: str | None,
                   headers: dict[str, str]) -> Response:
    """Every BulkDataURI of the instances' metadata, one part each, its Content-Location that URI
    (PS3.18 10.4.3.3.5); uncompressed little endian unless transfer-syntax=* (then as stored)."""
    base = base_url(request)
    by_sop = {row.sop: row for row in rows}
    p = request.path_params
    batches = archive.iter_metadata(p["study"], p.get("series"), p.get("sop"))

    async def parts() -> AsyncIterator[tuple[str, bytes, str | None]]:
        while True:
            batch = await run_in_threadpool(next, batches, None)
            if batch is None:
                break
            for raw in batch:
                doc = orjson.loads(raw)
                row = by_sop.get(_first(doc, "00080018") or "")
                paths = list(_bulk_paths(doc))
                if row is None or not paths:
                    continue
                for ctype, data, path in await run_in_threadpool(_instance_bulk, archive, row, paths, ts):
                    yield ctype, data, f"{base}/{path}"

    boundary = new_boundary()
    return StreamingResponse(multipart_body(boundary, parts()), headers=headers,
                             media_type=f'multipart/related; type="application/octet-stream"; boundary={boundary}')


def _first(doc: dict[str, Any], tag: str) -> Any:
    value = doc.get(tag, {}).get("Value")
    return value[0] if value else None


def _bulk_paths(node: Any) -> Iterator[str]:
    """The stored BulkDataURIs (relative, "studies/…/bulkdata/<tag path>") of a DICOM JSON object."""
    if isinstance(node, dict):
        uri = node.get("BulkDataURI")
        if isinstance(uri, str) and uri.startswith(BULK_PREFIX):
            yield uri[len(BULK_PREFIX):]
        for value in node.values():
            if isinstance(value, (dict, list)):
                yield from _bulk_paths(value)
    elif isinstance(node, list):
        for value in node:
            yield from _bulk_paths(value)


def _instance_bulk(archive: Archive, row: InstanceRow, paths: list[str],
                   ts: str | None) -> list[tuple[str, bytes, str]]:
    """(Content-Type, value, relative URI) of each bulk data element of one instance."""
    stored = UID(row.transfer_syntax)
    big = stored == pydicom.uid.ExplicitVRBigEndian
    ds: Any = archive.read_dataset(row, ts) if ts else archive.read_header(row)
    ctype = f"application/octet-stream; transfer-syntax={ts or stored}"
    out = []
    for path in paths:
        tag_path = path.rpartition("/bulkdata/")[2].upper()
        if tag_path == "7FE00010":
            if row.pixel_form == "none":
                continue
            value = ds.PixelData if ts else archive.pixel_value(row, big)
        else:
            try:
                value, vr = _element_value(ds, tag_path)
            except UnknownResource:
                continue  # metadata and stored header disagree: leave the element out, never a 500
            if ts and big:
                value = _little_endian(value, vr)
        out.append((ctype, bytes(value), path))
    return out


def _element_value(ds: Any, path: str) -> tuple[bytes, str]:
    """The bytes of the element at a bulk data tag path ("gggg eeee[.item.gggg eeee]…")."""
    parts = path.split(".")
    try:
        for i in range(0, len(parts) - 1, 2):
            ds = ds[int(parts[i], 16)].value[int(parts[i + 1])]
        elem = ds[int(parts[-1], 16)]
    except (KeyError, IndexError, ValueError, TypeError):
        raise UnknownResource(f"no bulk data at {path}") from None
    if not isinstance(elem.value, (bytes, bytearray)):
        raise UnknownResource(f"{path} is not bulk data")
    return bytes(elem.value), elem.VR


_WORD = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


def _little_endian(value: bytes, vr: str) -> bytes:
    """A big endian OW/OF/OL/OD/OV value in little endian (PS3.18 8.7.3: bulk data is little endian)."""
    size = _WORD.get(vr)
    if not size or len(value) % size:
        return value
    return np.frombuffer(value, f">u{size}").astype(f"<u{size}").tobytes()


def _metadata_form(ranges: list[MediaRange], instance_level: bool) -> tuple[str, bool]:
    """Table 10.4.4-1: ("json", False) by default, ("xml", multipart) when XML is preferred."""
    for r in ranges:
        if media_matches(r.type, "application/dicom+json") or r.type == "application/json":
            return "json", False
        if r.type in ("multipart/related", "multipart/*") and r.params.get("type", "").lower() == XML_TYPE:
            return "xml", True
        if r.type == XML_TYPE and instance_level:  # a single part fits a single item (PS3.18 10.4.4)
            return "xml", False
    raise NotAcceptable('metadata is served as application/dicom+json or '
                        'multipart/related; type="application/dicom+xml"')


async def metadata(request: Request) -> Response:
    """GET .../metadata at study, series and instance level: stored JSON (or XML), streamed."""
    archive: Archive = request.app.state.archive
    p = request.path_params
    form, multipart = _metadata_form(parse_accept(request.headers.get("accept")), "sop" in p)
    prefix = b'"' + base_url(request).encode() + b"/"
    await require_path_visible(request)  # before the cache: a cached answer is no one else's
    await run_in_threadpool(archive.flush)
    generation = archive.generation  # read before the data: a change meanwhile only misses the cache
    key = (p["study"], p.get("series"), p.get("sop"), form, prefix)
    hit = _METADATA.get(key)
    if hit is not None and hit[0] == generation:  # a viewer re-opening a study: no index work at all
        headers = {"ETag": hit[1], "Cache-Control": CACHE_CONTROL}
        if not_modified(request, hit[1]):
            return Response(status_code=304, headers=headers)
        return await precoded_response(request, hit[2], "application/dicom+json", headers)
    rows = await run_in_threadpool(archive.instances, p["study"], p.get("series"), p.get("sop"))
    tag = etag((r.digest for r in rows), "metadata", form)
    headers = {"ETag": tag, "Cache-Control": CACHE_CONTROL}
    if not_modified(request, tag):
        return Response(status_code=304, headers=headers)
    if hit is not None and hit[1] == tag:  # other studies changed, this one did not: keep its encodings
        _METADATA.put(key, (generation, tag, hit[2]))
        return await precoded_response(request, hit[2], "application/dicom+json", headers)
    batches = archive.iter_metadata(p["study"], p.get("series"), p.get("sop"))
    if form == "xml":
        return await _xml_metadata(batches, prefix, multipart, headers)

    async def body() -> AsyncIterator[bytes]:
        kept: list[bytes] | None = []
        size = 0
        yield b"["
        first = True
        while True:
            batch = await run_in_threadpool(next, batches, None)
            if batch is None:
                break
            chunk = b",".join(batch).replace(b'"yy-bulk:', prefix)
            chunk = chunk if first else b"," + chunk
            size += len(chunk)
            if kept is not None:
                kept = kept + [chunk] if size <= _METADATA_BODY_MAX else None
            yield chunk
            first = False
        yield b"]"
        if kept is not None:
            _METADATA.put(key, (generation, tag, Precoded(b"[" + b"".join(kept) + b"]")))

    return StreamingResponse(body(), media_type="application/dicom+json", headers=headers)


class _Lru:
    """A small thread-safe LRU of finished metadata answers, validated by the archive generation."""

    def __init__(self, size: int) -> None:
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)


_METADATA = _Lru(64)
_METADATA_BODY_MAX = 16 << 20


def _xml_batch(batch: list[bytes], prefix: bytes) -> list[bytes]:
    return [dataset_xml(orjson.loads(raw.replace(b'"yy-bulk:', prefix))) for raw in batch]


async def _xml_metadata(batches: Iterator[list[bytes]], prefix: bytes, multipart: bool,
                        headers: dict[str, str]) -> Response:
    """One NativeDicomModel part per instance (PS3.18 8.7.3.2), converted a batch at a time."""
    if not multipart:
        docs = await run_in_threadpool(lambda: [d for b in batches for d in _xml_batch(b, prefix)])
        return Response(docs[0] if docs else b"", media_type=XML_TYPE, headers=headers)

    async def parts() -> AsyncIterator[tuple[str, bytes, str | None]]:
        while True:
            batch = await run_in_threadpool(next, batches, None)
            if batch is None:
                break
            for doc in await run_in_threadpool(_xml_batch, batch, prefix):
                yield XML_TYPE, doc, None

    boundary = new_boundary()
    return StreamingResponse(multipart_body(boundary, parts()), headers=headers,
                             media_type=f'multipart/related; type="{XML_TYPE}"; boundary={boundary}')


def _bulk_value(archive: Archive, row: InstanceRow, path: str) -> bytes:
    if path == "7FE00010":
        if row.pixel_form == "none":
            raise UnknownResource("no pixel data")
        return archive.pixel_value(row, UID(row.transfer_syntax) == pydicom.uid.ExplicitVRBigEndian)
    return _element_value(archive.read_header(row), path)[0]


async def bulkdata(request: Request) -> Response:
    """GET .../instances/{sop}/bulkdata/{path}: the URIs the metadata hands out."""
    archive: Archive = request.app.state.archive
    p = request.path_params
    await require_path_visible(request)
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
    await require_path_visible(request)
    await run_in_threadpool(archive.delete, p["study"], p.get("series"), p.get("sop"))
    return Response(status_code=204)
