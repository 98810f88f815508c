"""STOW-RS (PS3.18 10.5): multipart/related bodies streamed to disk part by part, then stored."""
from __future__ import annotations

import asyncio
import io
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pydicom
from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from dicomweb.access import origin_of
from dicomweb.http import base_url, warning_header
from dicomweb.multipart import MalformedMultipart, MultipartSplitter
from index.model import Origin
from yunying.archive import Archive, StoreResult
from yunying.errors import (
    NO_SPACE,
    ArchiveError,
    InvalidInstance,
    OutOfResources,
    PayloadTooLarge,
    StudyMismatch,
    UnsupportedMediaType,
)
from yunying.logsafe import summary

log = logging.getLogger("yunying.stow")
PARALLEL_PARTS = 4
SPOOL_MAX = 32 << 20  # parts up to this size are kept in memory; larger ones are streamed to disk
FEED_BATCH = 1 << 20  # body bytes handed to a worker thread at a time
REQUEST_MEMORY = 64 << 20  # parts one request may hold in memory before the next ones are spooled
PROCESSING_FAILURE = 0x0110  # PS3.4 Annex GG / PS3.18 Table 10.5.3-3
DATA_SET_DOES_NOT_MATCH = 0xB007  # PS3.4 B.2.3 warning


class _Parts:
    """Collects the parts of a multipart body: in memory up to SPOOL_MAX while the request holds
    less than REQUEST_MEMORY of them, beyond that in temp files. Each finished part is `ready`
    to be stored at once, and `release`d (memory freed, file removed) once stored."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.files: list[tuple[Path | bytes, str]] = []
        self._fh: Any = None
        self._chunks: list[bytes | memoryview] = []
        self.ready: list[int] = []  # parts finished since the last take_ready()
        self._held = 0  # bytes of finished parts in memory, not yet stored
        self._lock = threading.Lock()

    def take_ready(self) -> list[int]:
        ready, self.ready = self.ready, []
        return ready

    def release(self, i: int) -> None:
        source, ctype = self.files[i]
        if isinstance(source, Path):
            source.unlink(missing_ok=True)
        else:
            with self._lock:
                self._held -= len(source)
        self.files[i] = (b"", ctype)

    def begin(self, headers: dict[bytes, bytes]) -> None:
        self._chunks, self._size, self._fh = [], 0, None
        self._path: Path | None = None
        self._ctype = headers.get(b"content-type", b"").decode("latin-1")
        self.files.append((b"", ""))

    def data(self, chunk: bytes | memoryview) -> None:
        self._size += len(chunk)
        if self._fh is None and (self._size > SPOOL_MAX or self._held + self._size > REQUEST_MEMORY):
            # a large part, or one beyond the request's memory cap, goes to disk
            self._path = self.tmp / f"stow-{os.urandom(8).hex()}.part"
            self._fh = open(self._path, "wb")  # noqa: SIM115 - stays open across chunks
            self._fh.writelines(self._chunks)
            self._chunks = []
            self.files[-1] = (self._path, "")
        if self._fh is not None:
            self._fh.write(chunk)
        else:
            self._chunks.append(chunk)

    def end(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        source: Path | bytes = self._path if self._path is not None else b"".join(self._chunks)
        self._chunks = []
        if isinstance(source, bytes):
            with self._lock:
                self._held += len(source)
        self.files[-1] = (source, self._ctype)
        self.ready.append(len(self.files) - 1)

    def cleanup(self) -> None:
        if self._fh:
            self._fh.close()
        for source, _ in self.files:
            if isinstance(source, Path):
                source.unlink(missing_ok=True)


def _uids(source: Path | bytes) -> tuple[str | None, str | None]:
    try:
        ds = pydicom.dcmread(source if isinstance(source, Path) else io.BytesIO(source), force=True, stop_before_pixels=True,
                             specific_tags=["SOPClassUID", "SOPInstanceUID"])
        return str(ds.get("SOPClassUID") or "") or None, str(ds.get("SOPInstanceUID") or "") or None
    except Exception:  # noqa: BLE001 - best effort for the failure report only
        return None, None


async def stow(request: Request) -> Response:
    """POST /studies[/{study}]."""
    archive: Archive = request.app.state.archive
    settings = request.app.state.settings
    study = request.path_params.get("study")
    mtype, params = parse_options_header(request.headers.get("content-type", ""))
    part_type = params.get(b"type", b"application/dicom").lower()
    if mtype == b"multipart/related" and part_type != b"application/dicom":
        raise UnsupportedMediaType(
            f"multipart/related type={part_type.decode(errors='replace')} is not accepted; "
            "send type=\"application/dicom\" parts")
    if mtype not in (b"multipart/related", b"application/dicom"):
        raise UnsupportedMediaType("STOW-RS takes multipart/related; type=\"application/dicom\" "
                                   "(or a single application/dicom body)")
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > settings.max_upload_bytes:
        raise PayloadTooLarge(f"request body of {length} bytes is over the {settings.max_upload_bytes}-byte limit")
    parts = _Parts(archive.storage.tmp)
    origin = origin_of(request)  # a study another hospital owns refuses the part (409, untouched)
    gate = asyncio.Semaphore(PARALLEL_PARTS)  # overlap one part's fsyncs with the next one's parsing
    tasks: list[asyncio.Task[dict[str, Any]]] = []

    async def one(i: int) -> dict[str, Any]:
        async with gate:
            path, ctype = parts.files[i]
            try:
                return await run_in_threadpool(_store_one, archive, path, ctype, origin, study)
            finally:
                parts.release(i)

    def launch() -> None:  # each part is stored as soon as it has arrived (issue 10 part 6)
        tasks.extend(asyncio.create_task(one(i)) for i in parts.take_ready())

    try:
        try:
            await _receive(request, mtype, params, parts, settings.max_upload_bytes, launch)
        except OSError as exc:  # a large part spooled to a full disk
            if exc.errno in NO_SPACE:
                raise OutOfResources("no space left to receive the request: retry later") from None
            raise
        except ArchiveError as exc:  # the body broke off: parts already stored stay, and are reported
            launch()
            results = list(await asyncio.gather(*tasks))
            if not any(r["ok"] for r in results):
                raise
            results.append({"ok": False, "reason": exc.dimse_status, "why": exc.reason, "uids": (None, None),
                            "conflict": False})
            return _response(request, results, study)
        launch()
        if not tasks:
            raise InvalidInstance("the request body holds no parts")
        results = list(await asyncio.gather(*tasks))
        # acknowledged once the bytes are durable (as C-STORE is); every later query waits for the
        # index rows of what was acknowledged before it (Archive.search), so a client always reads
        # its writes, and an index failure is repaired from the stored records at the next start
    finally:
        for task in tasks:  # a failure above: stores already running finish before the spool goes
            if not task.done():
                await asyncio.wait([task])
        parts.cleanup()
    return _response(request, results, study)


async def _receive(request: Request, mtype: bytes, params: dict[bytes, bytes], parts: _Parts,
                   limit: int, after_hop: Callable[[], None]) -> None:
    """Parse and spool the body in worker threads, FEED_BATCH bytes at a hop (issue 10 part 7:
    splitting and spool-file writes on the event loop stalled every other request)."""
    if mtype == b"application/dicom":
        parts.begin({b"content-type": b"application/dicom"})
        await _feed(request, limit, parts.data, after_hop)
        await run_in_threadpool(parts.end)
        return
    boundary = params.get(b"boundary")
    if not boundary:
        raise InvalidInstance("multipart/related without a boundary parameter")
    try:
        splitter = MultipartSplitter(boundary, parts)
        await _feed(request, limit, splitter.feed, after_hop)
        await run_in_threadpool(splitter.close)
    except MalformedMultipart as exc:
        raise InvalidInstance(f"malformed multipart body: {exc}") from None


async def _feed(request: Request, limit: int, take: Callable[[bytes], None], after_hop: Callable[[], None]) -> None:
    pending: list[bytes] = []
    size = 0

    def hand(chunks: list[bytes]) -> None:
        for chunk in chunks:
            take(chunk)

    async for chunk in _body(request, limit):
        pending.append(chunk)
        size += len(chunk)
        if size >= FEED_BATCH:
            await run_in_threadpool(hand, pending)
            pending, size = [], 0
            after_hop()
    if pending:
        await run_in_threadpool(hand, pending)


async def _body(request: Request, limit: int) -> AsyncIterator[bytes]:
    """The request body in chunks, refused once it passes `limit` bytes."""
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise PayloadTooLarge(f"request body is over the {limit}-byte limit")
        yield chunk


def _store_one(archive: Archive, path: Path | bytes, ctype: str, origin: Origin, study: str | None
               ) -> dict[str, Any]:
    ptype = ctype.split(";")[0].strip().lower()
    if ptype and ptype != "application/dicom":
        return {"ok": False, "reason": 0xC000, "why": f"part of type {ptype}", "uids": _uids(path), "conflict": True}
    try:
        res = archive.store(path, origin, expected_study=study, wait=False)  # parts share one commit
    except ArchiveError as exc:
        log.info("STOW part refused: %s", exc.reason)
        return {"ok": False, "reason": exc.dimse_status, "why": exc.reason, "uids": _uids(path),
                "conflict": not isinstance(exc, InvalidInstance) or isinstance(exc, StudyMismatch),
                "full": isinstance(exc, OutOfResources)}
    except Exception as exc:  # noqa: BLE001 - one bad part never spoils the good ones; the catalog lacks this case
        log.error("STOW part failed unexpectedly: %s", summary(exc))  # no message: it may quote values
        return {"ok": False, "reason": PROCESSING_FAILURE, "why": "processing failure (server error)",
                "uids": _uids(path), "conflict": False, "server": True}
    return {"ok": True, "res": res}


def _response(request: Request, results: list[dict[str, Any]], study: str | None) -> Response:
    base = base_url(request)
    ok = [r["res"] for r in results if r["ok"]]
    failed = [r for r in results if not r["ok"]]
    body: dict[str, Any] = {}
    studies = {r.study for r in ok}
    if study or len(studies) == 1:
        body["00081190"] = {"vr": "UR", "Value": [f"{base}/studies/{study or next(iter(studies))}"]}
    if failed:
        items = []
        for f in failed:
            cls, uid = f["uids"]
            item: dict[str, Any] = {}
            if cls:
                item["00081150"] = {"vr": "UI", "Value": [cls]}
            if uid:
                item["00081155"] = {"vr": "UI", "Value": [uid]}
            item["00081197"] = {"vr": "US", "Value": [f["reason"]]}
            items.append(item)
        body["00081198"] = {"vr": "SQ", "Value": items}
    if ok:
        body["00081199"] = {"vr": "SQ", "Value": [_stored_item(base, r) for r in ok]}
    warned = [w for r in ok for w in r.warnings]
    # PS3.18 Table 10.5.3-1: 200 all stored; 202 some failed or stored with warnings; 409 none stored
    # (conflict); 400 none (syntax); 500 none stored through a fault of ours (issue 10 part 2)
    if not failed:
        status = 202 if warned else 200
    elif ok:
        status = 202
    elif any(f.get("server") for f in failed):
        status = 500
    elif any(f.get("full") for f in failed):
        status = 507  # out of resources (RFC 4918 11.5): the sender retries later (issue 10 part 5)
    else:
        status = 409 if any(f["conflict"] for f in failed) else 400
    texts = []
    if failed:
        texts.append(f"{len(failed)} of {len(results)} instances failed: "
                     + "; ".join(sorted({f["why"][:120] for f in failed})))
    if warned:
        texts.append("stored with warnings: " + "; ".join(sorted(set(warned)))[:300])
    headers = {"Warning": warning_header(*texts)} if texts else {}
    return Response(orjson.dumps(body), status_code=status, media_type="application/dicom+json", headers=headers)


def _stored_item(base: str, r: StoreResult) -> dict[str, Any]:
    item: dict[str, Any] = {
        "00081150": {"vr": "UI", "Value": [r.sop_class]},
        "00081155": {"vr": "UI", "Value": [r.sop_instance]},
        "00081190": {"vr": "UR", "Value": [f"{base}/studies/{r.study}/series/{r.series}/instances/{r.sop_instance}"]},
    }
    if r.warnings:  # PS3.18 Table 10.5.3-2 WarningReason: B007 stored, data set does not match its SOP class
        item["00081196"] = {"vr": "US", "Value": [DATA_SET_DOES_NOT_MATCH]}
    return item
