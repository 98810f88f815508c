"""HTTP face of collection and lifecycle (issue 15 parts 1, 6, 8): jobs, metrics, collector
runs, retention, re-fetch progress; and the middleware that re-fetches a purged study when a
DICOMweb request names it."""
from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any
from urllib.parse import parse_qs

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import yunying.audit
from dicomweb.access import principal_of, require_visible
from yunying import jobs
from yunying.collect.collector import Busy
from yunying.collect.service import CollectService, UnknownSource
from yunying.lifecycle.cache import Lifecycle

MAX_BODY = 4096
Handler = Callable[[Request], Awaitable[Response]]


class BadInput(ValueError):
    """A malformed request: 400 naming the field."""


def _json(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type="application/json", headers=headers)


def _error(status: int, reason: str, **extra: Any) -> Response:
    return _json({"status": status, "error": reason, **extra}, status)


def answers_400(handler: Handler) -> Handler:
    """A handler whose BadInput becomes a 400 naming the field."""
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except BadInput as exc:
            return _error(400, str(exc))
    wrapped.__doc__ = handler.__doc__
    return wrapped


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise BadInput("body too large")
    if not raw:
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadInput("body: not JSON") from None
    if not isinstance(value, dict):
        raise BadInput("expected a JSON object")
    return value


def _service(request: Request) -> CollectService | None:
    return getattr(request.app.state, "collect", None)


def _lifecycle(request: Request) -> Lifecycle | None:
    return getattr(request.app.state, "lifecycle", None)


async def list_jobs(request: Request) -> Response:
    """GET /api/jobs: every registered job (yunying.jobs contract)."""
    return _json({"jobs": await run_in_threadpool(jobs.all_jobs)})


async def metrics(request: Request) -> Response:
    """GET /metrics: Prometheus text exposition of every job's counts."""
    text = await run_in_threadpool(jobs.metrics_text)
    return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")


async def list_runs(request: Request) -> Response:
    """GET /api/collect/runs[?source=NAME]: the latest runs and their counts."""
    service = _service(request)
    if service is None:
        return _json({"runs": []})
    source = request.query_params.get("source") or None
    runs = await run_in_threadpool(service.state.recent_runs, source, 50)
    return _json({"runs": runs})


def _date(value: Any, name: str) -> date | None:
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise BadInput(f"{name}: expected YYYY-MM-DD")
    return date.fromisoformat(value)


