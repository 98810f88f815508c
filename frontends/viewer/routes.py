"""The viewer's own server route: its measurements in, a DICOM SR measurement report out
(application/dicom), which the viewer then stores with its token through STOW-RS, the archive's
one ingest path (so the store is authorized, audited and indexed like any other). The route
reads nothing from the archive: it only turns what the caller sent into a standard object."""
from __future__ import annotations

import json

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

MAX_BODY = 4 * 1024 * 1024  # 500 marks with their images' headers fit many times over


def refusal(status: int, reason: str) -> Response:
    """The archive's one error shape: {"status": N, "error": reason}."""
    return Response(json.dumps({"status": status, "error": reason}), status_code=status, media_type="application/json")


async def build_sr(request: Request) -> Response:
    """POST {images: {sop: DICOM JSON}, measurements: [...]}: the SR (TID 1500) as Part 10 bytes."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return refusal(415, "Content-Type: application/json expected")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return refusal(413, f"body: at most {MAX_BODY} bytes")
    try:
        value = json.loads(body)
    except ValueError:
        return refusal(400, "body: not JSON")
    from frontends.viewer.report import (  # highdicom: loaded at first use
        InvalidReport,
        measurement_report,
    )

    principal = request.state.principal  # set by the one authorization point
    try:
        raw = await run_in_threadpool(measurement_report, value, str(principal.id))
    except InvalidReport as exc:
        return refusal(400, str(exc))
    return Response(raw, media_type="application/dicom", headers={"Cache-Control": "no-store"})


MAX_EXPORT = 512 * 1024 * 1024  # 2000 rendered 512x512 images with room to spare


async def export(request: Request) -> Response:
    """POST multipart/form-data of rendered images ("image" parts; "fps" for mp4): one MP4 or ZIP."""
    from frontends.viewer.export import InvalidExport, mp4_of, zip_of

    kind = request.path_params["kind"]
    if kind not in ("mp4", "zip"):
        return refusal(404, "exports are mp4 or zip")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return refusal(415, "Content-Type: multipart/form-data expected")
    if int(request.headers.get("content-length") or 0) > MAX_EXPORT:
        return refusal(413, f"body: at most {MAX_EXPORT} bytes")
    try:
        async with request.form(max_files=2000, max_fields=10, max_part_size=64 * 1024) as form:
            parts = [p for p in form.getlist("image") if not isinstance(p, str)]
            files = [(str(p.filename or ""), await p.read()) for p in parts]
            fps = str(form.get("fps") or "10")
    except (MultiPartException, HTTPException) as exc:  # starlette's refusals of a malformed body
        return refusal(400, f"body: not readable multipart/form-data ({getattr(exc, 'detail', None) or exc})")
    try:
        if kind == "zip":
            return Response(await run_in_threadpool(zip_of, files), media_type="application/zip")
        try:
            rate = float(fps)
        except ValueError:
            return refusal(400, "fps: a number expected")
        return Response(await run_in_threadpool(mp4_of, [raw for _, raw in files], rate), media_type="video/mp4")
    except InvalidExport as exc:
        return refusal(400, str(exc))


def routes() -> list[Route]:
    return [Route("/api/viewer/sr", build_sr, methods=["POST"]),
            Route("/api/viewer/export/{kind}", export, methods=["POST"])]
