"""The portal's download routes (issue 14 part 7): a password-protected ZIP of one of the
patient's exams, made within the request for a small study and in the background, with progress,
for a big one (yunying.portal.download_jobs)."""
from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from dicomweb.access import principal_of
from dicomweb.accounts import call, field, json_body, json_response, store_of
from dicomweb.portal import _account, _text
from yunying.auth.errors import NotFound
from yunying.portal import downloads
from yunying.portal.download_jobs import DownloadJobs


def jobs_of(request: Request) -> DownloadJobs:
    made = getattr(request.app.state, "portal_downloads", None)
    if made is None:
        made = DownloadJobs(store_of(request), request.app.state.archive, Path(request.app.state.settings.data))
        request.app.state.portal_downloads = made
    return made


async def create_download(request: Request) -> Response:
    """{"study", "contents": "dicom" (default) | "jpeg" | "both", "background": false}: 201 with
    {id, password, size, expires_at} when made within the request (a study of at most
    SYNC_LIMIT instances), else 202 with {id, password, state, done, total}: poll
    GET /api/portal/downloads/{id}/progress until "ready"."""
    account, body, p = _account(request), await json_body(request), principal_of(request)
    study = _text(body, "study", required=True)
    if not p.may("download") or study not in p.visibility.studies:
        raise NotFound("not one of your exams")
    background = bool(field(body, "background", bool, required=False))
    status, made = await call(jobs_of(request).start, account, study, _text(body, "contents") or "dicom", background)
    return json_response(made, status)


async def download_progress(request: Request) -> Response:
    """{state: queued | running | ready | failed, done, total[, size, expires_at][, error]}."""
    account, p = _account(request), principal_of(request)
    return json_response(await call(jobs_of(request).progress, account, request.path_params["download"],
                                    p.visibility.studies))


async def get_download(request: Request) -> Response:
    account, p = _account(request), principal_of(request)
    jobs_of(request).require_ready(account, request.path_params["download"])
    path = await call(downloads.zip_path, store_of(request), Path(request.app.state.settings.data), account,
                      request.path_params["download"], p.visibility.studies)
    return FileResponse(path, media_type="application/zip", filename="exam.zip",
                        headers={"Cache-Control": "no-store"})


def routes() -> list[Route]:
    return [
        Route("/api/portal/downloads", create_download, methods=["POST"]),
        Route("/api/portal/downloads/{download}", get_download, methods=["GET"]),
        Route("/api/portal/downloads/{download}/progress", download_progress, methods=["GET"]),
    ]