def parse_run(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The kind of run asked for and its arguments; BadInput names the bad field."""
    kind = body.get("kind")
    if kind not in ("sync", "backfill", "refresh"):
        raise BadInput('kind: "sync", "backfill" or "refresh"')
    unknown = set(body) - {"kind", "until", "start", "patient_id", "accession", "study"}
    if unknown:
        raise BadInput(f"unknown field(s): {', '.join(sorted(unknown))}")
    kwargs: dict[str, Any] = {}
    if kind == "backfill":
        until, start = _date(body.get("until"), "until"), _date(body.get("start"), "start")
        if start is not None and until is None:
            raise BadInput("start needs until")
        if until is not None:
            kwargs = {"until": until, "start": start}
    elif kind == "refresh":
        for key in ("patient_id", "accession", "study"):
            value = body.get(key)
            if value is not None and (not isinstance(value, str) or not value.strip() or len(value) > 64
                                      or any(c in value for c in "*?\\")):
                raise BadInput(f"{key}: a value without wildcards, at most 64 characters")
            if value:
                kwargs[key] = value.strip()
        if not kwargs:
            raise BadInput("refresh needs patient_id, accession or study")
    return kind, kwargs


async def start_run(request: Request) -> Response:
    """POST /api/collect/sources/{source}/runs {"kind": "sync"|"backfill"|"refresh", ...}: 202 once started."""
    service = _service(request)
    name = request.path_params["source"]
    if service is None or name not in service.collectors:
        return _error(404, f"no collector source named {name!r}")
    kind, kwargs = parse_run(await _body(request))
    try:
        await run_in_threadpool(service.submit, name, kind, **kwargs)
    except Busy as exc:
        return _error(409, str(exc))
    except UnknownSource:
        return _error(404, f"no collector source named {name!r}")
    yunying.audit.record("admin.change", principal=principal_of(request),
                         detail={"collect": kind, "source": name})  # no patient ID in the trail's detail
    return _json({"source": name, "kind": kind, "state": "started"}, 202)


def _study_param(request: Request) -> str:
    study = request.path_params["study"]
    if not re.fullmatch(r"[0-9.]{1,64}", study):
        raise BadInput("study: a UID")
    return study


async def study_lifecycle(request: Request) -> Response:
    """GET /api/lifecycle/studies/{study}: retention class, end date, cache state, re-fetch progress."""
    life = _lifecycle(request)
    study = _study_param(request)
    if life is None:
        return _error(404, "lifecycle is not running")
    purged = life.purged(study)
    if purged is None:
        await require_visible(request, study)
    elif not _may_see_purged(request, purged.hospital):
        return _error(404, f"study {study} is not stored here")
    info = await run_in_threadpool(life.retention_of, study)
    return _json({**info, "refetch": life.progress(study)})


async def refetch_progress(request: Request) -> Response:
    """GET /api/lifecycle/refetch/{study}: progress of a purged study's re-fetch (the viewer polls it)."""
    life = _lifecycle(request)
    study = _study_param(request)
    purged = life.purged(study) if life else None
    progress = life.progress(study) if life else None
    if progress is None or (purged is not None and not _may_see_purged(request, purged.hospital)):
        return _error(404, f"no re-fetch of study {study}")
    return _json(progress)


async def delete_study(request: Request) -> Response:
    """POST /api/lifecycle/studies/{study}/delete {"confirm": "<the study UID>"}: after retention only."""
    life = _lifecycle(request)
    study = _study_param(request)
    body = await _body(request)
    if life is None:
        return _error(404, "lifecycle is not running")
    if life.purged(study) is None:
        await require_visible(request, study)
    removed = await run_in_threadpool(life.delete_after_retention, study, str(body.get("confirm", "")))
    yunying.audit.record("delete", principal=principal_of(request), studies=[study],
                         detail={"lifecycle": "deleted after retention", "instances": removed})
    return _json({"study": study, "deleted_instances": removed})


async def protect_study(request: Request) -> Response:
    """PUT /api/lifecycle/studies/{study}/protected {"protected": true|false}: never purge it."""
    life = _lifecycle(request)
    study = _study_param(request)
    body = await _body(request)
    if not isinstance(body.get("protected"), bool):
        raise BadInput("protected: true or false")
    if life is None:
        return _error(404, "lifecycle is not running")
    await require_visible(request, study)
    if not await run_in_threadpool(life.table.set_protected, study, body["protected"]):
        return _error(404, f"study {study} is not in the delivery cache")
    yunying.audit.record("admin.change", principal=principal_of(request), studies=[study],
                         detail={"lifecycle": "protected" if body["protected"] else "unprotected"})
    return _json({"study": study, "protected": body["protected"]})


async def purge_now(request: Request) -> Response:
    """POST /api/lifecycle/purge: run the delivery-cache purge now (it also runs every minute)."""
    life = _lifecycle(request)
    if life is None:
        return _error(404, "lifecycle is not running")
    report = await run_in_threadpool(life.purge)
    yunying.audit.record("admin.change", principal=principal_of(request), detail={"lifecycle": "purge", **report})
    return _json({**report, "held_bytes": await run_in_threadpool(life.table.held_bytes),
                  "capacity_bytes": life.capacity})


def _may_see_purged(request: Request, hospital: str) -> bool:
    visibility = principal_of(request).visibility
    return visibility.everything or hospital in visibility.hospitals


def routes() -> list[Route]:
    """The routes (policy rows in yunying/auth/policy.py)."""
    return [
        Route("/api/jobs", list_jobs, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/api/collect/runs", list_runs, methods=["GET"]),
        Route("/api/collect/sources/{source}/runs", answers_400(start_run), methods=["POST"]),
        Route("/api/lifecycle/studies/{study}", answers_400(study_lifecycle), methods=["GET"]),
        Route("/api/lifecycle/studies/{study}/delete", answers_400(delete_study), methods=["POST"]),
        Route("/api/lifecycle/studies/{study}/protected", answers_400(protect_study), methods=["PUT"]),
        Route("/api/lifecycle/refetch/{study}", answers_400(refetch_progress), methods=["GET"]),
        Route("/api/lifecycle/purge", purge_now, methods=["POST"]),
    ]


# -- transparent re-fetch (issue 15 part 6) --------------------------------------------------
_STUDY_PATH = re.compile(r"^/dicomweb/studies/([0-9.]{1,64})(?:/|$)")
_QIDO_PATHS = ("/dicomweb/studies", "/dicomweb/series", "/dicomweb/instances")


def _asked_study(scope: dict[str, Any]) -> str | None:
    m = _STUDY_PATH.match(scope["path"])
    if m:
        return m.group(1)
    qs = scope.get("query_string", b"")
    # most queries name no study: parse only those that may (a percent-encoded key included)
    if (b"StudyInstanceUID" in qs or b"0020000D" in qs or b"%" in qs) and scope["path"].rstrip("/") in _QIDO_PATHS:
        query = parse_qs(qs.decode("latin-1"))
        values = query.get("StudyInstanceUID") or query.get("0020000D") or []
        if len(values) == 1 and re.fullmatch(r"[0-9.]{1,64}", values[0]):
            return values[0]
    return None


class RefetchPurged:
    """Inside the authorization point: a GET naming a purged study (WADO-RS, QIDO-RS by UID, the
    viewer) waits for its re-fetch from the source, then goes on as if it had always been here;
    after `refetch_wait_s` it gets 503 + Retry-After with the progress, never a 404."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        # the state's dict read directly: State.__getattr__ cost ~1 us of every request
        life: Lifecycle | None = scope["app"].state._state.get("lifecycle") if "app" in scope else None
        study = _asked_study(scope) if life is not None else None
        purged = life.purged(study) if life is not None and study else None
        if life is None or study is None or purged is None:
            return await self.app(scope, receive, send)
        principal = scope.get("state", {}).get("principal")
        visibility = getattr(principal, "visibility", None)
        if visibility is None or not (visibility.everything or purged.hospital in visibility.hospitals):
            return await self.app(scope, receive, send)  # not theirs: the handler answers 404 as usual
        job = await run_in_threadpool(life.refetch, study)
        await asyncio.get_running_loop().run_in_executor(None, job.done.wait, life.wait_s)
        if job.done.is_set() and job.error is None:
            return await self.app(scope, receive, send)
        progress = job.progress()
        reason = (f"study {study} is being fetched from its source archive" if job.error is None
                  else f"study {study} could not be fetched from its source archive: {job.error}")
        response = _json({"status": 503, "error": reason, "refetch": progress}, 503,
                         {"Retry-After": "5" if job.error is None else "60"})
        await response(scope, receive, send)
