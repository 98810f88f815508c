"""STOW-RS (PS3.18 10.5): multipart/related bodies split as they arrive, each part stored from its file (dicomweb/stow_spool.py)."""
from __future__ import annotations

import asyncio
import functools
import io
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
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
from dicomweb.stow_spool import Parts, memory_files
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
PROCESSING_FAILURE = 0x0110  # PS3.4 Annex GG / PS3.18 Table 10.5.3-3
DATA_SET_DOES_NOT_MATCH = 0xB007  # PS3.4 B.2.3 warning


@functools.cache
def _stores() -> ThreadPoolExecutor:
    """The threads parts are stored in (each waits for its ingest worker and the group sync).
    A plain executor, not starlette's run_in_threadpool: anyio's hop per part was ~30% of the
    GIL-held time of a STOW on the event loop thread (py-spy --gil, issue 9 part 3)."""
    return ThreadPoolExecutor(max_workers=4 * PARALLEL_PARTS, thread_name_prefix="yunying-stow")


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
    parts = Parts(archive.storage.tmp, memory_files())
    origin = origin_of(request)  # a study another hospital owns refuses the part (409, untouched)
    gate = asyncio.Semaphore(PARALLEL_PARTS)  # overlap one part's fsyncs with the next one's parsing
    tasks: list[asyncio.Task[dict[str, Any]]] = []
    running: list[asyncio.Future[dict[str, Any]]] = []  # the stores themselves, in their threads

    async def one(i: int) -> dict[str, Any]:
        async with gate:
            path, ctype = parts.source(i)
            stored = asyncio.get_running_loop().run_in_executor(
                _stores(), _store_one, archive, path, ctype, origin, study)
            # the part's spool file is reused once released: not before its store ends, even when
            # this request is cancelled (the client went away) while a thread still reads the file
            stored.add_done_callback(lambda _: parts.release(i))
            running.append(stored)
            return await asyncio.shield(stored)

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
        for task in [*tasks, *running]:  # a failure or cancellation above: stores already running
            if not task.done():  # finish before the spool goes
                await asyncio.wait([task])
        parts.cleanup()
    return _response(request, results, study)


async def _receive(request: Request, mtype: bytes, params: dict[bytes, bytes], parts: Parts,
                   limit: int, launch: Callable[[], None]) -> None:
    """Split the body as it arrives and write its parts out, launching each finished part's store.

    Splitting is `bytes.find` over each received chunk and writes to the memory folder are
    memory copies: both run on the event loop (a hop to a thread per megabyte cost more CPU than
    the work it moved, issue 9 part 3). Disk writes, which may block, run in worker threads
    (issue 10 part 7)."""
    take: Callable[[bytes], None]
    if mtype == b"application/dicom":
        parts.begin({b"content-type": b"application/dicom"})
        take, close = parts.data, parts.end
    else:
        boundary = params.get(b"boundary")
        if not boundary:
            raise InvalidInstance("multipart/related without a boundary parameter")
        try:
            splitter = MultipartSplitter(boundary, parts)
        except MalformedMultipart as exc:
            raise InvalidInstance(f"malformed multipart body: {exc}") from None
        take, close = splitter.feed, splitter.close
    try:
        async for chunk in _body(request, limit):
            take(chunk)
            if parts.must_flush():
                await run_in_threadpool(parts.flush)
            launch()
        close()
        if parts.must_flush():
            await run_in_threadpool(parts.flush)
    except MalformedMultipart as exc:
        raise InvalidInstance(f"malformed multipart body: {exc}") from None


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
